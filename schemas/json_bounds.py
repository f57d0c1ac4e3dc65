"""What JSON our pipeline can carry: nesting depth and NUL characters, checked without recursion."""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any, Final

# Messages nest at most this deep (the envelope object is level 1), as definitions do. Stored
# JSON is wrapped a few levels deeper again (checkpoints, lifecycle events, the batch calls),
# and orjson refuses to write past 254 levels: 64 leaves that far out of reach.
MAX_DEPTH: Final = 64

# One JSON string, escapes included. Possessive, and an unterminated string runs to the end,
# so every match attempt succeeds at once: linear time even on hostile input.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256)]
_ESCAPED_NUL = b"\\u0000"


def json_depth(text: bytes, *, at_least: int = 0) -> int:
    """Deepest nesting of arrays and objects in a JSON text, without parsing it.

    Brackets inside strings do not count. Answers `0` at once when the text holds too few
    brackets to nest deeper than `at_least`, which is every ordinary message. Exact for valid
    JSON; malformed text gets some answer in linear time, and the parser refuses it anyway.
    """
    if text.count(b"[") + text.count(b"{") <= at_least:
        return 0
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets), initial=0))


def may_hold_nul(text: bytes) -> bool:
    """Whether a JSON text can decode to a string with U+0000 (JSON must escape it)."""
    return _ESCAPED_NUL in text


def find_nul(value: Any) -> str | None:
    """The path of a string or key holding U+0000, else None.

    PostgreSQL's text and jsonb cannot store that character, so such a message can never be
    recorded. Iterative, so depth is no concern here.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _printable(path) or "(root)"
        elif isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return _printable(where)
                stack.append((where, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return None


def _printable(path: str) -> str:
    return path.replace("\x00", "\\u0000")
