"""One execution this executor owns: its ready steps run until it pauses, ends, or is lost.

The core decides, this shell does the I/O: it runs built-in steps in memory (their records
commit with the next boundary), commits each boundary through the one write path, and only
then starts the attempts that boundary recorded as running, all of them at once.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace
from typing import Any, Final

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from executor.actions import ActionContext, ActionRegistry
from executor.attempt import idempotency_key, run_attempt
from executor.secrets import Secrets
from interlock.clock import Clock
from interlock.engine.decide import decide
from interlock.engine.draft import Context, EngineSettings
from interlock.engine.inputs import AttemptFinished, Claimed, Input, LeaseLost, Outcome, Reconsider
from interlock.engine.scope import RunScope
from interlock.engine.state import ExecutionState
from interlock.engine.writes import Decision, Launch
from interlock.outage import is_outage
from interlock.outbox import OutboxRelay
from interlock.settings import ExecutorSettings
from interlock.store.apply import Applied, Claim, Result, payload
from interlock.store.approvals import new_approval_id
from interlock.store.committer import Committer
from interlock.store.engine import raw_connection
from interlock.store.state import load_states
from interlock.telemetry.metrics import Metrics
from interlock.telemetry.observe import observe_decision
from interlock.telemetry.tracing import Tracing, finish_attempt
from schemas.compiled import CompiledWorkflow
from schemas.hops import DEFAULT_MAX_HOPS
from schemas.trace_context import NO_TRACE, TraceHeaders

log = structlog.get_logger(__name__)

# a boundary found the execution changed under it this many times in a row: give it up (its
# lease lapses and another executor, or this one, picks it up from the records)
MAX_STALE: Final = 20


@dataclass(frozen=True)
class RunDeps:
    engine: AsyncEngine
    committer: Committer
    actions: ActionRegistry
    http: httpx.AsyncClient
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    worker: int
    settings: ExecutorSettings
    engine_settings: EngineSettings
    rng: random.Random = field(default_factory=random.Random)
    secrets: Secrets = field(default_factory=Secrets)
    max_hops: int = DEFAULT_MAX_HOPS
    tracing: Tracing = field(default_factory=Tracing)
    # histogram children by (workflow, step, action), shared by every run of the process
    durations: dict[tuple[str, str, str], Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Finished:
    launch: Launch
    outcome: Outcome


class ExecutionRun:
    def __init__(
        self,
        deps: RunDeps,
        state: ExecutionState,
        workflow: CompiledWorkflow,
        claim: Claim | None = None,
        trace: TraceHeaders = NO_TRACE,
    ) -> None:
        self._d = deps
        self._trace = trace  # the run message's span: what this run's messages carry
        # decided as its owner from the start; the first commit makes it so (or says busy)
        self.state = state.but(owner=deps.worker)
        self.workflow = workflow
        self._claim = claim
        self.claimed = asyncio.Event()  # the first boundary (and the claim) committed, or not
        self._scope = RunScope(state)
        self._attempts: dict[tuple[str, int | None], asyncio.Task[None]] = {}
        self._inbox: asyncio.Queue[_Finished | None] = asyncio.Queue()  # None: look again
        self._woken = False
        self.lost = False

    @property
    def owns(self) -> bool:
        """Its claim committed and it has not lost the execution since."""
        return self._claim is None and not self.lost

    def poke(self) -> None:
        """Someone else changed the execution: read it again, start what became ready."""
        if not self._woken:
            self._woken = True
            self._inbox.put_nowait(None)

    def lose(self, why: str) -> None:
        """Another executor owns it now: stop, and leave its records to the new owner."""
        if not self.lost:
            log.warning("execution.ownership_lost", execution_id=str(self.state.id), why=why)
        self.lost = True
        for task in self._attempts.values():
            task.cancel()
        self._inbox.put_nowait(None)

    async def drive(self) -> None:
        try:
            try:
                await self._advance(Claimed())
            finally:
                self.claimed.set()
            while self._attempts and not self.lost:
                finished = await self._inbox.get()
                if self.lost:
                    break
                if finished is None:
                    self._woken = False
                    if await self._reload():
                        await self._advance(Reconsider())
                    continue
                self._attempts.pop(finished.launch.key, None)
                launch = finished.launch
                await self._advance(
                    AttemptFinished(launch.step_id, launch.item, launch.attempt, finished.outcome)
                )
        finally:
            for task in self._attempts.values():
                task.cancel()

    async def release(self, why: str) -> None:
        """Let go on purpose (shutting down): running attempts end here, another owner reruns
        them from the records at once instead of after the lease runs out."""
        for task in self._attempts.values():
            task.cancel()
        self._attempts.clear()
        if not self.lost:
            await self._advance(LeaseLost(why))
        self.lost = True

    async def _advance(self, event: Input) -> None:
        for _ in range(MAX_STALE):
            decision = await self._inline(self._decide(self.state, event))
            applied = await self._commit(decision)
            if applied.result is Result.OK:
                self._claim = None  # it is ours now: later boundaries check the owner instead
                self.state = replace(decision.state, revision=applied.revision or 0)
                observe_decision(self._d.metrics, self.workflow, decision)
                if not decision.empty:
                    self._d.relay.notify()
                for launch in decision.launch:
                    self._start(launch)
                return
            if applied.result is Result.BUSY:
                log.info("execution.not_claimed", reason="a live executor runs it")
                self.lost = True
                return
            if applied.result is not Result.STALE:
                self.lose(applied.result.value)
                return
            if not await self._reload():
                return
        self.lose(f"the execution changed under {MAX_STALE} boundaries in a row")

    def _decide(self, state: ExecutionState, event: Input) -> Decision:
        return decide(self.workflow, state, event, self._context())

    def _context(self) -> Context:
        d = self._d
        return Context(
            now=d.clock.now(),
            scope=self._scope,
            owner=d.worker,
            settings=d.engine_settings,
            rng=d.rng,
            new_approval_id=new_approval_id,
            trace=self._trace,
        )

    async def _inline(self, decision: Decision) -> Decision:
        """Run the built-ins without effects outside the database in memory, into one commit.

        A crash before that commit reruns them, which nobody can tell from the first run, and
        what they publish is an outbox row, sent only if the commit happens.
        """
        done: set[tuple[str, int | None, int]] = set()
        while True:
            inline = [
                a
                for a in decision.launch
                if (a.step_id, a.item, a.attempt) not in done and self._is_inline(a)
            ]
            if not inline:
                break
            for launch in inline:
                done.add((launch.step_id, launch.item, launch.attempt))
                outcome = await self._attempt(launch, decision.state)
                event = AttemptFinished(launch.step_id, launch.item, launch.attempt, outcome)
                decision.extend(self._decide(decision.state, event))
        decision.launch = [a for a in decision.launch if (a.step_id, a.item, a.attempt) not in done]
        return decision

    def _is_inline(self, launch: Launch) -> bool:
        return self._d.actions.is_inline(self.workflow.steps_by_id[launch.step_id].action or "")

    async def _commit(self, decision: Decision) -> Applied:
        if decision.empty:
            return Applied(Result.OK, self.state.revision)
        body = payload(
            decision,
            self.workflow,
            now=self._d.clock.now(),
            revision=self.state.revision,
            owner=None if self._claim is not None else self._d.worker,
            claim=self._claim,
        )
        delay = 0.1
        while True:
            try:
                return await self._d.committer.submit(self.state.id, body)
            except Exception as exc:
                if not is_outage(exc) or self.lost:
                    raise
                # an outage is waited out: the lease decides whether this run may go on after
                log.warning("execution.commit_waits", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _reload(self) -> bool:
        async with raw_connection(self._d.engine) as conn:
            found = (await load_states(conn, [self.state.id])).get(self.state.id)
        if found is not None and self._claim is not None:
            # not claimed yet: decide again as its owner; the claim says whether it may be
            self.state = found.but(owner=self._d.worker)
            return True
        if found is None or found.owner != self._d.worker:
            self.lose("another executor took it over")
            return False
        self.state = found
        return True

    def _start(self, launch: Launch) -> None:
        async def attempt() -> None:
            outcome = await self._attempt(launch, self.state)
            self._inbox.put_nowait(_Finished(launch, outcome))

        name = f"attempt {self.state.id}:{launch.step_id}"
        self._attempts[launch.key] = asyncio.create_task(attempt(), name=name)

    async def _attempt(self, launch: Launch, state: ExecutionState) -> Outcome:
        d = self._d
        step = self.workflow.steps_by_id[launch.step_id]
        with d.tracing.attempt(
            state.workflow, step.id, launch.attempt, state.id, launch.item
        ) as span:
            outcome = await self._call(launch, state, d.tracing.headers())
            finish_attempt(span, outcome.ok, outcome.error, outcome.retryable)
        self._duration(step.id, step.action or "").observe(outcome.seconds)
        return outcome

    async def _call(self, launch: Launch, state: ExecutionState, trace: TraceHeaders) -> Outcome:
        d = self._d
        step = self.workflow.steps_by_id[launch.step_id]
        if launch.item is None:
            scope = self._scope.at(state)
        else:
            scope = self._scope.for_item(state, launch.value, launch.item)
        key = idempotency_key(str(state.id), step.id, launch.item)
        logger = log.bind(step=step.id, attempt=launch.attempt, item=launch.item)
        context = ActionContext(
            execution_id=str(state.id),
            workflow=state.workflow,
            version=state.version,
            step_id=step.id,
            attempt=launch.attempt,
            idempotency_key=key,
            event=state.event,
            http=d.http,
            logger=logger,
            item=launch.value,
            index=launch.item,
            secrets=d.secrets,
            max_hops=d.max_hops,
            trace=trace,
        )
        if self._is_inline(launch):
            # built-ins that finish in memory: no timeout to arm, no log context to bind
            return await run_attempt(
                step,
                scope=scope,
                actions=d.actions,
                context=context,
                default_timeout=None,
                now=d.clock.now(),
            )
        with structlog.contextvars.bound_contextvars(step=step.id):
            return await run_attempt(
                step,
                scope=scope,
                actions=d.actions,
                context=context,
                default_timeout=d.settings.default_step_timeout,
                now=d.clock.now(),
            )

    def _duration(self, step_id: str, action: str) -> Any:
        """The step's duration histogram, looked up once per process (labels() is not free)."""
        key = (self.state.workflow, step_id, action)
        child = self._d.durations.get(key)
        if child is None:
            child = self._d.metrics.step_duration.labels(
                workflow=key[0], step=step_id, action=action
            )
            self._d.durations[key] = child
        return child
