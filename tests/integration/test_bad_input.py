"""The bad-input corpus: every kind gets a clear error or a dead letter, and no partial state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from interlock.bus.dead_letter import DETAIL, REASON
from interlock.bus.topology import CANCEL_TYPE, DECISION_TYPE, RUN_EXECUTION_KEY, ExchangeName
from interlock.settings import Settings
from interlock.store.tables import (
    Decision,
    Execution,
    OutboxMessage,
    SeenEvent,
    StepRun,
    table_of,
)
from schemas.definition import DefinitionError, parse_definition
from tests.support.eventually import eventually
from tests.support.harness import running

pytestmark = pytest.mark.integration

MAX_BYTES = 64 * 1024


def ce(**fields: Any) -> bytes:
    event = {"specversion": "1.0", "id": "e-1", "source": "corpus", "type": "order.placed"}
    event.update(fields)
    return orjson.dumps({k: v for k, v in event.items() if v is not _DROP})


_DROP = object()


def nested(depth: int) -> bytes:
    return (
        b'{"specversion":"1.0","id":"n","source":"s","type":"order.placed","data":'
        + (b"[" * depth + b"]" * depth)
        + b"}"
    )


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    reason: str
    exchange: ExchangeName = ExchangeName.EVENTS
    routing_key: str = "order.placed"
    detail: str = ""


DECISION = {"specversion": "1.0", "id": "d-1", "source": "ui", "type": DECISION_TYPE}
CANCEL = {"specversion": "1.0", "id": "c-1", "source": "ops", "type": CANCEL_TYPE}


def decision(data: Any, **extra: Any) -> bytes:
    return orjson.dumps(DECISION | {"data": data} | extra)


def cancel(data: Any) -> bytes:
    return orjson.dumps(CANCEL | {"data": data})


def run_message(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else orjson.dumps(payload)


CASES = [
    Case("broken json", b'{"specversion": "1.0", "id": ', "malformed_json"),
    Case("trailing garbage", ce() + b"}}", "malformed_json"),
    Case("not utf-8", b'{"id": "\xff\xfe"}', "not_utf8"),
    Case("latin-1 text", '{"data": "caf\u00e9"}'.encode("latin-1"), "not_utf8"),
    Case("empty body", b"", "malformed_json"),
    Case("json array", b"[1, 2]", "not_a_cloudevent"),
    Case("json string", b'"order.placed"', "not_a_cloudevent"),
    Case("json number", b"42", "not_a_cloudevent"),
    Case("json null", b"null", "not_a_cloudevent"),
    Case("missing specversion", ce(specversion=_DROP), "not_a_cloudevent", detail="specversion"),
    Case("wrong specversion", ce(specversion="0.3"), "not_a_cloudevent", detail="specversion"),
    Case("missing id", ce(id=_DROP), "not_a_cloudevent", detail="id"),
    Case("empty id", ce(id=""), "not_a_cloudevent", detail="id"),
    Case("id of the wrong type", ce(id=17), "not_a_cloudevent", detail="id"),
    Case("missing source", ce(source=_DROP), "not_a_cloudevent", detail="source"),
    Case("missing type", ce(type=_DROP), "not_a_cloudevent", detail="type"),
    Case("type with a wildcard", ce(type="order.#"), "not_a_cloudevent", detail="type"),
    Case("type longer than a routing key", ce(type="a" * 300), "not_a_cloudevent", detail="type"),
    Case("time not rfc3339", ce(time="yesterday"), "not_a_cloudevent", detail="time"),
    Case("time without offset", ce(time="2026-01-01T10:00:00"), "not_a_cloudevent", detail="time"),
    Case("data and data_base64", ce(data={}, data_base64="AA=="), "not_a_cloudevent"),
    Case("bad extension name", ce(**{"Bad-Ext": "x"}), "not_a_cloudevent", detail="Bad-Ext"),
    Case("huge payload", ce(data="x" * (MAX_BYTES + 1)), "too_large"),
    Case("nesting 65 deep", nested(64), "too_deep", detail="nested 65 levels deep"),
    Case("nesting 300 deep", nested(299), "too_deep", detail="nested 300 levels deep"),
    Case("nesting 5000 deep", nested(4999), "too_deep"),
    Case("NUL in event data", ce(data={"note": "a\u0000b"}), "nul_character", detail="data.note"),
    Case("NUL in a key", ce(data={"a\u0000": 1}), "nul_character", detail="data.a\\u0000"),
    Case("NUL in an extension", ce(ext="\u0000"), "nul_character", detail="ext"),
    Case("NUL in the id", ce(id="e-\u0000"), "nul_character", detail="id"),
    Case("id over 512 bytes", ce(id="\u00e9" * 257), "not_a_cloudevent", detail="id is 514 bytes"),
    Case("source over 1024 bytes", ce(source="s" * 1025), "not_a_cloudevent", detail="source"),
    Case(
        "trigger condition cannot be evaluated",
        ce(type="order.checked", data={"no_amount": True}),
        "expression_error",
        routing_key="order.checked",
        detail="amount",
    ),
    Case(
        "run message for an unknown execution",
        run_message(
            {
                "execution_id": "2b1e1a4e-1111-4a7a-9c7e-000000000000",
                "reason": "start",
                "sent_at": "2026-01-01T00:00:00Z",
            }
        ),
        "unknown_execution",
        ExchangeName.EXECUTIONS,
        RUN_EXECUTION_KEY,
    ),
    Case(
        "run message with a bad uuid",
        run_message({"execution_id": "nope", "reason": "start", "sent_at": "2026-01-01T00:00:00Z"}),
        "invalid_message",
        ExchangeName.EXECUTIONS,
        RUN_EXECUTION_KEY,
        detail="execution_id",
    ),
    Case(
        "run message with an unknown reason",
        run_message(
            {
                "execution_id": "2b1e1a4e-1111-4a7a-9c7e-000000000000",
                "reason": "because",
                "sent_at": "2026-01-01T00:00:00Z",
            }
        ),
        "invalid_message",
        ExchangeName.EXECUTIONS,
        RUN_EXECUTION_KEY,
        detail="reason",
    ),
    Case(
        "run message missing fields",
        run_message({}),
        "invalid_message",
        ExchangeName.EXECUTIONS,
        RUN_EXECUTION_KEY,
    ),
    Case(
        "run message not json",
        b"\x00\x01",
        "malformed_json",
        ExchangeName.EXECUTIONS,
        RUN_EXECUTION_KEY,
    ),
    Case(
        "decision that is neither approved nor rejected",
        decision({"approval_id": "apr_x", "decision": "maybe", "decided_by": "alice"}),
        "invalid_message",
        ExchangeName.DECISIONS,
        DECISION_TYPE,
        detail="decision",
    ),
    Case(
        "decision without decided_by",
        decision({"approval_id": "apr_x", "decision": "approved"}),
        "invalid_message",
        ExchangeName.DECISIONS,
        DECISION_TYPE,
        detail="decided_by",
    ),
    Case(
        "decision with unknown fields",
        decision({"approval_id": "apr_x", "decision": "approved", "decided_by": "a", "x": 1}),
        "invalid_message",
        ExchangeName.DECISIONS,
        DECISION_TYPE,
    ),
    Case(
        "decision data not an object",
        decision("approved"),
        "invalid_message",
        ExchangeName.DECISIONS,
        DECISION_TYPE,
    ),
    Case(
        "decision with the wrong event type",
        decision(
            {"approval_id": "apr_x", "decision": "approved", "decided_by": "a"}, type="other.type"
        ),
        "invalid_message",
        ExchangeName.DECISIONS,
        DECISION_TYPE,
    ),
    Case(
        "NUL in a decision comment",
        decision(
            {"approval_id": "apr_x", "decision": "approved", "decided_by": "a", "comment": "\u0000"}
        ),
        "nul_character",
        ExchangeName.DECISIONS,
        DECISION_TYPE,
        detail="data.comment",
    ),
    Case(
        "decision nested 1000 deep",
        decision({"approval_id": "apr_x", "decision": "approved", "decided_by": "a"}).replace(
            b'"decided_by":"a"', b'"decided_by":"a","data":' + b"[" * 1000 + b"]" * 1000
        ),
        "too_deep",
        ExchangeName.DECISIONS,
        DECISION_TYPE,
    ),
    Case(
        "decision not a cloudevent",
        b'{"approval_id": "apr_x"}',
        "not_a_cloudevent",
        ExchangeName.DECISIONS,
        DECISION_TYPE,
    ),
    Case(
        "cancel of an unknown execution",
        cancel({"execution_id": "2b1e1a4e-1111-4a7a-9c7e-000000000000"}),
        "unknown_execution",
        ExchangeName.COMMANDS,
        CANCEL_TYPE,
    ),
    Case(
        "cancel with a bad uuid",
        cancel({"execution_id": "12"}),
        "invalid_message",
        ExchangeName.COMMANDS,
        CANCEL_TYPE,
        detail="execution_id",
    ),
    Case("cancel not json", b"cancel it", "malformed_json", ExchangeName.COMMANDS, CANCEL_TYPE),
    Case(
        "NUL in a cancel reason",
        cancel({"execution_id": "2b1e1a4e-1111-4a7a-9c7e-000000000000", "reason": "x\u0000"}),
        "nul_character",
        ExchangeName.COMMANDS,
        CANCEL_TYPE,
        detail="data.reason",
    ),
    Case(
        "cancel nested 300 deep",
        cancel({"execution_id": "2b1e1a4e-1111-4a7a-9c7e-000000000000", "reason": 0}).replace(
            b'"reason":0', b'"reason":' + b"[" * 300 + b"]" * 300
        ),
        "too_deep",
        ExchangeName.COMMANDS,
        CANCEL_TYPE,
    ),
]

WORKFLOWS = """
name: corpus
triggers:
  - on: order.placed
  - on: order.checked
    if: event.data.amount > 10
steps: [{id: s, action: set, with: {ok: true}}]
"""


async def _counts(h: Any) -> dict[str, int]:
    counts = {}
    async with h.sessions() as session:
        for model in (Execution, StepRun, OutboxMessage, SeenEvent, Decision):
            table = table_of(model)
            counts[table.name] = int(
                await session.scalar(select(func.count()).select_from(table)) or 0
            )
    return counts


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_bad_message_is_dead_lettered_with_its_reason_and_leaves_no_state(
    settings: Settings, case: Case
) -> None:
    settings.amqp.max_message_bytes = MAX_BYTES
    async with running(settings) as h:
        await h.apply(WORKFLOWS)
        await h.publish_raw(case.body, case.routing_key, case.exchange)
        (dead,) = await h.dead_letters(1)
        assert dead.headers[REASON] == case.reason
        assert case.detail in dead.headers[DETAIL]
        assert dead.body == case.body
        assert await _counts(h) == {
            "execution": 0,
            "step_run": 0,
            "outbox_message": 0,
            "seen_event": 0,
            "decision": 0,
        }
        # the service is still serving
        done = await h.run_to_end("order.placed", {})
        assert done.steps["s"].output == {"ok": True}


REFUSED_DECISIONS = [
    (
        "unknown approval",
        {"approval_id": "apr_unknown", "decision": "approved", "decided_by": "alice"},
    ),
    ("someone not among the approvers", {"decision": "approved", "decided_by": "mallory"}),
]


@pytest.mark.parametrize(("name", "data"), REFUSED_DECISIONS, ids=[n for n, _ in REFUSED_DECISIONS])
async def test_refused_decision_is_announced_and_changes_nothing(
    settings: Settings, name: str, data: dict[str, Any]
) -> None:
    async with running(settings) as h:
        await h.apply(
            """
name: gate
triggers: [{on: gate.start}]
steps:
  - id: ok
    approval: {approvers: [alice]}
"""
        )
        event_id = await h.publish("gate.start", {})
        (execution,) = await h.executions_for(event_id)
        paused = await h.wait_status(
            execution.id, *[__import__("schemas.status").status.ExecutionStatus.PAUSED]
        )
        async with h.sessions() as session:
            from interlock.store.approvals import Approvals

            (approval,) = await Approvals(session).for_execution(paused.id)
        payload = {"approval_id": approval.id} | data
        await h.publish_raw(decision(payload), DECISION_TYPE, ExchangeName.DECISIONS)

        async def refused() -> list[dict[str, Any]]:
            return [
                e
                for e in await h.drain_lifecycle()
                if e["type"] == "interlock.approval.decision_rejected"
            ]

        (announcement,) = await eventually(refused, what="the refusal")
        assert announcement["data"]["reason"] in ("unknown_approval", "not_an_approver")
        still = await h.load(paused.id)
        assert still.status is paused.status
        assert still.steps == paused.steps


DEFINITIONS = [
    (
        "invalid CEL in a trigger",
        "triggers: [{on: a.b, if: 'event.data.x >'}]\nsteps: [{id: s, action: set}]",
        "triggers[0]",
    ),
    (
        "invalid CEL in with",
        "triggers: [{on: a.b}]\nsteps: [{id: s, action: set, with: {x: '${event.data >}'}}]",
        "with.x",
    ),
    (
        "duplicate step ids",
        "triggers: [{on: a.b}]\nsteps: [{id: s, action: set}, {id: s, action: log}]",
        "'s'",
    ),
    (
        "reference to a later step",
        "triggers: [{on: a.b}]\n"
        "steps: [{id: a, if: 'steps.b.output.x', action: set}, {id: b, action: set}]",
        "'b'",
    ),
    (
        "reference to itself",
        "triggers: [{on: a.b}]\nsteps: [{id: a, action: set, with: {x: '${steps.a.output}'}}]",
        "'a'",
    ),
    ("unknown key", "triggers: [{on: a.b}]\nsteps: [{id: s, action: set, colour: red}]", "colour"),
    ("no triggers", "triggers: []\nsteps: [{id: s, action: set}]", "triggers"),
    ("bad topic pattern", "triggers: [{on: 'a.b*'}]\nsteps: [{id: s, action: set}]", "triggers[0]"),
    (
        "step with two kinds",
        "triggers: [{on: a.b}]\nsteps: [{id: s, action: set, wait: 1s}]",
        "steps[0]",
    ),
    ("negative wait", "triggers: [{on: a.b}]\nsteps: [{id: s, wait: -5s}]", "wait"),
    (
        "approval timeout over a year",
        "triggers: [{on: a.b}]\nsteps: [{id: s, approval: {approvers: any, timeout: 400d}}]",
        "timeout",
    ),
    (
        "duplicate yaml key",
        "triggers: [{on: a.b}]\nsteps: [{id: s, action: set}]\nsteps: []",
        "steps",
    ),
]


@pytest.mark.parametrize(("name", "body", "field"), DEFINITIONS, ids=[d[0] for d in DEFINITIONS])
def test_invalid_definition_is_refused_naming_file_and_field(
    name: str, body: str, field: str
) -> None:
    with pytest.raises(DefinitionError) as error:
        parse_definition("name: bad\n" + body, "corpus.yaml")
    message = str(error.value)
    assert "corpus.yaml" in message
    assert field in message


def test_non_utf8_definition_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"corpus\.yaml"):
        parse_definition(b"name: caf\xe9\n", "corpus.yaml")
