"""CEL expressions, compiled once per workflow version and evaluated often."""

import base64
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Self

import cel

from schemas.cel_cost import InputSize, cost_shape, measure, over_budget
from schemas.durations import format_duration

__all__ = [
    "Expression",
    "ExpressionBudgetExceeded",
    "ExpressionError",
    "ExpressionSyntaxError",
    "Scope",
    "to_json_value",
]


class ExpressionError(Exception):
    """A CEL expression failed; `path` names where it sits in a template (e.g. `with.url`)."""

    lead = "CEL error in"

    def __init__(self, source: str, cause: str, path: str | None = None) -> None:
        self.source, self.cause, self.path = source, cause, path
        super().__init__(f"{path}: {self.detail}" if path else self.detail)

    @property
    def detail(self) -> str:
        """The message without the path, for callers that print the location themselves."""
        return f"{self.lead} {self.source!r}: {self.cause}"

    def at(self, path: str) -> Self:
        return type(self)(self.source, self.cause, path)


class ExpressionSyntaxError(ExpressionError):
    """The expression does not compile; found at load time, never while running."""

    lead = "invalid CEL expression"


class ExpressionBudgetExceeded(ExpressionError):
    """Refused before it ran: on these inputs the expression would cost too much (cel_cost)."""

    lead = "CEL evaluation refused for"


_CEL_ERROR: Final = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")


def _member_pattern(root: str) -> re.Pattern[str]:
    """`root.name`, `root["name"]` and `root['name']`; a bare `root` matches with no name."""
    return re.compile(
        # String literals are matched first so `"steps.x"` inside quotes is skipped.
        r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""
        rf"""|(?<![\w.]){root}\b(?:\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\]))?"""
    )


_MEMBER_PATTERNS: Final = {root: _member_pattern(root) for root in ("steps", "secrets")}


class Scope:
    """Variables converted to CEL once, so many expressions can share one conversion.

    Converting a variable costs tens of microseconds for a small event, and replacing one
    discards the whole converted environment; so what changes between evaluations (`lookup`)
    is looked up at evaluation time instead, and only by the expressions that use it.
    """

    __slots__ = ("_lookup", "_sizes", "_variables", "context")

    def __init__(
        self, variables: Mapping[str, Any], lookup: Callable[[str], Any] | None = None
    ) -> None:
        self._variables, self._lookup = variables, lookup
        self._sizes: dict[str, tuple[Any, InputSize]] = {}
        self.context = cel.Context(dict(variables))
        if lookup is not None:
            # consulted before the variables; None means "not mine"
            self.context.set_variable_resolver(lookup)

    def with_variable(self, name: str, value: Any) -> "Scope":
        """A new scope that also has `name`; this one stays as it was.

        It converts every variable again, so it is for the rare evaluation that needs an extra
        variable (a step's secrets), not for the hot path.
        """
        return Scope({**self._variables, name: value}, self._lookup)

    def input_size(self, names: Iterable[str]) -> InputSize:
        """How big the named variables are; each measured once while it stays the same object."""
        values = widest = 0
        lookup, sizes = self._lookup, self._sizes
        for name in names:
            value = lookup(name) if lookup is not None else None
            if value is None:
                value = self._variables.get(name)
            cached = sizes.get(name)
            if cached is None or cached[0] is not value:
                cached = sizes[name] = (value, measure((value,)))
            size = cached[1]
            values += size.values
            if size.widest > widest:
                widest = size.widest
        return InputSize(values, widest)


class Expression:
    """A compiled bare CEL expression, e.g. `event.data.amount >= 100`."""

    __slots__ = ("_program", "_shape", "source")

    def __init__(self, source: str, program: cel.Program) -> None:
        self.source, self._program = source, program
        # None for the common expression that iterates over nothing: no check when it runs
        self._shape = cost_shape(source)

    @classmethod
    def compile(cls, source: str) -> "Expression":
        try:
            return cls(source, cel.compile(source))
        except ValueError as exc:
            raise ExpressionSyntaxError(source, _syntax_cause(str(exc))) from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, scope: Mapping[str, Any] | Scope) -> Any:
        """Evaluate to a JSON-compatible value (see `to_json_value`); raise ExpressionError."""
        return to_json_value(self.run(scope), self.source)

    def evaluate_bool(self, scope: Mapping[str, Any] | Scope) -> bool:
        result = self.run(scope)
        if not isinstance(result, bool):
            raise ExpressionError(self.source, f"expected a bool, got {type(result).__name__}")
        return result

    def run(
        self, scope: Mapping[str, Any] | Scope, context: dict[str, Any] | cel.Context | None = None
    ) -> Any:
        """Evaluate to the raw CEL result; the building block of `evaluate` and templates.

        `context` is `scope` already converted, when the caller has it. An evaluation that
        would cost too much on this scope raises ExpressionBudgetExceeded before it starts.
        """
        if self._shape is not None:
            self._check_budget(scope)
        try:
            return self._program.execute(context_of(scope) if context is None else context)
        except KeyError as exc:
            raise ExpressionError(self.source, f"no such key {exc.args[0]!r}") from None
        except Exception as exc:  # the binding raises assorted builtins; all mean "failed"
            raise ExpressionError(self.source, _eval_cause(exc)) from None

    def _check_budget(self, scope: Mapping[str, Any] | Scope) -> None:
        assert self._shape is not None
        roots = self._shape.roots
        if isinstance(scope, Scope):
            size = scope.input_size(roots)
        else:
            size = measure(scope.get(name) for name in roots)
        problem = over_budget(self._shape, size)
        if problem is not None:
            raise ExpressionBudgetExceeded(self.source, problem)

    def references(self) -> set[str]:
        """Top-level identifiers, including names bound by macros such as `map(x, ...)`."""
        return set(self._program.variables())

    def step_references(self) -> set[str]:
        """Step ids read via `steps.id` or `steps["id"]`: static, so a load can reject bad order."""
        return self.member_references("steps")[0]

    def member_references(self, root: str) -> tuple[set[str], bool]:
        """Names read under `root` as `root.name` or `root["name"]`, and whether `root` is also
        used some other way (`root[event.data.k]`, `root` alone), which no static check can see.

        `root` is "steps" or "secrets".
        """
        names: set[str] = set()
        other = False
        for match in _MEMBER_PATTERNS[root].finditer(self.source):
            if match.group(0)[0] in "\"'":
                continue  # a string literal
            name = next((group for group in match.groups() if group is not None), None)
            if name is None:
                other = True
            else:
                names.add(name)
        return names, other


def context_of(scope: Mapping[str, Any] | Scope) -> dict[str, Any] | cel.Context:
    if isinstance(scope, Scope):
        return scope.context
    return scope if type(scope) is dict else dict(scope)


def _syntax_cause(message: str) -> str:
    found = _CEL_ERROR.search(message)
    if found is None:
        return message.splitlines()[0] if message else "does not compile"
    line, column, text = found.groups()
    return f"{text} (at {line}:{column})"


def _eval_cause(exc: Exception) -> str:
    text = str(exc).split(". ", 1)[0].removesuffix(" in CEL expression").strip()
    return text or type(exc).__name__


_SCALARS: Final = frozenset({str, int, bool, type(None)})


def to_json_value(value: Any, source: str = "") -> Any:
    """Convert a CEL result to JSON-compatible Python.

    Timestamps become RFC 3339 strings in UTC ("...Z"), durations our duration strings ("-1h" when
    negative), bytes standard base64, map keys strings, and an empty optional None.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ExpressionError(source, f"result {value} has no JSON form")
        return value
    if kind is list:
        return [to_json_value(v, source) for v in value]
    if kind is dict:
        return {_json_key(k): to_json_value(v, source) for k, v in value.items()}
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return utc.isoformat().removesuffix("+00:00") + "Z"
    if isinstance(value, timedelta):
        return format_duration(value) if value >= timedelta(0) else "-" + format_duration(-value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, cel.OptionalValue):
        return to_json_value(value.value(), source) if value.has_value() else None
    raise ExpressionError(source, f"result of type {kind.__name__} is not JSON-compatible")


def _json_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)
