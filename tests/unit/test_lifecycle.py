"""Lifecycle messages are built as plain dicts for speed; they must keep the documented shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson

from interlock.bus.topology import ExchangeName
from interlock.lifecycle import lifecycle_message
from schemas.cloudevent import CloudEvent
from schemas.lifecycle import LifecycleData, LifecycleType


@dataclass(frozen=True)
class Facts:
    id: UUID
    workflow: str
    version: int
    event_source: str
    event_id: str


FACTS = Facts(uuid4(), "refund", 3, "shop", "e-1")
AT = datetime(2026, 11, 23, 5, 30, 1, 123456, tzinfo=UTC)


def test_a_lifecycle_message_is_a_valid_cloudevent_with_the_documented_data() -> None:
    message = lifecycle_message(
        LifecycleType.STEP_COMPLETED, FACTS, status="completed", at=AT, step_id="pay", attempt=2
    )
    assert message.exchange is ExchangeName.LIFECYCLE
    assert message.routing_key == "interlock.step.completed"
    event = CloudEvent.model_validate(orjson.loads(message.body))
    assert event.type == "interlock.step.completed"
    assert event.subject == str(FACTS.id)
    assert event.time == AT
    data = LifecycleData.model_validate(event.data)
    assert data.execution_id == FACTS.id
    assert (data.workflow, data.version, data.step_id, data.attempt) == ("refund", 3, "pay", 2)
    assert (data.event_source, data.event_id) == ("shop", "e-1")
    assert data.at == AT
    assert "error" not in event.data  # absent, not null


def test_two_transitions_of_the_same_kind_get_different_ids_and_a_repeat_the_same() -> None:
    first = lifecycle_message(LifecycleType.EXECUTION_RESUMED, FACTS, status="running", at=AT)
    again = lifecycle_message(LifecycleType.EXECUTION_RESUMED, FACTS, status="running", at=AT)
    later = lifecycle_message(
        LifecycleType.EXECUTION_RESUMED,
        FACTS,
        status="running",
        at=AT.replace(second=9),
    )
    assert first.message_id == again.message_id
    assert first.message_id != later.message_id
