"""A trie of AMQP topic patterns that matches a routing key against thousands of them at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

T = TypeVar("T")

MAX_PATTERN_BYTES: Final = 255  # an AMQP short string, the limit on a binding key

_STAR: Final = "*"
_HASH: Final = "#"


def split_words(key: str) -> list[str]:
    """Split like RabbitMQ: the empty key has no words, but "a." and "." end in an empty word."""
    return key.split(".") if key else []


def validate_pattern(pattern: str) -> None:
    """Raise ValueError for a pattern we refuse to bind.

    Refused: the empty pattern, a word mixing `*` or `#` with other characters (`a*`, `#b`, `**`),
    and patterns over 255 UTF-8 bytes. Empty words (`a..b`) are allowed, as in RabbitMQ.
    """
    if not pattern:
        raise ValueError("topic pattern is empty")
    size = len(pattern.encode())
    if size > MAX_PATTERN_BYTES:
        raise ValueError(f"topic pattern is {size} bytes, over the {MAX_PATTERN_BYTES} limit")
    for word in split_words(pattern):
        if word not in (_STAR, _HASH) and (_STAR in word or _HASH in word):
            raise ValueError(
                f"topic pattern {pattern!r}: word {word!r} mixes a wildcard with other characters"
            )


@dataclass(eq=False)
class _Node(Generic[T]):
    words: dict[str, _Node[T]] = field(default_factory=dict)
    star: _Node[T] | None = None
    hash: _Node[T] | None = None
    is_hash: bool = False
    values: list[tuple[int, T]] = field(default_factory=list)  # (insertion number, value)

    def child(self, word: str) -> _Node[T]:
        if word == _STAR:
            self.star = self.star or _Node()
            return self.star
        if word == _HASH:
            self.hash = self.hash or _Node(is_hash=True)
            return self.hash
        return self.words.setdefault(word, _Node())


class TopicIndex(Generic[T]):
    """Topic patterns mapped to values, matched with RabbitMQ topic-exchange semantics.

    `*` matches exactly one word and `#` zero or more. Matching walks the trie once, visiting
    each (node, word position) pair at most once, so `#.#.#` cannot blow up exponentially.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, pattern: str, value: T) -> None:
        """Bind `value` under `pattern`; raise ValueError if `validate_pattern` refuses it."""
        validate_pattern(pattern)
        node = self._root
        for word in split_words(pattern):
            node = node.child(word)
        node.values.append((self._count, value))
        self._count += 1

    def match(self, routing_key: str) -> list[T]:
        """Return the values whose pattern matches, in the order they were added.

        A value appears once per `add` whose pattern matches: adding the same value under
        two matching patterns returns it twice.
        """
        words = split_words(routing_key)
        end = len(words)
        found: list[tuple[int, T]] = []
        seen: set[tuple[int, int]] = set()
        stack: list[tuple[_Node[T], int]] = [(self._root, 0)]
        while stack:
            node, pos = stack.pop()
            if (id(node), pos) in seen:
                continue
            seen.add((id(node), pos))
            if node.is_hash and pos < end:
                stack.append((node, pos + 1))  # the `#` swallows one more word
            if node.hash is not None:
                stack.append((node.hash, pos))  # entering `#` swallows nothing yet
            if pos == end:
                found.extend(node.values)
                continue
            word = words[pos]
            if node.star is not None:
                stack.append((node.star, pos + 1))
            exact = node.words.get(word)
            if exact is not None:
                stack.append((exact, pos + 1))
        found.sort(key=lambda entry: entry[0])
        return [value for _, value in found]
