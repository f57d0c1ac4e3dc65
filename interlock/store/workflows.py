"""Workflow definitions and their immutable versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.tables import Workflow, WorkflowVersion, table_of

_wf = table_of(Workflow)
_FINGERPRINT = text(
    "SELECT md5(coalesce(string_agg("
    "concat_ws(':', name, current_version, deleted_at IS NULL), ',' ORDER BY name), ''))"
    " FROM workflow"
)
_ver = table_of(WorkflowVersion)


@dataclass(frozen=True)
class ApplyResult:
    name: str
    version: int
    changed: bool


@dataclass(frozen=True)
class VersionRow:
    id: int
    name: str
    version: int
    digest: str
    definition: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class WorkflowRow:
    name: str
    current_version: int
    version_id: int
    deleted_at: datetime | None
    updated_at: datetime
    definition: dict[str, Any]


class Workflows:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def apply(self, name: str, definition: dict[str, Any], digest: str) -> ApplyResult:
        """Store a definition: a new version if it changed, a no-op if it did not.

        Times are the database's (`now()`), never the clock of the machine that applies.
        """
        s = self._session
        now = func.now()
        # create-or-lock the workflow row, so concurrent applies of one name serialise
        await s.execute(
            pg_insert(_wf)
            .values(name=name, current_version=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        current = (
            await s.execute(
                select(_wf.c.current_version, _wf.c.deleted_at)
                .where(_wf.c.name == name)
                .with_for_update()
            )
        ).one()
        if current.current_version:
            latest_digest = await s.scalar(
                select(_ver.c.digest).where(
                    _ver.c.name == name, _ver.c.version == current.current_version
                )
            )
            if latest_digest == digest and current.deleted_at is None:
                return ApplyResult(name, current.current_version, changed=False)
        version = (
            int(
                await s.scalar(
                    select(func.coalesce(func.max(_ver.c.version), 0)).where(_ver.c.name == name)
                )
                or 0
            )
            + 1
        )
        await s.execute(
            insert(_ver).values(
                name=name, version=version, digest=digest, definition=definition, created_at=now
            )
        )
        await s.execute(
            update(_wf)
            .where(_wf.c.name == name)
            .values(current_version=version, deleted_at=None, updated_at=now)
        )
        return ApplyResult(name, version, changed=True)

    async def delete(self, name: str) -> bool:
        """Stop matching events for `name`; running executions keep their version."""
        result = await self._session.execute(
            update(_wf)
            .where(_wf.c.name == name, _wf.c.deleted_at.is_(None))
            .values(deleted_at=func.now(), updated_at=func.now())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def current(self, *, include_deleted: bool = False) -> list[WorkflowRow]:
        query = (
            select(
                _wf.c.name,
                _wf.c.current_version,
                _ver.c.id.label("version_id"),
                _wf.c.deleted_at,
                _wf.c.updated_at,
                _ver.c.definition,
            )
            .join(_ver, (_ver.c.name == _wf.c.name) & (_ver.c.version == _wf.c.current_version))
            .order_by(_wf.c.name)
        )
        if not include_deleted:
            query = query.where(_wf.c.deleted_at.is_(None))
        return [WorkflowRow(**row._mapping) for row in await self._session.execute(query)]

    async def revision(self) -> str:
        """A fingerprint of what the router loads: each workflow's current version, deleted or not.

        It changes with every apply or delete that commits, in whatever order they commit and
        whatever any machine's clock says: it is made of the rows, not of a time.
        """
        digest = await self._session.scalar(_FINGERPRINT)
        return str(digest)

    async def version(self, version_id: int) -> VersionRow | None:
        row = (await self._session.execute(select(_ver).where(_ver.c.id == version_id))).first()
        return VersionRow(**row._mapping) if row else None

    async def versions(self, name: str) -> list[VersionRow]:
        rows = await self._session.execute(
            select(_ver).where(_ver.c.name == name).order_by(_ver.c.version)
        )
        return [VersionRow(**row._mapping) for row in rows]
