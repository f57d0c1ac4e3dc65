"""The docs read as data: fenced blocks with their language and check marker, CLI command lines."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
# `<!-- docs-check: steps -->` on the line before a block says how to check it
_MARKER = re.compile(r"^\s*<!--\s*docs-check:\s*(?P<marker>.+?)\s*-->\s*$")
_SHELLS = frozenset({"sh", "shell", "bash", "console"})
_INLINE = re.compile(r"`((?:\.venv/bin/)?interlock [^`]+)`")
# where a command ends on a shell line
_SEPARATORS = frozenset({"|", "||", "&&", ";", "&", ">", ">>", "2>", "2>&1", "<"})
_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def docs() -> list[Path]:
    """The README and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    marker: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    """Every fenced block, its indentation (inside a list item) taken off."""
    lines = path.read_text().splitlines()
    opened: tuple[int, str, str, str | None] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        fence = _FENCE.match(line)
        if fence is None:
            if opened is not None:
                body.append(line.removeprefix(opened[1]))
            continue
        if opened is None:
            before = next((b for b in reversed(lines[: number - 1]) if b.strip()), "")
            marker = _MARKER.match(before)
            opened = (number, fence["indent"], fence["lang"], marker and marker["marker"])
            body = []
        else:
            yield Block(path, opened[0], opened[2], opened[3], "\n".join(body) + "\n")
            opened = None


@dataclass(frozen=True)
class Command:
    where: str
    text: str  # as written
    args: list[str]  # after `interlock`, up to the end of the command


def commands(path: Path) -> Iterator[Command]:
    """`interlock` command lines of shell and console blocks, and `interlock ...` code spans."""
    for block in blocks(path):
        if block.lang not in _SHELLS:
            continue
        for offset, line in enumerate(block.text.splitlines(), 1):
            if block.lang == "console":
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            found = _interlock_args(line)
            if found is not None:
                yield Command(f"{block.where}+{offset}", line, found)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for span in _INLINE.findall(line):
            # `[--from STEP]` in a span is an optional part: check it like the rest
            found = _interlock_args(span.replace("[", " ").replace("]", " "))
            if found is not None:
                yield Command(f"{path.relative_to(ROOT)}:{number}", span, found)


def _interlock_args(line: str) -> list[str] | None:
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:
        return None  # not a shell line (an unbalanced quote in prose)
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    if not words or not (words[0] == "interlock" or words[0].endswith("/interlock")):
        return None
    args: list[str] = []
    for word in words[1:]:
        if word in _SEPARATORS:
            break
        args.append(word)
    return args
