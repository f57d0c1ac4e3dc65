"""Incoming bodies that no retry could ever store are refused at once, each with its reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from interlock.bus.codec import decode_cloudevent, parse_json
from interlock.errors import DeadLetterReason, InvalidInput
from schemas.json_bounds import MAX_DEPTH

LIMIT = 1_048_576


def event(**fields: Any) -> bytes:
    base = {"specversion": "1.0", "id": "e-1", "source": "s", "type": "a.b"}
    return orjson.dumps(base | fields)


def nested(levels: int) -> bytes:
    """An event whose body nests `levels` deep, the envelope counting as one."""
    return event(data=0).replace(
        b'"data":0', b'"data":' + b"[" * (levels - 1) + b"]" * (levels - 1)
    )


def refused(body: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as error:
        decode_cloudevent(body, max_bytes=LIMIT)
    return error.value


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 300, 1000, 100_000])
def test_nesting_past_the_limit_is_too_deep_before_any_parser_sees_it(levels: int) -> None:
    error = refused(nested(levels))
    assert error.reason is DeadLetterReason.TOO_DEEP
    assert f"nested {levels} levels deep; the limit is {MAX_DEPTH}" in error.detail


def test_nesting_at_the_limit_is_accepted() -> None:
    assert decode_cloudevent(nested(MAX_DEPTH), max_bytes=LIMIT).data is not None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (event(data={"note": "a\u0000b"}), "data.note"),
        (event(data={"k\u0000": 1}), "data.k\\u0000"),
        (event(data=["ok", ["x\u0000"]]), "data[1][0]"),
        (event(subject="\u0000"), "subject"),
        (event(id="e\u0000"), "id"),
    ],
)
def test_a_nul_anywhere_is_refused_naming_where(body: bytes, where: str) -> None:
    error = refused(body)
    assert error.reason is DeadLetterReason.NUL_CHARACTER
    assert error.detail.startswith(f"{where} holds a NUL character")


def test_an_escaped_backslash_followed_by_u0000_is_text_not_nul() -> None:
    body = event(data={"path": "C:\\u0000"})
    assert b"\\\\u0000" in body
    assert decode_cloudevent(body, max_bytes=LIMIT).data == {"path": "C:\\u0000"}


def test_ids_and_sources_are_bounded_in_bytes_so_they_can_be_stored() -> None:
    decode_cloudevent(event(id="é" * 256, source="é" * 512), max_bytes=LIMIT)
    too_long_id = refused(event(id="é" * 257))
    assert too_long_id.reason is DeadLetterReason.NOT_A_CLOUDEVENT
    assert "id is 514 bytes in UTF-8; at most 512" in too_long_id.detail
    too_long_source = refused(event(source="s" * 1025))
    assert too_long_source.reason is DeadLetterReason.NOT_A_CLOUDEVENT
    assert "source" in too_long_source.detail


def test_the_size_limit_comes_before_everything_else() -> None:
    with pytest.raises(InvalidInput) as error:
        parse_json(b"[" * 2000, max_bytes=1024)
    assert error.value.reason is DeadLetterReason.TOO_LARGE
