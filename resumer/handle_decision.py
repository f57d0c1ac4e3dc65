"""An approval decision in: validate it, and let exactly one outcome win (one transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from interlock.batching import Batcher
from interlock.bus.codec import decode_cloudevent
from interlock.bus.topology import DECISION_TYPE, ExchangeName
from interlock.clock import Clock
from interlock.definitions import VersionCache
from interlock.errors import DeadLetterReason, InvalidInput, NotReady
from interlock.outbox import OutboxRelay
from interlock.store.boundary import STALE_SQLSTATE, Boundary
from interlock.store.engine import raw_connection
from interlock.telemetry.metrics import BatchOperation, Metrics
from resumer.resume import ExecutionRow, settle_boundary
from schemas.cloudevent import CONTENT_TYPE, CloudEvent
from schemas.decisions import DecisionData, RejectionReason, Verdict
from schemas.lifecycle import LifecycleType
from schemas.status import StepStatus
from schemas.steps import ApprovalStep, OnReject

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ResumerDeps:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    definitions: VersionCache
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    max_message_bytes: int


def parse_decision(event: CloudEvent) -> DecisionData:
    if event.type != DECISION_TYPE:
        raise InvalidInput(
            DeadLetterReason.INVALID_MESSAGE, f"expected type {DECISION_TYPE}, got {event.type}"
        )
    try:
        return DecisionData.model_validate(event.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "data"
        raise InvalidInput(
            DeadLetterReason.INVALID_MESSAGE, f"decision data.{loc}: {first['msg']}"
        ) from None


class DecisionHandler:
    def __init__(self, deps: ResumerDeps) -> None:
        self._d = deps
        batches = deps.metrics.db_batch
        self._reads: Batcher[str, asyncpg.Record | None] = Batcher(
            self._read_batch, observe=batches.labels(BatchOperation.DECISION_READ).observe
        )
        self._decisions: Batcher[str, str] = Batcher(
            self._decide_batch, observe=batches.labels(BatchOperation.DECIDE).observe
        )

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        d = self._d
        event = decode_cloudevent(message.body, max_bytes=d.max_message_bytes)
        decision = parse_decision(event)
        d.metrics.decisions_received.inc()
        with structlog.contextvars.bound_contextvars(
            approval_id=decision.approval_id, decision_id=event.id
        ):
            rejected = await self.decide(event, decision)
        d.relay.notify()
        if rejected is None:
            d.metrics.decisions_accepted.inc()
            log.info("decision.accepted", decision=decision.decision.value, by=decision.decided_by)
        else:
            d.metrics.decisions_rejected.labels(reason=rejected.value).inc()
            log.info("decision.rejected", reason=rejected.value, by=decision.decided_by)

    async def decide(self, event: CloudEvent, decision: DecisionData) -> RejectionReason | None:
        """Accept or refuse; either way the decision and its consequences commit together.

        What the outcome would write is prepared from one read, then `interlock_decide` takes
        the locks, validates under them and applies, all in one statement. Decisions handled
        at the same time share the read and the transaction (see `interlock.batching`), and
        no database connection is held while the definition is looked up: a burst of
        decisions must not exhaust the pool waiting for itself.
        """
        now = self._d.clock.now()
        row = await self._reads.submit(decision.approval_id)
        payload: dict[str, Any] = {
            "now": now.isoformat(),
            "source": event.source,
            "decision_id": event.id,
            "approval_id": decision.approval_id,
            "decision": decision.decision.value,
            "decided_by": decision.decided_by,
            "comment": decision.comment,
            "data": decision.data,
            "rejection": _rejection(event, decision, now),
        }
        if row is not None:
            payload["step_id"] = row["step_id"]
            payload["boundary"] = orjson.loads((await self._resume(row, decision, now)).payload())
        result = await self._decisions.submit(orjson.dumps(payload).decode())
        return None if result == "accepted" else RejectionReason(result)

    async def _read_batch(self, approval_ids: Sequence[str]) -> list[asyncpg.Record | None]:
        async with raw_connection(self._d.engine) as conn:
            rows = await conn.fetch(_READ, list(set(approval_ids)))
        by_id = {row["approval_id"]: row for row in rows}
        return [by_id.get(approval_id) for approval_id in approval_ids]

    async def _decide_batch(self, payloads: Sequence[str]) -> list[str]:
        async with raw_connection(self._d.engine) as conn:
            try:
                if len(payloads) == 1:
                    return [await conn.fetchval("SELECT interlock_decide($1::jsonb)", payloads[0])]
                answers = await conn.fetchval(
                    "SELECT interlock_decides($1::jsonb)", "[" + ",".join(payloads) + "]"
                )
                return list(answers)
            except asyncpg.PostgresError as exc:
                if len(payloads) == 1 and getattr(exc, "sqlstate", None) == STALE_SQLSTATE:
                    raise NotReady(f"approval changed while deciding: {exc}") from None
                # in a batch: the batcher retries one by one, and only that one is not ready
                raise

    async def _resume(self, row: Any, decision: DecisionData, now: datetime) -> Boundary:
        """The writes of an accepted decision: the step's outcome and the execution resumed."""
        cached = self._d.definitions.cached(row["version_id"])
        if cached is None:
            async with self._d.sessions() as session:
                cached = await self._d.definitions.get(session, row["version_id"])
        spec = cached.steps_by_id[row["step_id"]].spec
        approved = decision.decision is Verdict.APPROVED
        fail = (
            not approved
            and isinstance(spec, ApprovalStep)
            and spec.approval.on_reject is OnReject.FAIL
        )
        status = StepStatus.FAILED if fail else StepStatus.COMPLETED
        output = {
            "decision": decision.decision.value,
            "decided_by": decision.decided_by,
            "comment": decision.comment,
            "data": decision.data,
            "decided_at": now.isoformat(),
            "approval_id": decision.approval_id,
        }
        error = f"rejected by {decision.decided_by}" if fail else None
        verb = "approved" if approved else "rejected"
        cause = f"approval {decision.approval_id} {verb} by {decision.decided_by}"
        return settle_boundary(
            ExecutionRow.of(row, id_column="execution_id"),
            settled=(row["step_id"], row["position"], status),
            now=now,
            cause=cause,
            output=output,
            error=error,
        )


_READ = """
SELECT a.id AS approval_id, a.step_id, a.execution_id, e.version_id, e.workflow, e.version,
       e.event_source, e.event_id, coalesce(s.position, 0) AS position
FROM approval a
JOIN execution e ON e.id = a.execution_id
LEFT JOIN step_run s ON s.execution_id = a.execution_id AND s.step_id = a.step_id
WHERE a.id = ANY($1::text[])
"""


def _rejection(event: CloudEvent, decision: DecisionData, now: datetime) -> dict[str, Any]:
    """The refusal announcement as an outbox row; the database fills in `data.reason`."""
    body = {
        "specversion": "1.0",
        "id": f"{event.source}:{event.id}:rejected",
        "source": "interlock/resumer",
        "type": LifecycleType.DECISION_REJECTED.value,
        "time": now.isoformat(),
        "subject": decision.approval_id,
        "datacontenttype": "application/json",
        "data": {
            "approval_id": decision.approval_id,
            "decision_id": event.id,
            "decision_source": event.source,
            "decision": decision.decision.value,
            "decided_by": decision.decided_by,
            "reason": None,
        },
    }
    return {
        "exchange": ExchangeName.LIFECYCLE.value,
        "routing_key": LifecycleType.DECISION_REJECTED.value,
        "message_id": body["id"],
        "content_type": CONTENT_TYPE,
        "body": body,
    }
