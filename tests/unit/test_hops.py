"""Hop counts: every emitted event is one deeper than its trigger, and the chain has an end."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
import structlog

from executor.actions import ActionContext, OutgoingEvent, StepFailed
from executor.actions.builtin_publish import publish
from schemas.hops import HOPS_EXTENSION, HopLimitExceeded, hops_of, next_hops


@pytest.mark.parametrize(
    ("value", "hops"),
    [(None, 0), (3, 3), ("7", 7), (0, 0), (-4, 0), ("-4", 0), ("x", 0), (True, 0), (2.5, 0)],
)
def test_hops_of_reads_the_extension_and_treats_anything_odd_as_an_outside_event(
    value: Any, hops: int
) -> None:
    event = {"type": "a.b"} if value is None else {"type": "a.b", HOPS_EXTENSION: value}
    assert hops_of(event) == hops


def test_next_hops_is_one_deeper_up_to_the_limit_and_refuses_past_it() -> None:
    assert next_hops({}, 16) == 1
    assert next_hops({HOPS_EXTENSION: 15}, 16) == 16
    event = {"type": "loop.tick", "source": "interlock/loop", "id": "e-9", HOPS_EXTENSION: 16}
    with pytest.raises(HopLimitExceeded) as caught:
        next_hops(event, 16)
    assert str(caught.value) == (
        "an event emitted here would be 17 hops deep, over the limit of 16 (INTERLOCK_MAX_HOPS):"
        " the triggering event loop.tick interlock/loop e-9 is itself 16 hops deep, so a chain"
        " of workflows probably triggers itself"
    )


_NO_CALLS = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))


def _context(event: Mapping[str, Any], max_hops: int = 16) -> ActionContext:
    return ActionContext(
        execution_id="ex-1",
        workflow="loop",
        version=1,
        step_id="again",
        attempt=1,
        idempotency_key="ex-1:again",
        event=event,
        http=_NO_CALLS,  # never used: emitting is bookkeeping
        logger=structlog.wrap_logger(
            None, wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL)
        ),
        max_hops=max_hops,
    )


async def test_publish_sets_the_hop_count_one_above_the_triggering_event() -> None:
    ctx = _context({"type": "loop.tick", HOPS_EXTENSION: 4})
    await publish({"type": "loop.tick"}, ctx)
    assert ctx.emitted[0].extensions[HOPS_EXTENSION] == 5


async def test_publish_past_the_limit_fails_without_retry_and_emits_nothing() -> None:
    ctx = _context({"type": "loop.tick", HOPS_EXTENSION: 3}, max_hops=3)
    with pytest.raises(StepFailed, match="would be 4 hops deep, over the limit of 3") as caught:
        await publish({"type": "loop.tick"}, ctx)
    assert caught.value.retryable is False
    assert ctx.emitted == []


async def test_a_user_emitted_event_counts_hops_too() -> None:
    ctx = _context({"type": "a.b"})
    ctx.emit(OutgoingEvent(type="c.d", source="mine", id="1", data=None))
    assert ctx.emitted[0].extensions == {HOPS_EXTENSION: 1}
    ctx = _context({"type": "a.b", HOPS_EXTENSION: 16})
    with pytest.raises(StepFailed, match="17 hops deep"):
        ctx.emit(OutgoingEvent(type="c.d", source="mine", id="1", data=None))
