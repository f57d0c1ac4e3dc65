"""What a checkpoint can hold: step output and error text that PostgreSQL and the bus accept."""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from executor.actions.errors import StepFailed

MAX_OUTPUT_BYTES: Final = 1_048_576
# orjson's encoder stops at this depth; PostgreSQL and the CEL binding cope with more
MAX_OUTPUT_DEPTH: Final = 254
MAX_ERROR_CHARS: Final = 4_000
# an escaped NUL (`\u0000`) not itself preceded by an escaping backslash: orjson writes
# U+0000 that way, and PostgreSQL refuses it in jsonb and text alike
_ESCAPED_NUL: Final = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def storable_output(output: Any) -> Any:
    """Return `output` as plain JSON values, or raise a non-retryable StepFailed saying why not.

    Checked before the checkpoint is written: output the database refuses would fail the
    boundary after the action ran, and every redelivery would run the action again.
    """
    try:
        encoded = orjson.dumps(output, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        if str(exc) == "Recursion limit reached":
            raise StepFailed(
                f"action output is nested deeper than {MAX_OUTPUT_DEPTH} levels", retryable=False
            ) from None
        raise StepFailed(
            f"action output is not JSON-serialisable: {exc}", retryable=False
        ) from None
    if len(encoded) > MAX_OUTPUT_BYTES:
        raise StepFailed(
            f"action output is {len(encoded)} bytes, over the {MAX_OUTPUT_BYTES} limit",
            retryable=False,
        )
    if b"\\u0000" in encoded and _ESCAPED_NUL.search(encoded):
        raise StepFailed(
            "action output contains a NUL character (U+0000), which a checkpoint cannot store",
            retryable=False,
        )
    return orjson.loads(encoded)


def storable_error(text: str) -> str:
    """Error text as a checkpoint and a lifecycle event can carry it: no NUL, bounded length."""
    text = text.replace("\x00", "\\u0000")
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return f"{text[:MAX_ERROR_CHARS]}... ({len(text) - MAX_ERROR_CHARS} more characters)"
