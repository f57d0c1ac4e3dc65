"""Changing an execution from outside its executor: read, decide with the core, apply.

The resumer (decisions, cancels, the reconciler) and the CLI (`executions retry`) all go this
way; the write path applies a decision only to the revision it was made from, so when the
execution moved on in between, the change is decided again from a fresh read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from interlock.batching import Batcher
from interlock.clock import Clock
from interlock.definitions import VersionCache
from interlock.engine.decide import decide
from interlock.engine.draft import Context, EngineSettings
from interlock.engine.inputs import Input
from interlock.engine.scope import RunScope
from interlock.engine.state import ExecutionState
from interlock.engine.writes import Decision
from interlock.errors import NotReady
from interlock.store.apply import Applied, Result, payload
from interlock.store.approvals import new_approval_id
from interlock.store.engine import raw_connection
from interlock.store.state import load_states
from interlock.telemetry.tracing import Tracing
from schemas.compiled import CompiledWorkflow
from schemas.trace_context import NO_TRACE, TraceHeaders

MAX_TRIES: Final = 10
Apply = Callable[[UUID | None, str], Awaitable[Applied]]


@dataclass(frozen=True)
class Steered:
    """What was decided and applied; `decision.refused` says why nothing changed, if so."""

    decision: Decision
    workflow: CompiledWorkflow
    state: ExecutionState  # as read, before the decision


class Steering:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        definitions: VersionCache,
        clock: Clock,
        apply: Apply,
        settings: EngineSettings | None = None,
        observe_reads: Callable[[float], None] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._definitions = definitions
        self._clock = clock
        self._apply = apply
        self._settings = settings or EngineSettings()
        self._tracing = tracing or Tracing()
        # reads of executions steered at the same time share a round trip
        self._reads: Batcher[UUID, ExecutionState | None] = Batcher(
            self._read, observe=observe_reads
        )

    async def steer(
        self, execution_id: UUID, make: Callable[[ExecutionState], Awaitable[Input | None]]
    ) -> Steered | None:
        """Apply `make(state)`'s input; None if there is no such execution (or no input).

        Traced as a resume: a span linked to the trace the execution started in, whose
        context the messages of the change carry. Raises NotReady if the execution kept
        changing under every try.
        """
        state = await self._reads.submit(execution_id)
        if state is None:
            return None
        with self._tracing.resume(state.workflow, state.id, state.origin_trace) as trace:
            for _ in range(MAX_TRIES):
                done, steered = await self._try(state, make, trace)
                if done:
                    return steered
                state = await self._reads.submit(execution_id)
                if state is None:
                    return None
        raise NotReady(f"execution {execution_id} kept changing while it was being steered")

    async def _try(
        self,
        state: ExecutionState,
        make: Callable[[ExecutionState], Awaitable[Input | None]],
        trace: TraceHeaders,
    ) -> tuple[bool, Steered | None]:
        """One decide-apply: whether it is done (False: the execution changed, read again)."""
        event = await make(state)
        if event is None:
            return True, None
        workflow = await self.workflow(state.version_id)
        now = self._clock.now()
        decision = decide(workflow, state, event, self.context(state, now, trace))
        if decision.empty:
            return True, Steered(decision, workflow, state)
        body = payload(decision, workflow, now=now, revision=state.revision)
        applied = await self._apply(state.id, body)
        if applied.result is Result.OK:
            return True, Steered(decision, workflow, state)
        if applied.result is Result.MISSING:
            return True, None
        if applied.result is Result.DUPLICATE:
            decision.refused = "duplicate"
            return True, Steered(decision, workflow, state)
        return False, None

    def context(
        self, state: ExecutionState, now: datetime, trace: TraceHeaders = NO_TRACE
    ) -> Context:
        return Context(
            now=now,
            scope=RunScope(state),
            settings=self._settings,
            new_approval_id=new_approval_id,
            trace=trace,
        )

    async def workflow(self, version_id: int) -> CompiledWorkflow:
        cached = self._definitions.cached(version_id)
        if cached is not None:
            return cached
        async with self._sessions() as session:
            return await self._definitions.get(session, version_id)

    async def _read(self, ids: Sequence[UUID]) -> list[ExecutionState | None]:
        async with raw_connection(self._engine) as conn:
            found = await load_states(conn, ids)
        return [found.get(i) for i in ids]
