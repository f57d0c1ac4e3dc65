"""Progress lines of long CLI work: on a terminal about once a second, elsewhere none."""

from __future__ import annotations

import io

from interlock.benchmark.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_first_count_and_the_last_but_not_every_one() -> None:
    stream = Terminal()
    progress = Progress.on_terminal(stream)
    for n in range(1000):  # far quicker than a second apart
        progress.count("replay", n, 1000, "dead letters")
    progress.count("replay", 1000, 1000, "dead letters")
    lines = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "replay: 0/1000 dead letters",
        "replay: 1000/1000 dead letters",
    ]


def test_a_pipe_or_a_file_gets_no_progress_lines() -> None:
    stream = io.StringIO()
    progress = Progress.on_terminal(stream)
    progress.count("replay", 0, 2, "dead letters")
    progress.count("replay", 2, 2, "dead letters")
    progress.line("done")
    assert stream.getvalue() == ""
