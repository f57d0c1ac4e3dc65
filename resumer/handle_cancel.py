"""Cancel commands: the core voids every branch's waits and stops the execution (one tx)."""

from __future__ import annotations

import structlog
from aio_pika.abc import AbstractIncomingMessage

from interlock.bus.codec import decode_cloudevent, event_data
from interlock.bus.topology import CANCEL_TYPE
from interlock.engine.inputs import Cancel, Input
from interlock.engine.state import ExecutionState
from interlock.errors import DeadLetterReason, InvalidInput
from resumer.handle_decision import ResumerDeps
from schemas.decisions import CancelData

log = structlog.get_logger(__name__)


def parse_cancel(body: bytes, max_bytes: int) -> CancelData:
    event = decode_cloudevent(body, max_bytes=max_bytes)
    if event.type != CANCEL_TYPE:
        raise InvalidInput(DeadLetterReason.INVALID_MESSAGE, f"expected type {CANCEL_TYPE}")
    return event_data(event, CancelData, "cancel")


class CancelHandler:
    def __init__(self, deps: ResumerDeps) -> None:
        self._d = deps

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        d = self._d
        command = parse_cancel(message.body, d.max_message_bytes)
        reason = command.reason or "cancelled"
        if command.requested_by:
            reason = f"{reason} (by {command.requested_by})"

        async def make(state: ExecutionState) -> Input:
            return Cancel(reason)

        with structlog.contextvars.bound_contextvars(execution_id=str(command.execution_id)):
            steered = await d.steering.steer(command.execution_id, make)
            if steered is None:
                raise InvalidInput(
                    DeadLetterReason.UNKNOWN_EXECUTION, f"no execution {command.execution_id}"
                )
            d.relay.notify()
            if steered.decision.refused is None:
                log.info("execution.cancelled", was=steered.state.status.value, reason=reason)
            else:
                log.info("cancel.ignored", status=steered.state.status.value, reason=reason)
