"""Scenario 8: what tracing adds to the hot path, off (no exporter) and on (spans not exported).

Times the tracing calls one consumed message and one step attempt make, in this process, many
times over: the consumer's check, the context its messages carry, the attempt's span and the
headers its calls send. No broker, no database: the figure is the calls' own cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final
from uuid import uuid4

from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Recorder, Target
from interlock.bus.message import ExchangeName, OutgoingMessage, with_headers
from interlock.telemetry.tracing import Tracing, finish_attempt, finish_message

CALLS: Final = 100_000
QUICK_CALLS: Final = 20_000
OFF_TARGET: Final = Target("<=", 2.0)  # µs per message and attempt with tracing off
_ORIGIN: Final = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


@dataclass(frozen=True)
class _Message:
    """What a consumer span reads off a delivery."""

    body: bytes = b'{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'
    headers: dict[str, str] | None = None
    exchange: str = "interlock.executions"
    routing_key: str = "execution.run"
    message_id: str = "m-1"


def _carrier(message: _Message) -> dict[str, str]:
    return _ORIGIN


def hot_path(tracing: Tracing, calls: int) -> float:
    """Seconds per message-and-attempt of the tracing calls the services make."""
    run = OutgoingMessage(ExchangeName.EXECUTIONS, "execution.run", b"{}", "m-1")
    message = _Message()
    execution = uuid4()
    started = time.perf_counter()
    for _ in range(calls):
        if tracing.enabled:  # the consumer: with tracing off it goes straight to the handler
            with tracing.process("interlock.executions", message, _carrier) as span:
                _run_and_attempt(tracing, run, execution)
                finish_message(span, "ack", None)
        else:
            _run_and_attempt(tracing, run, execution)
    return (time.perf_counter() - started) / calls


def _run_and_attempt(tracing: Tracing, run: OutgoingMessage, execution: object) -> None:
    tracing.link_origin(_ORIGIN)
    with_headers(run, tracing.headers())
    with tracing.attempt("workflow", "step", 1, execution, None) as span:  # type: ignore[arg-type]
        tracing.headers()
        finish_attempt(span, True, None, False)


def _nothing(run: OutgoingMessage, execution: object) -> None:
    pass


def loop_alone(calls: int) -> float:
    """Seconds per turn of the same loop without a tracing call: what `hot_path` includes."""
    run = OutgoingMessage(ExchangeName.EXECUTIONS, "execution.run", b"{}", "m-1")
    execution = uuid4()
    enabled = False
    started = time.perf_counter()
    for _ in range(calls):
        if enabled:
            pass
        else:
            _nothing(run, execution)
    return (time.perf_counter() - started) / calls


def measure(calls: int) -> dict[str, float]:
    """µs per message and attempt: tracing off (beyond the loop), and on with an SDK that
    exports nothing."""
    from opentelemetry.sdk.trace import TracerProvider

    off = hot_path(Tracing(), calls) - loop_alone(calls)
    provider = TracerProvider()  # records spans and drops them: the SDK's own cost
    try:
        on = hot_path(Tracing(provider), calls)
    finally:
        provider.shutdown()
    return {"off_us": round(max(off, 0.0) * 1e6, 3), "on_us": round(on * 1e6, 3)}


async def run_tracing(bench: Bench, rec: Recorder) -> None:
    calls = QUICK_CALLS if bench.config.quick else CALLS
    bench.progress.line(f"tracing: timing the hot path's tracing calls {calls} times")
    found = measure(calls)
    rec.details["calls"] = calls
    rec.details |= found
    rec.figure("tracing off, per message and attempt", found["off_us"], "µs", OFF_TARGET)
    rec.figure("tracing on (SDK, not exported), per message and attempt", found["on_us"], "µs")
