"""The `http` action's URL, `Retry-After` and hostile replies, through a step attempt."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import structlog

from executor.actions import ActionContext, ActionRegistry
from executor.actions.builtin_http import MAX_RETRY_AFTER, http, retry_after
from executor.attempt import run_attempt
from executor.storable import MAX_ERROR_CHARS, storable_error
from interlock.engine.backoff import retry_delay
from interlock.engine.inputs import Outcome
from schemas.compiled import CompiledStep, compile_workflow
from schemas.steps import RetryPolicy
from schemas.workflow import Workflow
from tests.support.local_http import LocalHttpServer, Reply


def context(client: httpx.AsyncClient) -> ActionContext:
    return ActionContext(
        execution_id="ex-1",
        workflow="orders",
        version=1,
        step_id="call",
        attempt=1,
        idempotency_key="ex-1:call",
        event={"type": "order.created", "data": {}},
        http=client,
        logger=structlog.wrap_logger(
            None, wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL)
        ),
    )


def http_step(with_: Mapping[str, Any]) -> CompiledStep:
    workflow = Workflow.model_validate(
        {
            "name": "orders",
            "triggers": [{"on": "order.created"}],
            "steps": [{"id": "call", "action": "http", "with": dict(with_)}],
        }
    )
    return compile_workflow(workflow).steps[0]


async def attempt(client: httpx.AsyncClient, with_: Mapping[str, Any]) -> Outcome:
    return await run_attempt(
        http_step(with_),
        scope={"event": {}},
        actions=ActionRegistry.with_builtins(),
        context=context(client),
        default_timeout=timedelta(seconds=10),
        now=datetime.now(UTC),
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def sent_url(with_: dict[str, Any]) -> str:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as mock:
        await http(with_, context(mock))
    return seen[0]


async def test_a_url_with_a_query_and_no_params_is_sent_as_written() -> None:
    url = "https://api.example/x?page=2&sort=name"
    assert await sent_url({"url": url}) == url


async def test_params_are_merged_into_the_query_and_win_over_the_same_key() -> None:
    url = await sent_url({"url": "https://api.example/x?page=2&sort=name", "params": {"page": 3}})
    assert url == "https://api.example/x?sort=name&page=3"
    url = await sent_url({"url": "https://api.example/x?page=2", "params": {"size": 50}})
    assert url == "https://api.example/x?page=2&size=50"
    url = await sent_url({"url": "https://api.example/x?t=1&t=2&u", "params": {"t": "a b"}})
    assert url == "https://api.example/x?u&t=a+b"


async def test_the_urls_own_query_keeps_its_bytes_so_a_signed_url_stays_valid() -> None:
    url = "https://bucket.example/o?X-Sig=ab%2Fcd%3D&X-Exp=60&q=a%20b"
    assert await sent_url({"url": url, "params": {"part": 2}}) == url + "&part=2"


async def test_the_query_reaches_a_real_server_unchanged(client: httpx.AsyncClient) -> None:
    async with LocalHttpServer({"/x": Reply(200, b"ok")}) as server:
        outcome = await attempt(
            client, {"url": server.url("/x?page=2&q=a%20b"), "params": {"n": 1}}
        )
    assert outcome.ok, outcome.error
    assert [r.target for r in server.received] == ["/x?page=2&q=a%20b&n=1"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("30", timedelta(seconds=30)),
        (" 7 ", timedelta(seconds=7)),
        ("300000000000", MAX_RETRY_AFTER),
        ("9" * 400, MAX_RETRY_AFTER),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("-5", None),
        ("1.5", None),
        ("\u0663", None),  # an Arabic-Indic digit: str.isdigit() accepts it, int() too
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_delay_seconds_of_any_length_without_overflow(
    header: str | None, expected: timedelta | None
) -> None:
    assert retry_after(header) == expected


def test_retry_after_never_raises_the_delay_past_max_backoff() -> None:
    policy = RetryPolicy(attempts=3, backoff=timedelta(seconds=1), max_backoff=timedelta(minutes=1))
    rng = random.Random(1)
    assert retry_delay(policy, 1, rng=rng, floor=MAX_RETRY_AFTER) == timedelta(minutes=1)
    assert retry_delay(policy, 1, rng=rng, floor=timedelta(seconds=20)) == timedelta(seconds=20)
    assert retry_delay(policy, 1, rng=rng, floor=None) == timedelta(seconds=1)


async def test_an_absurd_retry_after_fails_the_attempt_once_with_a_bounded_delay(
    client: httpx.AsyncClient,
) -> None:
    reply = Reply(503, b"later", {"Retry-After": "300000000000"})
    async with LocalHttpServer({"/busy": reply}) as server:
        outcome = await attempt(client, {"url": server.url("/busy")})
    assert outcome.retryable is True
    assert outcome.retry_after == MAX_RETRY_AFTER
    assert outcome.error is not None
    assert "returned 503: later" in outcome.error


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(200, b'{"note": "a\\u0000b"}', {"Content-Type": "application/json"}),
            "action output contains a NUL character (U+0000), which a checkpoint cannot store",
        ),
        (
            Reply(200, b"a\x00b", {"Content-Type": "text/plain"}),
            "action output contains a NUL character (U+0000), which a checkpoint cannot store",
        ),
        (
            Reply(200, b"caf\xe9", {"Content-Type": "text/plain; charset=utf-8"}),
            "response body is not valid utf-8: byte 3 cannot be decoded",
        ),
        (
            Reply(200, b'{"a": "\xff"}', {"Content-Type": "application/json"}),
            "response claims JSON but is not: str is not valid UTF-8",
        ),
        (
            Reply(200, _nested(300), {"Content-Type": "application/json"}),
            "action output is nested deeper than 254 levels",
        ),
        (
            Reply(200, _nested(1000), {"Content-Type": "application/json"}),
            "action output is nested deeper than 254 levels",
        ),
        (
            Reply(200, _nested(5000), {"Content-Type": "application/json"}),
            "response claims JSON but is not: depth limit exceeded",
        ),
    ],
)
async def test_a_reply_a_checkpoint_cannot_hold_fails_the_step_once_without_retry(
    client: httpx.AsyncClient, reply: Reply, message: str
) -> None:
    async with LocalHttpServer({"/bad": reply}) as server:
        outcome = await attempt(client, {"url": server.url("/bad")})
    assert outcome.ok is False
    assert outcome.retryable is False
    assert outcome.error is not None
    assert outcome.error.startswith(message)


async def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(
    client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps({"path": "C:\\u0000\\x"})
    async with LocalHttpServer(
        {"/ok": Reply(200, body, {"Content-Type": "application/json"})}
    ) as server:
        outcome = await attempt(client, {"url": server.url("/ok")})
    assert outcome.ok, outcome.error
    assert outcome.output["body"] == {"path": "C:\\u0000\\x"}


async def test_a_nul_in_an_error_reply_is_escaped_in_the_error_text(
    client: httpx.AsyncClient,
) -> None:
    async with LocalHttpServer({"/e": Reply(500, b"boom\x00!")}) as server:
        outcome = await attempt(client, {"url": server.url("/e")})
    assert outcome.retryable is True
    assert outcome.error is not None
    assert "\x00" not in outcome.error
    assert outcome.error.endswith("returned 500: boom\\u0000!")


def test_error_text_is_bounded() -> None:
    text = storable_error("x" * (MAX_ERROR_CHARS + 10))
    assert text == "x" * MAX_ERROR_CHARS + "... (10 more characters)"
