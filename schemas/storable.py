"""Whether PostgreSQL can store a JSON value: jsonb refuses NUL characters, and depth is bounded.

Checked without recursion, so a hostile value cannot exhaust the stack while being checked.
"""

from __future__ import annotations

from typing import Any, Final

MAX_DEPTH: Final = 128  # orjson writes at most 254 levels; jsonb and CEL go deeper, slowly


def storable_problem(value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """What makes `value` unstorable (naming where), or None."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return f"{path or 'the value'} holds a NUL character (\\u0000)"
            continue
        if isinstance(node, dict):
            children = [(f"{path}.{k}" if path else str(k), v) for k, v in node.items()]
            for key in node:
                if isinstance(key, str) and "\x00" in key:
                    return f"a key in {path or 'the value'} holds a NUL character (\\u0000)"
        elif isinstance(node, list | tuple):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(node)]
        else:
            continue
        if children and depth >= max_depth:
            return f"{path or 'the value'} nests deeper than {max_depth} levels"
        stack.extend((child, depth + 1, where) for where, child in children)
    return None
