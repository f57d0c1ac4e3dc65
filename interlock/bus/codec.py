"""Bytes <-> our models: orjson, size, depth and NUL limits, one clear dead-letter reason each."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from interlock.bus.message import RUN_EXECUTION_KEY, ExchangeName, OutgoingMessage
from interlock.errors import DeadLetterReason, InvalidInput
from schemas.cloudevent import CONTENT_TYPE, CloudEvent
from schemas.json_bounds import MAX_DEPTH, find_nul, json_depth, may_hold_nul
from schemas.messages import RunExecution

M = TypeVar("M", bound=BaseModel)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:3]:
        loc = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{loc}: {error['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def parse_json(body: bytes, *, max_bytes: int) -> Any:
    """Parse an incoming body, refusing at once what no retry could ever store or handle.

    Depth is measured before parsing, so nesting never reaches a recursive parser, and a NUL
    is refused here rather than by PostgreSQL after the message has burnt its deliveries.
    """
    if len(body) > max_bytes:
        raise InvalidInput(
            DeadLetterReason.TOO_LARGE, f"{len(body)} bytes is over the limit of {max_bytes}"
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(DeadLetterReason.NOT_UTF8, f"body is not UTF-8: {exc}") from None
    depth = json_depth(body, at_least=MAX_DEPTH)
    if depth > MAX_DEPTH:
        raise InvalidInput(
            DeadLetterReason.TOO_DEEP, f"nested {depth} levels deep; the limit is {MAX_DEPTH}"
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(DeadLetterReason.MALFORMED_JSON, str(exc)) from None
    if may_hold_nul(body) and (where := find_nul(payload)) is not None:
        raise InvalidInput(
            DeadLetterReason.NUL_CHARACTER,
            f"{where} holds a NUL character (\\u0000), which PostgreSQL cannot store",
        )
    return payload


def decode_cloudevent(body: bytes, *, max_bytes: int) -> CloudEvent:
    payload = parse_json(body, max_bytes=max_bytes)
    if not isinstance(payload, dict):
        raise InvalidInput(
            DeadLetterReason.NOT_A_CLOUDEVENT, "a CloudEvent is a JSON object (structured mode)"
        )
    try:
        return CloudEvent.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput(DeadLetterReason.NOT_A_CLOUDEVENT, _first_error(exc)) from None


def event_data(event: CloudEvent, model: type[M], what: str) -> M:
    """A command's or decision's `data`, or InvalidInput naming the first bad field."""
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "data"
        raise InvalidInput(
            DeadLetterReason.INVALID_MESSAGE, f"{what} data.{loc}: {first['msg']}"
        ) from None


def decode_model(body: bytes, model: type[M], *, max_bytes: int) -> M:
    payload = parse_json(body, max_bytes=max_bytes)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput(DeadLetterReason.INVALID_MESSAGE, _first_error(exc)) from None


def encode_cloudevent(event: CloudEvent, exchange: ExchangeName) -> OutgoingMessage:
    return OutgoingMessage(
        exchange=exchange,
        routing_key=event.type,
        body=orjson.dumps(event.model_dump(mode="json", exclude_none=True)),
        message_id=event.id,
        content_type=CONTENT_TYPE,
        timestamp=event.time,
    )


def encode_run(execution_id: str, reason: str, now: datetime) -> OutgoingMessage:
    message = RunExecution.model_validate(
        {"execution_id": execution_id, "reason": reason, "sent_at": now}
    )
    return OutgoingMessage(
        exchange=ExchangeName.EXECUTIONS,
        routing_key=RUN_EXECUTION_KEY,
        body=message.model_dump_json().encode(),
        message_id=f"{execution_id}:{reason}:{now.timestamp():.6f}",
        timestamp=now,
    )
