"""A workflow version compiled once: every guard and template ready to evaluate."""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from schemas.expressions import Expression
from schemas.graph import StepGraph, resolve_needs
from schemas.steps import DEFAULT_MAX_CONCURRENCY, ActionStep, RetryPolicy, Step
from schemas.templates import Template
from schemas.workflow import Workflow

__all__ = ["CompiledStep", "CompiledTrigger", "CompiledWorkflow", "compile_workflow"]

NO_RETRY: Final = RetryPolicy(attempts=1)


@dataclass(frozen=True, eq=False, slots=True)
class CompiledTrigger:
    index: int
    pattern: str
    condition: Expression | None


@dataclass(frozen=True, eq=False, slots=True)
class CompiledStep:
    """One step ready to run; `retry` already resolves the step, workflow and no-retry defaults."""

    index: int
    spec: Step
    needs: tuple[str, ...]
    guard: Expression | None
    with_: Template | None
    prompt: Template | None
    until: Template | None
    for_each: Template | None
    max_concurrency: int
    retry: RetryPolicy
    continue_on_failure: bool
    action: str | None  # None for approval and wait steps

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True, eq=False, slots=True)
class CompiledWorkflow:
    workflow: Workflow
    triggers: tuple[CompiledTrigger, ...]
    steps: tuple[CompiledStep, ...]
    steps_by_id: Mapping[str, CompiledStep]
    graph: StepGraph


def compile_workflow(wf: Workflow) -> CompiledWorkflow:
    """Compile a validated Workflow; validation already compiled everything, so this cannot fail."""
    triggers = tuple(
        CompiledTrigger(index, trigger.on, _maybe(trigger.if_))
        for index, trigger in enumerate(wf.triggers)
    )
    ids = [step.id for step in wf.steps]
    needs = resolve_needs(ids, [step.needs for step in wf.steps])
    graph = StepGraph.build(ids, needs)
    steps = tuple(
        _compile_step(index, step, graph.needs[step.id], wf.retry)
        for index, step in enumerate(wf.steps)
    )
    by_id = MappingProxyType({step.id: step for step in steps})
    return CompiledWorkflow(wf, triggers, steps, by_id, graph)


def _compile_step(
    index: int, step: Step, needs: tuple[str, ...], default_retry: RetryPolicy | None
) -> CompiledStep:
    templates = {path: Template.compile(value, path) for path, value in step.templates().items()}
    retry = NO_RETRY
    action = None
    max_concurrency = DEFAULT_MAX_CONCURRENCY
    if isinstance(step, ActionStep):
        retry = step.retry or default_retry or NO_RETRY
        action = step.action
        max_concurrency = step.max_concurrency or DEFAULT_MAX_CONCURRENCY
    return CompiledStep(
        index=index,
        spec=step,
        needs=needs,
        guard=_maybe(step.if_),
        with_=templates.get("with"),
        prompt=templates.get("approval.prompt"),
        until=templates.get("wait.until"),
        for_each=templates.get("for_each"),
        max_concurrency=max_concurrency,
        retry=retry,
        continue_on_failure=step.continue_on_failure,
        action=action,
    )


def _maybe(source: str | None) -> Expression | None:
    return None if source is None else Expression.compile(source)
