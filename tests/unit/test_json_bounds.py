"""Depth and NUL checks on JSON text: exact, linear, and never recursive."""

from __future__ import annotations

import time

import orjson
import pytest

from schemas.json_bounds import MAX_DEPTH, find_nul, json_depth, may_hold_nul


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b"[[[]]], [[]]", 3),
        (b'{"a": "[[[[[[[[["}', 1),  # brackets in strings do not count
        (b'{"a": "\\"[[[[", "b": [[]]}', 3),  # nor after an escaped quote
        (b'{"a": "\\\\", "b": [[]]}', 3),  # an escaped backslash ends before the quote
        (b'["unterminated [[[[[[', 1),
        (b'["ends in a backslash \\', 1),
        (b"]]]][[", 0),
    ],
)
def test_depth_counts_brackets_outside_strings(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


def test_depth_answers_zero_at_once_when_too_few_brackets_to_reach_the_bound() -> None:
    assert json_depth(b"[[[[]]]]", at_least=4) == 0
    assert json_depth(b"[[[[[]]]]]", at_least=4) == 5


def test_depth_of_a_hostile_megabyte_is_linear() -> None:
    texts = [
        b"[" * 1_000_000,
        b'"' + b'\\"' * 500_000,  # one string of escaped quotes, never terminated
        b"[" + b'"x",' * 250_000 + b"1]",
    ]
    for text in texts:
        started = time.perf_counter()
        json_depth(text, at_least=MAX_DEPTH)
        assert time.perf_counter() - started < 2.0


def test_depth_agrees_with_a_parser_on_the_limit() -> None:
    body = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    orjson.loads(body)
    assert json_depth(body, at_least=MAX_DEPTH) == 0
    deeper = b"[" + body + b"]"
    assert json_depth(deeper, at_least=MAX_DEPTH) == MAX_DEPTH + 1


def test_nul_is_found_in_values_keys_and_lists_with_its_path() -> None:
    assert find_nul({"a": {"b": ["ok", "x\x00"]}}) == "a.b[1]"
    assert find_nul({"a\x00b": 1}) == "a\\u0000b"
    assert find_nul("\x00") == "(root)"
    assert find_nul({"a": ["fine", 1, None, True, 2.5]}) is None


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    body = b'{"a": "\\\\u0000"}'
    assert may_hold_nul(body)  # only a hint: the walk decides
    assert find_nul(orjson.loads(body)) is None
    assert not may_hold_nul(b'{"a": "plain"}')


def test_nul_search_is_not_recursive() -> None:
    value: object = "\x00"
    for _ in range(10_000):
        value = [value]
    assert find_nul(value) == "[0]" * 10_000
