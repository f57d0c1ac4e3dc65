"""Cancel commands: the core voids every branch's waits and stops the execution (one tx)."""

from __future__ import annotations

import structlog
from aio_pika.abc import AbstractIncomingMessage

from interlock.auth import Command
from interlock.bus.codec import decode_cloudevent, event_data
from interlock.bus.retry import sender_of
from interlock.bus.topology import CANCEL_TYPE
from interlock.engine.inputs import Cancel, Input
from interlock.engine.state import ExecutionState
from interlock.errors import DeadLetterReason, InvalidInput
from resumer.handle_decision import ResumerDeps
from schemas.cloudevent import CloudEvent
from schemas.decisions import CancelData, CommandRejectionReason

log = structlog.get_logger(__name__)


def parse_cancel(body: bytes, max_bytes: int) -> tuple[CloudEvent, CancelData]:
    event = decode_cloudevent(body, max_bytes=max_bytes)
    if event.type != CANCEL_TYPE:
        raise InvalidInput(DeadLetterReason.INVALID_MESSAGE, f"expected type {CANCEL_TYPE}")
    return event, event_data(event, CancelData, "cancel")


class CancelHandler:
    def __init__(self, deps: ResumerDeps) -> None:
        self._d = deps

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        d = self._d
        event, command = parse_cancel(message.body, d.max_message_bytes)
        reason = command.reason or "cancelled"
        if command.requested_by:
            reason = f"{reason} (by {command.requested_by})"
        user = sender_of(message, d.own_user)
        cancel = Cancel(
            reason,
            user_id=user,
            permitted=d.auth.may_send(user, Command.CANCEL),
            command_id=event.id,
            command_source=event.source,
            requested_by=command.requested_by,
        )

        async def make(state: ExecutionState) -> Input:
            return cancel

        with structlog.contextvars.bound_contextvars(execution_id=str(command.execution_id)):
            steered = await d.steering.steer(command.execution_id, make)
            if steered is None:
                raise InvalidInput(
                    DeadLetterReason.UNKNOWN_EXECUTION, f"no execution {command.execution_id}"
                )
            d.relay.notify()
            status = steered.state.status.value
            refused = steered.decision.refused
            if refused is None:
                log.info("execution.cancelled", was=status, reason=reason, user_id=user)
                return
            why = CommandRejectionReason.ALREADY_FINISHED
            if refused == CommandRejectionReason.NOT_PERMITTED:
                why = CommandRejectionReason.NOT_PERMITTED
            d.metrics.commands_rejected.labels(command=Command.CANCEL, reason=why).inc()
            log.info("cancel.rejected", reason=why.value, status=status, user_id=user)
