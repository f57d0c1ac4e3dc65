"""${...} templates: any JSON-like value with CEL inside its strings, compiled once."""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cel

from schemas.expressions import (
    Expression,
    ExpressionError,
    ExpressionSyntaxError,
    Scope,
    context_of,
    to_json_value,
)

__all__ = ["Template"]


def _to_text(value: Any) -> str:
    """Interpolate a value into a string: None is "", bools lowercase, whole floats lose ".0"."""
    kind = type(value)
    if kind is str:
        return str(value)
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_Context = dict[str, Any] | cel.Context
_Scope = Mapping[str, Any] | Scope


@dataclass(frozen=True, slots=True)
class _Const:
    value: Any

    def render(self, context: _Context, scope: _Scope) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class _Whole:
    """A string that is exactly one `${...}`: the result keeps its type."""

    expression: Expression
    path: str

    def render(self, context: _Context, scope: _Scope) -> Any:
        try:
            return to_json_value(self.expression.run(scope, context), self.expression.source)
        except ExpressionError as exc:
            raise exc.at(self.path) from None


@dataclass(frozen=True, slots=True)
class _Mixed:
    """Text with `${...}` inside: every result is interpolated as text."""

    parts: tuple[str | Expression, ...]
    path: str

    def render(self, context: _Context, scope: _Scope) -> str:
        try:
            return "".join(
                part
                if isinstance(part, str)
                else _to_text(to_json_value(part.run(scope, context), part.source))
                for part in self.parts
            )
        except ExpressionError as exc:
            raise exc.at(self.path) from None


@dataclass(frozen=True, slots=True)
class _Dict:
    items: tuple[tuple[str, "_Node"], ...]

    def render(self, context: _Context, scope: _Scope) -> dict[str, Any]:
        return {key: node.render(context, scope) for key, node in self.items}


@dataclass(frozen=True, slots=True)
class _List:
    items: tuple["_Node", ...]

    def render(self, context: _Context, scope: _Scope) -> list[Any]:
        return [node.render(context, scope) for node in self.items]


_Node = _Const | _Whole | _Mixed | _Dict | _List


class Template:
    """A JSON-like value whose strings may hold `${cel}`; `$${` writes a literal `${`.

    Rendering never parses, and static parts (the whole value when `is_static`) are returned as
    the same objects every time, not copies: callers must not mutate what `render` returns.
    """

    __slots__ = ("_expressions", "_members", "_root")

    def __init__(self, root: _Node, expressions: list[tuple[str, Expression]]) -> None:
        self._root, self._expressions = root, expressions
        self._members: dict[str, frozenset[str]] = {}

    @classmethod
    def compile(cls, value: Any, path: str = "") -> "Template":
        """Compile dicts, lists, strings, numbers, bools and None; errors name `path.to.key`."""
        found: list[tuple[str, Expression]] = []
        return cls(_build(value, path, found), found)

    @property
    def is_static(self) -> bool:
        return isinstance(self._root, _Const)

    def render(self, scope: Mapping[str, Any] | Scope) -> Any:
        root = self._root
        if type(root) is _Const:
            return root.value
        if len(self._expressions) > 1 and not isinstance(scope, Scope):
            scope = Scope(scope)  # convert the variables once, not once per expression
        return root.render(context_of(scope), scope)

    def names_under(self, root: str) -> frozenset[str]:
        """Names its expressions read as `root.name` or `root["name"]`; worked out once.

        `root` is "steps" or "secrets" (see `Expression.member_references`).
        """
        names = self._members.get(root)
        if names is None:
            found = (e.member_references(root)[0] for _, e in self._expressions)
            names = self._members[root] = frozenset().union(*found)
        return names

    def expressions(self) -> list[Expression]:
        return [expression for _, expression in self._expressions]

    def located_expressions(self) -> list[tuple[str, Expression]]:
        """Each expression with the path of the string holding it, in document order."""
        return list(self._expressions)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _build(value: Any, path: str, found: list[tuple[str, Expression]]) -> _Node:
    if isinstance(value, str):
        return _build_text(value, path, found)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"{path or 'template'}: map keys must be strings")
        items = tuple((k, _build(v, _join(path, k), found)) for k, v in value.items())
        static = _static(value.values(), [node for _, node in items])
        if static is None:
            return _Dict(items)
        return _Const(value if static is True else dict(zip(value, static, strict=True)))
    if isinstance(value, list | tuple):
        nodes = tuple(_build(v, _join(path, i), found) for i, v in enumerate(value))
        static = _static(value, nodes)
        if static is None:
            return _List(nodes)
        if static is True:
            return _Const(value if isinstance(value, list) else list(value))
        return _Const(static)
    if value is None or isinstance(value, bool | int | float):
        return _Const(value)
    raise TypeError(f"{path or 'template'}: {type(value).__name__} is not JSON-like")


def _static(originals: Iterable[Any], nodes: Sequence[_Node]) -> list[Any] | Literal[True] | None:
    """None if any child is dynamic, True if all are the original objects, else their values."""
    values = [node.value for node in nodes if isinstance(node, _Const)]
    if len(values) < len(nodes):
        return None
    return True if all(a is b for a, b in zip(values, originals, strict=True)) else values


def _build_text(text: str, path: str, found: list[tuple[str, Expression]]) -> _Node:
    parts = _split(text, path)
    expressions = [part for part in parts if isinstance(part, Expression)]
    found.extend((path, expression) for expression in expressions)
    if not expressions:
        literal = "".join(part for part in parts if isinstance(part, str))
        return _Const(text if literal == text else literal)
    if len(parts) == 1:
        return _Whole(expressions[0], path)
    return _Mixed(tuple(parts), path)


def _split(text: str, path: str) -> list[str | Expression]:
    """Cut text into literal runs and compiled `${...}` expressions."""
    parts: list[str | Expression] = []
    literal: list[str] = []
    start = 0
    while (opening := text.find("${", start)) >= 0:
        if opening > start and text[opening - 1] == "$":
            literal.append(text[start : opening - 1] + "${")
            start = opening + 2
            continue
        literal.append(text[start:opening])
        closing = _closing_brace(text, opening + 2)
        if closing < 0:
            raise ExpressionSyntaxError(text[opening:], "unterminated '${' (no matching '}')", path)
        source = text[opening + 2 : closing].strip()
        if not source:
            raise ExpressionSyntaxError(source, "empty '${}'", path)
        if "".join(literal):
            parts.append("".join(literal))
        literal.clear()
        try:
            parts.append(Expression.compile(source))
        except ExpressionSyntaxError as exc:
            raise exc.at(path) from None
        start = closing + 1
    if "".join(literal) + text[start:] or not parts:
        parts.append("".join(literal) + text[start:])
    return parts


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start`, skipping string literals."""
    depth, index, end = 1, start, len(text)
    while index < end:
        char = text[index]
        if char in "'\"":
            index = _string_end(text, index, start)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def _string_end(text: str, quote_at: int, body_start: int) -> int:
    """Index just past the CEL string literal opening at `quote_at` (len(text) if unclosed)."""
    prefix_at = quote_at
    while prefix_at > body_start and quote_at - prefix_at < 2 and text[prefix_at - 1] in "rRbB":
        prefix_at -= 1
    before = text[prefix_at - 1] if prefix_at > body_start else " "
    raw = not (before.isalnum() or before == "_") and "r" in text[prefix_at:quote_at].lower()
    quote = text[quote_at] * 3 if text.startswith(text[quote_at] * 3, quote_at) else text[quote_at]
    index = quote_at + len(quote)
    while index < len(text):
        if text[index] == "\\" and not raw:
            index += 2
        elif text.startswith(quote, index):
            return index + len(quote)
        else:
            index += 1
    return len(text)
