"""SQL that outlives a migration: the functions of the write path, one file each.

Migrations create them from these files (CREATE OR REPLACE), and a test holds the functions
in the database equal to the files, so a change here without a migration fails loudly.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

# in the order they must be created: later files call earlier ones
FILES: Final = ("outbox.sql", "transitions.sql", "route.sql", "apply.sql")


def load(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def statements() -> list[str]:
    """Every CREATE statement of every file, in order, one by one (drivers prepare each)."""
    found: list[str] = []
    for name in FILES:
        for part in load(name).split("$fn$;"):
            if part.strip() and "CREATE" in part:
                found.append(part.strip() + "$fn$;")
    return found
