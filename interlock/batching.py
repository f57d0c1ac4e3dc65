"""Coalesce concurrent calls into one round trip (group commit done by the caller).

Handlers for in-flight messages each submit one item; while a batch is in flight the next
items queue up, so a busy service commits many messages per transaction and an idle one waits
for nobody: the first item goes out on the next loop turn. Every caller still gets its own
result (or exception) and acks its own message only after the batch committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from interlock.outage import is_outage

log = structlog.get_logger(__name__)

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class Batcher(Generic[I, O]):
    def __init__(
        self,
        flush: Callable[[Sequence[I]], Awaitable[Sequence[O]]],
        *,
        max_size: int = 64,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self._flush = flush
        self._max = max_size
        self._observe = observe  # told each batch's size, e.g. a histogram's observe
        self._pending: list[tuple[I, asyncio.Future[O]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> O:
        future: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="batcher")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            if self._observe is not None:
                self._observe(len(batch))
            await self._run(batch)

    async def _run(self, batch: list[tuple[I, asyncio.Future[O]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or is_outage(exc):
                # an outage fails every item alike: each caller retries on its own terms
                _fail(batch, exc)
                return
            # one bad item must not fail its neighbours: find it by going one at a time
            log.warning("batch.split", size=len(batch), error=f"{type(exc).__name__}: {exc}")
            for entry in batch:
                await self._run([entry])
            return
        except BaseException as exc:
            _fail(batch, exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(batch: list[tuple[I, asyncio.Future[O]]], exc: BaseException) -> None:
    for _, future in batch:
        if future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
