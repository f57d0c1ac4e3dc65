"""Claimed outbox rows as messages: what the broker will take, and a dead letter for the rest."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from interlock.bus.dead_letter import (
    DEAD_AT,
    DETAIL,
    DETAIL_LIMIT,
    ORIGINAL_EXCHANGE,
    ORIGINAL_MESSAGE_ID,
    ORIGINAL_ROUTING_KEY,
    REASON,
    SERVICE,
)
from interlock.bus.message import OutgoingMessage
from interlock.bus.outgoing import BODY_BYTES, SHORT_STRING_BYTES, validate_outgoing
from interlock.bus.topology import ExchangeName
from interlock.errors import DeadLetterReason, Unpublishable


@dataclass(frozen=True)
class OutboxRow:
    """One claimed row as stored; nothing about it is trusted to be publishable."""

    id: int
    exchange: str
    routing_key: str
    message_id: str
    content_type: str
    headers: Any
    body: bytes
    created_at: datetime
    problem: str | None = None  # found while reading the row

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> OutboxRow:
        headers, problem = record["headers"], None
        if isinstance(headers, str):
            try:
                headers = orjson.loads(headers)
            except orjson.JSONDecodeError as exc:
                headers, problem = None, f"headers are not JSON we can read: {exc}"
        return cls(
            id=record["id"],
            exchange=record["exchange"],
            routing_key=record["routing_key"],
            message_id=record["message_id"],
            content_type=record["content_type"],
            headers=headers,
            body=bytes(record["body"]),
            created_at=record["created_at"],
            problem=problem,
        )


@dataclass(frozen=True)
class Planned:
    """What the relay sends for a row: the row's own message, or its dead letter."""

    row: OutboxRow
    message: OutgoingMessage
    refused: str | None = None  # why the row itself cannot go out


def to_message(row: OutboxRow) -> OutgoingMessage:
    """The row as a message; raises Unpublishable if the broker would refuse it."""
    if row.problem is not None:
        raise Unpublishable(row.problem)
    try:
        exchange = ExchangeName(row.exchange)
    except ValueError:
        raise Unpublishable(f"unknown exchange {row.exchange[:60]!r}") from None
    if row.headers is not None and not isinstance(row.headers, dict):
        raise Unpublishable(f"headers are a JSON {type(row.headers).__name__}, not an object")
    message = OutgoingMessage(
        exchange=exchange,
        routing_key=row.routing_key,
        body=row.body,
        message_id=row.message_id,
        content_type=row.content_type,
        headers=row.headers or {},
        timestamp=row.created_at,
    )
    validate_outgoing(message)
    return message


def plan(row: OutboxRow, dead_letter: DeadLetterFactory, now: datetime) -> Planned:
    try:
        return Planned(row, to_message(row))
    except Unpublishable as exc:
        return Planned(row, dead_letter(row, exc.detail, now), refused=exc.detail)


@dataclass(frozen=True)
class DeadLetterFactory:
    """Builds the dead letter of a row the broker will not take, from what of it can go.

    Whatever made the row unpublishable is left out (a long id is replaced by its digest, a
    huge body is dropped), so the dead letter itself always goes out and the relay moves on.
    """

    service: str
    exchange_names: Mapping[ExchangeName, str]

    def __call__(self, row: OutboxRow, detail: str, now: datetime) -> OutgoingMessage:
        body = row.body
        if len(body) > BODY_BYTES:
            body = b""
            detail = f"{detail} (the body of {len(row.body)} bytes was dropped)"
        exchange = _known(row.exchange)
        ours = {
            REASON: DeadLetterReason.UNPUBLISHABLE.value,
            DETAIL: detail[:DETAIL_LIMIT],
            SERVICE: self.service,
            ORIGINAL_EXCHANGE: self.exchange_names[exchange] if exchange else row.exchange,
            ORIGINAL_ROUTING_KEY: row.routing_key,
            DEAD_AT: now.isoformat(),
        }
        id_fits = 0 < _size(row.message_id) <= SHORT_STRING_BYTES
        if not id_fits:
            ours[ORIGINAL_MESSAGE_ID] = row.message_id
        ours = {name: value[:DETAIL_LIMIT] for name, value in ours.items()}
        message = OutgoingMessage(
            exchange=ExchangeName.DEAD,
            routing_key=_fitting(row.routing_key, ""),
            body=body,
            # an id that fits is kept; else one derived from it, the original in a header
            message_id=row.message_id if id_fits else _digest(row.message_id),
            content_type=_fitting(row.content_type, "application/octet-stream"),
            headers=ours,
            timestamp=row.created_at,
        )
        with_own = replace(message, headers=_own_headers(row) | ours)
        try:
            validate_outgoing(with_own)
        except Unpublishable:
            return message  # the row's own headers are what the broker refuses: drop them
        return with_own


def _own_headers(row: OutboxRow) -> dict[str, Any]:
    return dict(row.headers) if isinstance(row.headers, dict) else {}


def _known(exchange: str) -> ExchangeName | None:
    try:
        return ExchangeName(exchange)
    except ValueError:
        return None


def _size(value: str) -> int:
    return len(value.encode(errors="replace"))


def _fitting(value: str, otherwise: str) -> str:
    return value if _size(value) <= SHORT_STRING_BYTES else otherwise


def _digest(message_id: str) -> str:
    return "sha256:" + hashlib.sha256(message_id.encode(errors="replace")).hexdigest()
