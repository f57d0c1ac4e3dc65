"""The workflow definition root: Workflow, Trigger, and the checks that span steps."""

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Final, NamedTuple, Self

from pydantic import AfterValidator, Field, model_validator

from schemas.expressions import Expression, ExpressionSyntaxError
from schemas.graph import CycleError, StepGraph, find_cycle, resolve_needs
from schemas.steps import ActionStep, DslModel, RetryPolicy, Step
from schemas.templates import Template

__all__ = ["Problem", "RetryPolicy", "Trigger", "Workflow", "WorkflowProblems", "describe_location"]

_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
_TRIGGER_FORBIDDEN: Final = frozenset({"steps", "execution"})


def _workflow_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"invalid workflow name {value!r}: use 1-100 lowercase letters, digits, '-', '_'"
            " or '.', starting with a letter or digit"
        )
    return value


def _topic_pattern(value: str) -> str:
    """AMQP topic pattern: '.'-separated words; '*' is one word and '#' zero or more."""
    if len(value.encode()) > 255:
        raise ValueError("topic pattern is longer than 255 bytes")
    for word in value.split("."):
        if not word or any(char.isspace() for char in word):
            raise ValueError(f"invalid topic pattern {value!r}: words must be non-empty, no spaces")
        if word not in ("*", "#") and ("*" in word or "#" in word):
            raise ValueError(f"invalid topic pattern {value!r}: '*' and '#' must be whole words")
    return value


class Trigger(DslModel):
    """Starts the workflow for events whose type matches `on` and whose `if` holds."""

    on: Annotated[str, AfterValidator(_topic_pattern)]
    if_: str | None = Field(default=None, alias="if", min_length=1)


Loc = tuple[str | int, ...]


class Problem(NamedTuple):
    loc: Loc
    message: str


def describe_location(loc: Sequence[str | int], step_id: str | None = None) -> str:
    """Render a location as users read it: `steps[1] (id 'classify') -> with.big`."""
    if len(loc) >= 2 and loc[0] in ("steps", "triggers") and isinstance(loc[1], int):
        head = f"{loc[0]}[{loc[1]}]" + (f" (id {step_id!r})" if step_id else "")
        return f"{head} -> {_dotted(loc[2:])}" if len(loc) > 2 else head
    return _dotted(loc) or "workflow"


def _dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


class WorkflowProblems(ValueError):
    """Problems that span fields (expressions, step order), found once the structure is valid."""

    def __init__(self, problems: list[Problem], step_ids: Sequence[str]) -> None:
        self.problems, self.step_ids = problems, list(step_ids)
        super().__init__("; ".join(f"{self.where(p)}: {p.message}" for p in problems))

    def where(self, problem: Problem) -> str:
        loc = problem.loc
        step_id = self.step_ids[loc[1]] if loc[0] == "steps" and isinstance(loc[1], int) else None
        return describe_location(loc, step_id)


class Workflow(DslModel):
    """A versioned definition: triggers start it; steps run as their `needs` allow."""

    name: Annotated[str, AfterValidator(_workflow_name)]
    description: str | None = None
    retry: RetryPolicy | None = None
    triggers: tuple[Trigger, ...] = Field(min_length=1)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _expressions_compile_and_refer_backwards(self) -> Self:
        problems = [*_trigger_problems(self.triggers), *_step_problems(self.steps)]
        if problems:
            raise WorkflowProblems(problems, [step.id for step in self.steps])
        return self


def _trigger_problems(triggers: Sequence[Trigger]) -> Iterator[Problem]:
    for index, trigger in enumerate(triggers):
        if trigger.if_ is None:
            continue
        loc = ("triggers", index, "if")
        try:
            expression = Expression.compile(trigger.if_)
        except ExpressionSyntaxError as exc:
            yield Problem(loc, exc.detail)
            continue
        # Only flag known names: macro variables such as `x` in `all(x, ...)` also show up here.
        if forbidden := sorted(expression.references() & _TRIGGER_FORBIDDEN):
            names = ", ".join(repr(name) for name in forbidden)
            yield Problem(loc, f"a trigger condition can only use 'event', not {names}")


def _step_problems(steps: Sequence[Step]) -> Iterator[Problem]:
    ids = [step.id for step in steps]
    first_index: dict[str, int] = {}
    for index, step_id in enumerate(ids):
        if step_id in first_index:
            message = f"duplicate step id (also steps[{first_index[step_id]}])"
            yield Problem(("steps", index, "id"), message)
        first_index.setdefault(step_id, index)
    yield from _needs_problems(steps, first_index)
    ancestors = _ancestors(steps)
    explicit = any(step.needs is not None for step in steps)
    for index, step in enumerate(steps):
        located, problems = _compile_step(index, step)
        yield from problems
        before = ancestors.get(step.id) if ancestors is not None else None
        for path, expression in located:
            for ref in sorted(expression.step_references()):
                if before is not None and ref in before:
                    continue
                if before is None and ref in first_index and ref != step.id:
                    continue  # the graph itself is broken: reported above
                hint = (
                    f" (there is no step {ref!r})"
                    if ref not in first_index
                    else " (not among the steps it needs, directly or through others)"
                    if explicit and ref != step.id
                    else ""
                )
                message = f"step {step.id!r} refers to step {ref!r} which does not run before it"
                yield Problem(("steps", index, path), message + hint)
            yield from _item_problems(index, step, path, expression)


def _needs_problems(steps: Sequence[Step], known: Mapping[str, int]) -> Iterator[Problem]:
    for index, step in enumerate(steps):
        for position, need in enumerate(step.needs or ()):
            loc = ("steps", index, "needs", position)
            if need == step.id:
                yield Problem(loc, "a step cannot need itself")
            elif need not in known:
                yield Problem(loc, f"there is no step {need!r}")
    graph = _clean_needs(steps)
    if (cycle := find_cycle(graph)) is not None:
        index = next(i for i, step in enumerate(steps) if step.id == cycle[0])
        yield Problem(("steps", index, "needs"), "needs form a cycle: " + " -> ".join(cycle))


def _clean_needs(steps: Sequence[Step]) -> dict[str, list[str]]:
    """Resolved needs without the unknown and self references (reported on their own)."""
    ids = [step.id for step in steps]
    known = set(ids)
    resolved = resolve_needs(ids, [step.needs for step in steps])
    graph: dict[str, list[str]] = {}
    for step_id, needs in zip(ids, resolved, strict=True):
        graph.setdefault(step_id, [n for n in needs if n in known and n != step_id])
    return graph


def _ancestors(steps: Sequence[Step]) -> Mapping[str, frozenset[str]] | None:
    """Every step's ancestors, or None when the graph is broken (duplicates, cycles)."""
    ids = [step.id for step in steps]
    if len(set(ids)) != len(ids):
        return None
    graph = _clean_needs(steps)
    try:
        return StepGraph.build(ids, [graph[i] for i in ids]).ancestors
    except (CycleError, KeyError):
        return None


_ITEM_NAMES: Final = ("item", "index")
_MACRO_VARIABLE: Final = re.compile(
    r"\b(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,"
)


def _item_problems(index: int, step: Step, path: str, expression: Expression) -> Iterator[Problem]:
    """`item` and `index` exist only inside a for_each step's own templates (not its list)."""
    in_list = path == "for_each" or path.startswith("for_each[")
    if isinstance(step, ActionStep) and step.for_each is not None and not in_list:
        return
    bound = set(_MACRO_VARIABLE.findall(expression.source))
    for name in _ITEM_NAMES:
        if name in expression.references() and name not in bound:
            where = "in the for_each list itself" if in_list else "outside for_each"
            message = f"{name!r} is only defined in a step's for_each items, not {where}"
            yield Problem(("steps", index, path), message)


def _compile_step(index: int, step: Step) -> tuple[list[tuple[str, Expression]], list[Problem]]:
    located: list[tuple[str, Expression]] = []
    problems: list[Problem] = []
    if step.if_ is not None:
        try:
            located.append(("if", Expression.compile(step.if_)))
        except ExpressionSyntaxError as exc:
            problems.append(Problem(("steps", index, "if"), exc.detail))
    for path, value in step.templates().items():
        try:
            located += Template.compile(value, path).located_expressions()
        except ExpressionSyntaxError as exc:
            problems.append(Problem(("steps", index, exc.path or path), exc.detail))
    return located, problems
