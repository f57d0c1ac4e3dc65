"""House rule: one write path. No code outside it writes outbox rows or changes a status."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("interlock", "executor", "resumer", "router", "schemas")
# what a second write path would have to contain, in SQL or through SQLAlchemy
WRITES = re.compile(
    r"INSERT\s+INTO\s+outbox_message|insert\(\s*(_table|OutboxMessage)"
    r"|UPDATE\s+(execution|step_run|step_item|approval)\s+SET\b[^;]*\bstatus\s*="
    r"|update\(\s*_(ex|step|ap)\b",
    re.IGNORECASE | re.DOTALL,
)
ALLOWED = {
    "interlock/store/sql/outbox.sql",  # the one outbox insert
    "interlock/store/sql/apply.sql",  # the one write path
}


def _sources() -> list[Path]:
    return [
        path
        for top in SOURCES
        for path in (ROOT / top).rglob("*")
        if path.suffix in (".py", ".sql") and path.is_file()
    ]


def test_only_the_write_path_writes_outbox_rows_or_changes_a_status() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources()
        if WRITES.search(path.read_text()) and str(path.relative_to(ROOT)) not in ALLOWED
    ]
    assert offenders == []


def test_the_write_path_is_where_the_rule_says() -> None:
    # the rule above must keep finding what it allows, or it would pass by finding nothing
    found = {str(p.relative_to(ROOT)) for p in _sources() if WRITES.search(p.read_text())}
    assert found == ALLOWED


def test_the_engine_core_imports_no_io() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, interlock.engine.decide, interlock.engine.scope;"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'aio_pika', 'aiormq', 'sqlalchemy', 'asyncpg', 'httpx', 'structlog'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
