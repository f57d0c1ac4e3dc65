"""The live set of triggers: rebuilt whenever definitions change, without a restart."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interlock.definitions import VersionCache
from interlock.errors import InvalidInput
from interlock.store.workflows import Workflows
from interlock.telemetry.metrics import Metrics
from router.matching import Matcher, TriggerRef

log = structlog.get_logger(__name__)


class Definitions:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: VersionCache,
        poll: timedelta,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._cache = cache
        self._poll = poll
        self._revision: str | None = None
        self.matcher = Matcher(())
        self.workflows = 0
        self.changed = asyncio.Event()  # set after every rebuild (tests wait on it)

    async def refresh(self) -> bool:
        """Rebuild the matcher if the definitions changed; True if it did."""
        async with self._sessions() as session:
            revision = await Workflows(session).revision()
            if revision == self._revision:
                return False
            rows = await Workflows(session).current()
            triggers: list[TriggerRef] = []
            for row in rows:
                try:
                    compiled = await self._cache.get(session, row.version_id)
                except InvalidInput as exc:
                    log.error("definition.unusable", workflow=row.name, error=exc.detail)
                    continue
                triggers.extend(
                    TriggerRef(
                        workflow=row.name,
                        version_id=row.version_id,
                        version=row.current_version,
                        trigger_index=t.index,
                        pattern=t.pattern,
                        condition=t.condition,
                    )
                    for t in compiled.triggers
                )
        if self._metrics is not None:
            # a series per conditional trigger from the start, at 0: an alert's increase()
            # sees the first error, not only the second
            for workflow in {t.workflow for t in triggers if t.condition is not None}:
                self._metrics.trigger_errors.labels(workflow=workflow)
                self._metrics.trigger_over_budget.labels(workflow=workflow)
        # swapped in one assignment: an event in flight keeps the matcher it started with
        self.matcher = Matcher(triggers)
        self.workflows = len(rows)
        self._revision = revision
        log.info("definitions.loaded", workflows=len(rows), triggers=len(triggers))
        self.changed.set()
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._poll.total_seconds())
            with contextlib.suppress(Exception):
                await self.refresh()
