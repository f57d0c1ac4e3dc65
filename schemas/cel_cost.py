"""A CEL expression's cost bound: its shape, read once from the source, against its inputs (pure).

The CEL binding has no cost limit and holds the GIL while it runs, so neither a budget inside
it nor a timeout around it can stop a runaway evaluation; it must be refused before it starts.
Measured on the binding (common-expression-language 0.10):

- every read of a scope variable (`event`, `steps`, ...) converts the whole variable, so a
  comprehension whose body reads one costs (items x size of the variable);
- `map` and `filter` copy their result list on every element: quadratic in the list;
- `all`, `exists` and `exists_one` are linear in their list, times the cost of their body.

An expression's degree is how the cost grows with the size N of its inputs: N ** degree. A
comprehension contributes max(its own degree, 1 + the degree of its body), a variable read or
an `in` test counts 1, and the degrees of the parts of an expression combine by max.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

MAX_ITEMS: Final = 10_000  # longest list or map an iterating expression may see
MAX_COST: Final = 100_000  # N ** degree; about 0.1 s at worst on the bench machine
# comprehension macros and their own degree
_MACROS: Final = {"all": 1, "exists": 1, "exists_one": 1, "existsOne": 1, "map": 2, "filter": 2}
_CONSTANTS: Final = frozenset({"true", "false", "null"})
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_TOKEN: Final = re.compile(
    r"""(?P<raw>[bB]?[rR][bB]?(?:'''.*?'''|\"\"\".*?\"\"\"|'[^'\n]*'|"[^"\n]*"))"""
    r"""|(?P<string>[bB]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\""""
    r"""|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))"""
    r"|(?P<number>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?)"
    r"|(?P<ident>[A-Za-z_]\w*)"
    r"|(?P<punct>[.()\[\]{},])"
    r"|(?P<other>\S)",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class CostShape:
    """How an expression's cost grows: N ** `degree`, N the size of the `roots` it reads."""

    degree: int
    roots: frozenset[str]


class InputSize(NamedTuple):
    values: int  # every value in the inputs, containers included
    widest: int  # the longest list or map among them


@dataclass(slots=True)
class _Frame:
    """One open bracket; a comprehension macro's argument list when `macro` is set."""

    macro: int = 0  # the macro's own degree (0: brackets that are no comprehension)
    over: str = "literal"  # the macro's range: "input", "element" (of an outer loop), "literal"
    bound: str | None = None  # the comprehension's variable
    arg: int = 0  # which argument of the macro is being read
    degree: int = 0  # paid once per evaluation of this bracket
    body: int = 0  # paid per element of the macro's range
    amortized: int = 0  # paid over all elements together (loops over an element's own parts)

    def note(self, degree: int, amortized: int = 0) -> None:
        if self.macro and self.arg >= 1:
            self.body = max(self.body, degree)
        else:
            self.degree = max(self.degree, degree)
        self.amortized = max(self.amortized, amortized)

    def close(self) -> tuple[int, int]:
        """(degree, amortized degree) this bracket contributes where it stands."""
        if not self.macro:
            return self.degree, self.amortized
        if self.over == "literal":  # a fixed number of elements
            return max(self.degree, self.body, self.amortized), 0
        loop = max(self.macro, 1 + self.body, self.amortized)
        if self.over == "element":
            # the parts of an outer loop's elements add up to the input over that whole loop
            return self.degree, loop
        return max(self.degree, loop), 0


_Token = tuple[str, str]


def cost_shape(source: str) -> CostShape | None:
    """The expression's shape, or None when it iterates over nothing (its cost is linear)."""
    tokens: list[_Token] = [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(source)]
    frames = [_Frame()]
    roots: set[str] = set()
    iterates = False
    for index, (kind, text) in enumerate(tokens):
        top = frames[-1]
        if kind == "ident" and _is_free(tokens, index, frames):
            roots.add(text)
            top.note(1)  # reading a variable converts all of it
        elif kind == "ident" and top.macro and top.arg == 0:
            top.bound = text
        elif text == "(" and _is_macro(tokens, index):
            iterates = True
            over = _range_kind(tokens, index - 2, frames)
            frames.append(_Frame(macro=_MACROS[tokens[index - 1][1]], over=over))
        elif kind == "punct" and text in "([{":
            frames.append(_Frame())
        elif text == "," and top.macro:
            top.arg += 1
        elif kind == "punct" and text in ")]}" and len(frames) > 1:
            frames[-2].note(*frames.pop().close())
    if not iterates:
        return None
    return CostShape(max(frames[0].degree, frames[0].amortized), frozenset(roots))


def _is_macro(tokens: list[_Token], paren: int) -> bool:
    return paren >= 2 and tokens[paren - 1][1] in _MACROS and tokens[paren - 2][1] == "."


def _is_free(tokens: list[_Token], index: int, frames: list[_Frame]) -> bool:
    """A read of a scope variable: not a field, a function, a constant or a loop variable."""
    kind, text = tokens[index]
    if kind != "ident" or text in _CONSTANTS or text == "in":
        return False
    if index and tokens[index - 1][1] == ".":
        return False
    if index + 1 < len(tokens) and tokens[index + 1][1] == "(":
        return False
    top = frames[-1]
    if top.macro and top.arg == 0:
        return False
    return not _is_bound(text, frames)


def _is_bound(name: str, frames: list[_Frame]) -> bool:
    return any(f.macro and f.arg >= 1 and f.bound == name for f in frames)


def _range_kind(tokens: list[_Token], dot: int, frames: list[_Frame]) -> str:
    """What the chain before `.macro(` starts from: "input" (`event.data.items`), "element"
    (`x.tags`, `x` an outer loop's variable) or "literal" (`[1, 2]`)."""
    index = dot - 1
    while index >= 0:
        kind, text = tokens[index]
        if kind == "punct" and text in ")]}":
            opener = _opening(tokens, index)
            inside = range(opener + 1, index)
            if any(_is_free(tokens, i, frames) for i in inside):
                return "input"
            if any(_is_bound(tokens[i][1], frames) for i in inside if tokens[i][0] == "ident"):
                return "element"
            index = opener - 1
            if index < 0 or (tokens[index][0] != "ident" and tokens[index][1] not in ")]"):
                return "literal"
            continue
        if kind != "ident":
            return "literal"
        if index and tokens[index - 1][1] == ".":
            index -= 2
            continue
        if _is_free(tokens, index, frames):
            return "input"
        return "element" if _is_bound(text, frames) else "literal"
    return "literal"


def _opening(tokens: list[_Token], closing: int) -> int:
    depth = 0
    for index in range(closing, -1, -1):
        kind, text = tokens[index]
        if kind == "punct" and text in ")]}":
            depth += 1
        elif kind == "punct" and text in "([{":
            depth -= 1
            if depth == 0:
                return index
    return 0


def measure(values: Iterable[Any]) -> InputSize:
    """Count the values in JSON-like inputs, and find their longest list or map."""
    count = widest = 0
    stack = list(values)
    pop, extend = stack.pop, stack.extend
    while stack:
        value = pop()
        count += 1
        kind = type(value)
        if kind in _SCALARS:
            continue
        if kind is dict or isinstance(value, Mapping):
            widest = max(widest, len(value))
            extend(value.values())
        elif kind is list or isinstance(value, list | tuple):
            widest = max(widest, len(value))
            extend(value)
    return InputSize(count, widest)


def over_budget(shape: CostShape, size: InputSize) -> str | None:
    """Why evaluating an expression of this shape on inputs of this size is refused, if it is."""
    if size.widest > MAX_ITEMS:
        return (
            f"iterates over inputs holding a list or map of {size.widest} items,"
            f" over the limit of {MAX_ITEMS}"
        )
    if shape.degree >= 2:
        cost = size.values**shape.degree
        if cost > MAX_COST:
            return (
                f"would take about {_approximately(cost)} steps ({size.values} input values,"
                f" nested {shape.degree} deep), over the budget of {MAX_COST:,}"
            )
    return None


def _approximately(cost: int) -> str:
    return f"{cost:,}" if cost < 10**12 else f"10^{len(str(cost)) - 1}"
