"""Pending and decided approvals."""

from __future__ import annotations

import secrets
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.records import ApprovalRecord as ApprovalRecord
from interlock.store.tables import Approval, ApprovalStatus, Execution, table_of

_ap = table_of(Approval)
_ex = table_of(Execution)


def new_approval_id() -> str:
    """Unguessable: without an auth file whoever holds it may decide, so it is a capability."""
    return "apr_" + secrets.token_urlsafe(24)


class Approvals:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, approval_id: str, *, lock: bool = False) -> ApprovalRecord | None:
        query = select(_ap).where(_ap.c.id == approval_id)
        if lock:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return ApprovalRecord(**row._mapping) if row else None

    async def pending(self, limit: int = 500) -> list[ApprovalRecord]:
        rows = await self._session.execute(
            select(_ap, _ex.c.workflow)
            .join(_ex, _ex.c.id == _ap.c.execution_id)
            .where(_ap.c.status == ApprovalStatus.PENDING)
            .order_by(_ap.c.expires_at)
            .limit(limit)
        )
        return [ApprovalRecord(**r._mapping) for r in rows]

    async def for_execution(self, execution_id: UUID) -> list[ApprovalRecord]:
        rows = await self._session.execute(
            select(_ap).where(_ap.c.execution_id == execution_id).order_by(_ap.c.created_at)
        )
        return [ApprovalRecord(**r._mapping) for r in rows]
