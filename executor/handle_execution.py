"""A run message in: claim the execution under a lease, ack, and run it in the background.

The claim commits with the execution's first boundary (one transaction), and the message is
acked right after: from then on the lease, not an unacked message, says who runs the
execution. A step may run far longer than the broker's consumer timeout, and a lost
executor's work is taken over from the records once its lease lapses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import structlog
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor.run import ExecutionRun, RunDeps
from interlock.batching import Batcher
from interlock.bus.codec import decode_model
from interlock.definitions import VersionCache
from interlock.engine.state import ExecutionState
from interlock.errors import DeadLetterReason, InvalidInput
from interlock.store.apply import Claim
from interlock.store.engine import raw_connection
from interlock.store.state import load_states
from interlock.telemetry.metrics import BatchOperation
from schemas.compiled import CompiledWorkflow
from schemas.messages import RunExecution, RunReason
from schemas.status import ExecutionStatus

log = structlog.get_logger(__name__)
_RUNNABLE = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})


@dataclass(frozen=True)
class ExecutorDeps:
    run: RunDeps
    sessions: async_sessionmaker[AsyncSession]
    definitions: VersionCache
    lock_class: int
    lease: timedelta
    concurrency: int
    max_message_bytes: int


class ExecutionHandler:
    def __init__(self, deps: ExecutorDeps) -> None:
        self._d = deps
        self.runs: dict[UUID, ExecutionRun] = {}
        self._claiming: set[UUID] = set()
        self._slots = asyncio.Semaphore(deps.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        observe = deps.run.metrics.db_batch.labels(BatchOperation.CLAIM).observe
        self._reads: Batcher[UUID, ExecutionState | None] = Batcher(self._read, observe=observe)

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        run = decode_model(message.body, RunExecution, max_bytes=self._d.max_message_bytes)
        execution_id = run.execution_id
        local = self.runs.get(execution_id)
        if local is not None or execution_id in self._claiming:
            if local is not None:
                local.poke()  # this process runs it: have it look again
            return
        with structlog.contextvars.bound_contextvars(execution_id=str(execution_id)):
            await self._slots.acquire()  # a bounded number of runs: the rest wait unacked
            self._claiming.add(execution_id)
            started = False
            try:
                started = await self._take(run)
            finally:
                self._claiming.discard(execution_id)
                if not started:
                    self._slots.release()

    async def _take(self, message: RunExecution) -> bool:
        """Claim and start the execution; True once a run holds it (the claim committed)."""
        d = self._d
        state = await self._reads.submit(message.execution_id)
        if state is None:
            raise InvalidInput(
                DeadLetterReason.UNKNOWN_EXECUTION, f"no execution {message.execution_id}"
            )
        now = d.run.clock.now()
        leased = state.lease_expires_at is not None and state.lease_expires_at > now
        if state.status not in _RUNNABLE or (state.owner not in (None, d.run.worker) and leased):
            # finished, paused, or a live executor runs it: nothing to do here
            log.info("execution.not_claimed", status=state.status.value, owner=state.owner)
            return False
        workflow = await self._definition(state.version_id)
        if message.reason is RunReason.RESUME and state.status is ExecutionStatus.PENDING:
            # from the decision (or timer) being recorded to the execution running again
            latency = (now - message.sent_at).total_seconds()
            d.run.metrics.resume_latency.observe(max(latency, 0.0))
        claim = Claim(d.run.worker, d.lock_class, now + d.lease)
        # a run message without a trace (a retry from the CLI, say) starts one: linked back
        d.run.tracing.link_origin(state.origin_trace)
        run = ExecutionRun(d.run, state, workflow, claim, d.run.tracing.headers())
        self.runs[state.id] = run
        task = asyncio.create_task(self._drive(run), name=f"execution {state.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # ack only once the claim committed (or did not happen): a crash before leaves the
        # message to be delivered again
        await run.claimed.wait()
        return True

    async def _drive(self, run: ExecutionRun) -> None:
        metrics = self._d.run.metrics
        metrics.executions_in_flight.inc()
        context = {"execution_id": str(run.state.id), "workflow": run.state.workflow}
        try:
            with structlog.contextvars.bound_contextvars(**context):
                await run.drive()
        except asyncio.CancelledError:
            raise
        except Exception:
            # its lease lapses: the reconciler or the next claim continues from the records
            log.exception("execution.run_failed", **context)
        finally:
            metrics.executions_in_flight.dec()
            self.runs.pop(run.state.id, None)
            self._slots.release()

    async def _read(self, ids: Sequence[UUID]) -> list[ExecutionState | None]:
        async with raw_connection(self._d.run.engine) as conn:
            found = await load_states(conn, ids)
        return [found.get(i) for i in ids]

    async def _definition(self, version_id: int) -> CompiledWorkflow:
        cached = self._d.definitions.cached(version_id)
        if cached is not None:
            return cached
        async with self._d.sessions() as session:
            return await self._d.definitions.get(session, version_id)

    async def stop(self, grace: timedelta) -> None:
        """Let running executions finish within `grace`; hand the rest back at once."""
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=grace.total_seconds())
            for run in list(self.runs.values()):
                try:
                    await asyncio.wait_for(run.release("its executor stopped"), 5.0)
                except Exception as exc:
                    log.warning("execution.release_failed", error=str(exc))
            for task in unfinished:
                task.cancel()
