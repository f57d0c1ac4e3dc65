"""Tests for the topic-pattern trie against RabbitMQ topic-exchange semantics."""

import random
import re

import pytest

from router.trigger_index import TopicIndex, split_words, validate_pattern

CASES = [
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.b", "a.b.c", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.*.c", "a.b.b.c", False),
    ("*", "a", True),
    ("*", "", False),
    ("*", "a.b", False),
    ("*.*", ".", True),
    ("*", ".", False),
    ("#", "", True),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#", ".", True),
    ("#.#", "", True),
    ("#.#", "a.b", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "b.a", False),
    ("#.a", "a", True),
    ("#.a", "x.y.a", True),
    ("#.a", "a.x", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.b.b", True),
    ("a.#.b", "a.b.c", False),
    ("#.b.#", "b", True),
    ("#.b.#", "a.b.c", True),
    ("#.b.#", "a.c", False),
    ("#.*", "", False),
    ("#.*", "a", True),
    ("*.#", "a.b.c", True),
    ("#.*.#", "", False),
    ("#.a.#.a.#", "a.a", True),
    ("#.a.#.a.#", "x.a.y", False),
    ("a..b", "a..b", True),
    ("a..b", "a.b", False),
    ("a.*.b", "a..b", True),
    ("a.", "a.", True),
    ("a.", "a", False),
    (".a", ".a", True),
    ("order.created", "order.created", True),
    ("order.*", "order.created.v2", False),
]


def reference_match(pattern: str, key: str) -> bool:
    """Match by regex over words each terminated by '.', a spec independent of the trie."""
    parts = []
    for word in split_words(pattern):
        if word == "*":
            parts.append(r"[^.]*\.")
        elif word == "#":
            parts.append(r"(?:[^.]*\.)*")
        else:
            parts.append(re.escape(word) + r"\.")
    subject = "".join(word + "." for word in split_words(key))
    return re.fullmatch("".join(parts), subject) is not None


def test_reference_regex_agrees_with_the_case_table() -> None:
    for pattern, key, expected in CASES:
        assert reference_match(pattern, key) is expected, (pattern, key)


@pytest.mark.parametrize(("pattern", "key", "expected"), CASES)
def test_pattern_matches_key_as_rabbitmq_would(pattern: str, key: str, expected: bool) -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add(pattern, "hit")
    assert index.match(key) == (["hit"] if expected else [])


def test_random_patterns_agree_with_the_reference_regex() -> None:
    rng = random.Random(20260823)
    pattern_words = ["a", "b", "", "*", "#"]
    key_words = ["a", "b", ""]
    for _ in range(300):
        patterns = [
            ".".join(rng.choice(pattern_words) for _ in range(rng.randint(1, 5))) for _ in range(20)
        ]
        patterns = [p for p in patterns if p]
        index: TopicIndex[int] = TopicIndex()
        for number, pattern in enumerate(patterns):
            index.add(pattern, number)
        for _ in range(20):
            key = ".".join(rng.choice(key_words) for _ in range(rng.randint(0, 6)))
            expected = [n for n, p in enumerate(patterns) if reference_match(p, key)]
            assert index.match(key) == expected, (patterns, key)


def test_ten_thousand_patterns_return_exactly_the_matching_values() -> None:
    index: TopicIndex[str] = TopicIndex()
    for n in range(10_000):
        index.add(f"tenant{n}.order.created", f"exact{n}")
    index.add("tenant42.#", "tenant42-any")
    index.add("*.order.*", "any-order")
    index.add("#", "everything")
    assert len(index) == 10_003
    assert index.match("tenant42.order.created") == [
        "exact42",
        "tenant42-any",
        "any-order",
        "everything",
    ]
    assert index.match("tenant9999.order.created") == ["exact9999", "any-order", "everything"]
    assert index.match("nobody.invoice.paid") == ["everything"]


def test_many_hashes_against_a_long_key_finish_quickly() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add(".".join(["#"] * 60) + ".z", "never")
    index.add(".".join(["#", "a"] * 30), "all-a")
    key = ".".join(["a"] * 120)
    assert index.match(key) == ["all-a"]


def test_values_come_back_in_insertion_order_once_per_add() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.add("a.#", "first")
    index.add("#", "second")
    index.add("a.b", "first")
    index.add("a.*", "third")
    assert index.match("a.b") == ["first", "second", "first", "third"]


def test_an_empty_index_matches_nothing() -> None:
    index: TopicIndex[str] = TopicIndex()
    assert len(index) == 0
    assert index.match("a.b") == []


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "empty"),
        ("a*", "mixes a wildcard"),
        ("#b", "mixes a wildcard"),
        ("a.**.c", "mixes a wildcard"),
        ("a.b#", "mixes a wildcard"),
        ("x" * 256, "over the 255 limit"),
        ("é" * 128, "256 bytes"),
    ],
)
def test_refused_patterns_raise_value_error_saying_why(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_pattern(pattern)
    with pytest.raises(ValueError, match=reason):
        TopicIndex[str]().add(pattern, "x")


@pytest.mark.parametrize("pattern", ["a", "*", "#", "a..b", ".", "a.*.#", "x" * 255])
def test_accepted_patterns_pass_validation(pattern: str) -> None:
    validate_pattern(pattern)
