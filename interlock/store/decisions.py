"""Every decision message received: its (source, id) makes a resent decision recognisable."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.tables import Decision, DecisionOutcome, table_of

_dec = table_of(Decision)


class Decisions:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def receive(
        self,
        *,
        source: str,
        decision_id: str,
        approval_id: str,
        decision: str,
        decided_by: str,
        now: datetime,
    ) -> bool:
        """Record the decision as rejected-until-accepted; False if it was received before."""
        result = await self._session.execute(
            pg_insert(_dec)
            .values(
                source=source,
                id=decision_id,
                approval_id=approval_id,
                decision=decision,
                decided_by=decided_by,
                outcome=DecisionOutcome.REJECTED,
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["source", "id"])
            .returning(_dec.c.id)
        )
        return result.first() is not None

    async def settle(
        self, source: str, decision_id: str, outcome: DecisionOutcome, reason: str | None
    ) -> None:
        await self._session.execute(
            update(_dec)
            .where(_dec.c.source == source, _dec.c.id == decision_id)
            .values(outcome=outcome, reason=reason)
        )
