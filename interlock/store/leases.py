"""Leases: an executor renews the executions it runs; one it stops renewing can be taken over."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

# resumers' executors listen here: someone else changed an execution its owner runs
WAKE_CHANNEL = "interlock_wake"

_RENEW = """
UPDATE execution SET lease_expires_at = $3
WHERE owner = $1 AND id = ANY($2::uuid[])
RETURNING id, revision
"""


async def renew(
    conn: asyncpg.Connection, worker: int, ids: Sequence[UUID], until: datetime
) -> dict[UUID, int]:
    """Renew the leases `worker` still holds; returns their revisions (the others are lost)."""
    rows = await conn.fetch(_RENEW, worker, list(ids), until)
    return {row["id"]: row["revision"] for row in rows}
