"""Tests for the built-in actions and the action registry."""

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import structlog
from structlog.testing import LogCapture

from executor.actions import ActionContext, ActionRegistry, OutgoingEvent, StepFailed
from executor.actions.builtin_fail import fail
from executor.actions.builtin_http import MAX_BODY_BYTES, http
from executor.actions.builtin_log import log
from executor.actions.builtin_publish import publish
from executor.actions.builtin_set import set_values

Handler = Callable[[httpx.Request], httpx.Response]


def make_context(
    handler: Handler | None = None, capture: LogCapture | None = None
) -> ActionContext:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    logger = structlog.wrap_logger(
        None,
        processors=[capture or LogCapture()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    return ActionContext(
        execution_id="ex-1",
        workflow="orders",
        version=3,
        step_id="charge",
        attempt=1,
        idempotency_key="ex-1:charge",
        event={"type": "order.created", "data": {"id": 7}},
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler or refuse)),
        logger=logger,
    )


@pytest.fixture
async def contexts() -> AsyncIterator[Callable[..., ActionContext]]:
    made: list[ActionContext] = []

    def build(handler: Handler | None = None, capture: LogCapture | None = None) -> ActionContext:
        made.append(make_context(handler, capture))
        return made[-1]

    yield build
    for ctx in made:
        await ctx.http.aclose()


async def test_set_returns_its_with_map_as_output(contexts: Callable[..., ActionContext]) -> None:
    assert await set_values({"total": 12, "ok": True}, contexts()) == {"total": 12, "ok": True}


async def test_set_without_a_map_fails_without_retry(
    contexts: Callable[..., ActionContext],
) -> None:
    with pytest.raises(StepFailed, match="needs `with` to be a map") as caught:
        await set_values([1, 2], contexts())  # type: ignore[arg-type]
    assert caught.value.retryable is False


async def test_fail_raises_its_message_without_retry(
    contexts: Callable[..., ActionContext],
) -> None:
    with pytest.raises(StepFailed, match=r"^card declined$") as caught:
        await fail({"message": "card declined"}, contexts())
    assert caught.value.retryable is False


async def test_fail_without_a_message_says_failed_by_step(
    contexts: Callable[..., ActionContext],
) -> None:
    with pytest.raises(StepFailed, match=r"^failed by step$"):
        await fail({}, contexts())


async def test_log_writes_the_message_with_execution_fields_bound(
    contexts: Callable[..., ActionContext],
) -> None:
    capture = LogCapture()
    ctx = contexts(capture=capture)
    output = await log({"message": "charging", "level": "warning", "fields": {"amount": 12}}, ctx)
    assert output == {"message": "charging"}
    assert capture.entries == [
        {
            "event": "charging",
            "log_level": "warning",
            "amount": 12,
            "execution_id": "ex-1",
            "workflow": "orders",
            "step": "charge",
        }
    ]


async def test_log_defaults_to_info(contexts: Callable[..., ActionContext]) -> None:
    capture = LogCapture()
    await log({"message": "hello"}, contexts(capture=capture))
    assert capture.entries[0]["log_level"] == "info"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({}, "with.message"),
        ({"message": 3}, "with.message"),
        ({"message": "m", "level": "loud"}, "with.level"),
        ({"message": "m", "fields": [1]}, "with.fields"),
    ],
)
async def test_log_with_bad_arguments_fails_naming_the_field(
    contexts: Callable[..., ActionContext], args: dict[str, Any], field: str
) -> None:
    with pytest.raises(StepFailed, match=field) as caught:
        await log(args, contexts())
    assert caught.value.retryable is False


async def test_publish_emits_an_event_identified_by_the_idempotency_key(
    contexts: Callable[..., ActionContext],
) -> None:
    ctx = contexts()
    output = await publish({"type": "order.charged", "data": {"id": 7}, "subject": "7"}, ctx)
    assert output == {"type": "order.charged", "id": "ex-1:charge"}
    assert ctx.emitted == [
        OutgoingEvent(
            type="order.charged",
            source="interlock/orders",
            id="ex-1:charge",
            data={"id": 7},
            subject="7",
            extensions={
                "idempotencykey": "ex-1:charge",
                "interlockexecution": "ex-1",
                "interlockhops": 1,
            },
        )
    ]


async def test_publish_keeps_an_explicit_source(contexts: Callable[..., ActionContext]) -> None:
    ctx = contexts()
    await publish({"type": "order.charged", "source": "billing"}, ctx)
    assert ctx.emitted[0].source == "billing"
    assert ctx.emitted[0].data is None


@pytest.mark.parametrize(
    "args",
    [{}, {"type": ""}, {"type": 5}, {"type": "order.*"}, {"type": "a..b"}, {"type": "a b"}],
)
async def test_publish_refuses_a_type_that_is_not_topic_words(
    contexts: Callable[..., ActionContext], args: dict[str, Any]
) -> None:
    ctx = contexts()
    with pytest.raises(StepFailed, match=r"with\.type") as caught:
        await publish(args, ctx)
    assert caught.value.retryable is False
    assert ctx.emitted == []


async def test_http_sends_the_idempotency_key_and_parses_a_json_reply(
    contexts: Callable[..., ActionContext],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"charged": True}, headers={"X-Trace": "abc"})

    output = await http(
        {
            "method": "post",
            "url": "https://pay.example/charges",
            "headers": {"Authorization": "Bearer t", "Idempotency-Key": "mine"},
            "params": {"dry": False},
            "json": {"amount": 12},
        },
        contexts(handler),
    )
    request = seen[0]
    assert request.method == "POST"
    assert str(request.url) == "https://pay.example/charges?dry=false"
    assert request.headers["idempotency-key"] == "ex-1:charge"
    assert request.headers["authorization"] == "Bearer t"
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content) == {"amount": 12}
    assert output["status"] == 201
    assert output["headers"]["x-trace"] == "abc"
    assert output["body"] == {"charged": True}


async def test_http_returns_text_for_a_non_json_reply(
    contexts: Callable[..., ActionContext],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="pong", headers={"Content-Type": "text/plain"})

    output = await http({"url": "http://svc/ping", "body": "ping"}, contexts(handler))
    assert output["body"] == "pong"


@pytest.mark.parametrize("status", [500, 503, 429, 408])
async def test_http_server_errors_and_throttling_are_retryable(
    contexts: Callable[..., ActionContext], status: int
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="busy", headers={"Retry-After": "30"})

    with pytest.raises(StepFailed, match=f"returned {status}: busy") as caught:
        await http({"url": "http://svc/x"}, contexts(handler))
    assert caught.value.retryable is True
    assert caught.value.retry_after == timedelta(seconds=30)


@pytest.mark.parametrize("status", [400, 404, 409, 302])
async def test_http_unexpected_client_errors_are_not_retryable(
    contexts: Callable[..., ActionContext], status: int
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="nope")

    with pytest.raises(StepFailed, match=f"GET http://svc/x returned {status}") as caught:
        await http({"url": "http://svc/x"}, contexts(handler))
    assert caught.value.retryable is False


async def test_http_expect_accepts_a_listed_status_and_refuses_others(
    contexts: Callable[..., ActionContext],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if request.url.path == "/gone" else 200)

    ctx = contexts(handler)
    output = await http({"url": "http://svc/gone", "expect": [200, 404]}, ctx)
    assert output["status"] == 404
    with pytest.raises(StepFailed, match="returned 200") as caught:
        await http({"url": "http://svc/ok", "expect": 201}, ctx)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("x")],
)
async def test_http_transport_errors_are_retryable(
    contexts: Callable[..., ActionContext], error: httpx.TransportError
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(StepFailed, match=type(error).__name__) as caught:
        await http({"url": "http://svc/x", "timeout": 2}, contexts(handler))
    assert caught.value.retryable is True


async def test_http_body_over_one_mebibyte_fails_without_retry(
    contexts: Callable[..., ActionContext],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * (MAX_BODY_BYTES + 1))

    with pytest.raises(StepFailed, match="over the 1048576 byte limit") as caught:
        await http({"url": "http://svc/big"}, contexts(handler))
    assert caught.value.retryable is False


async def test_http_body_of_exactly_one_mebibyte_is_accepted(
    contexts: Callable[..., ActionContext],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * MAX_BODY_BYTES)

    output = await http({"url": "http://svc/big"}, contexts(handler))
    assert len(output["body"]) == MAX_BODY_BYTES


async def test_http_reply_claiming_json_but_garbled_fails_without_retry(
    contexts: Callable[..., ActionContext],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{", headers={"Content-Type": "application/json"})

    with pytest.raises(StepFailed, match="claims JSON") as caught:
        await http({"url": "http://svc/x"}, contexts(handler))
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({}, "with.url: is required"),
        ({"url": 5}, "with.url"),
        ({"url": "/relative"}, "with.url"),
        ({"url": "ftp://svc/x"}, "with.url"),
        ({"url": "http://svc", "method": "FETCH"}, "with.method"),
        ({"url": "http://svc", "json": {}, "body": "x"}, "with.body"),
        ({"url": "http://svc", "headers": {"A": [1]}}, "with.headers.A"),
        ({"url": "http://svc", "expect": "200"}, "with.expect"),
        ({"url": "http://svc", "expect": [True]}, "with.expect"),
        ({"url": "http://svc", "timeout": 0}, "with.timeout"),
    ],
)
async def test_http_with_bad_arguments_fails_naming_the_field(
    contexts: Callable[..., ActionContext], args: dict[str, Any], field: str
) -> None:
    with pytest.raises(StepFailed, match=field) as caught:
        await http(args, contexts())
    assert caught.value.retryable is False


def test_registry_with_builtins_offers_the_five_builtins() -> None:
    registry = ActionRegistry.with_builtins()
    assert registry.names() == frozenset({"set", "log", "http", "publish", "fail"})
    assert registry.get("http") is http
    assert registry.get("nope") is None


def test_registering_a_taken_name_raises_value_error() -> None:
    registry = ActionRegistry.with_builtins()
    with pytest.raises(ValueError, match="'http' is already registered"):
        registry.register("http", set_values)


def test_modules_can_offer_an_actions_map_or_a_register_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_actions_map.py").write_text(
        "async def ping(args, ctx):\n    return 'pong'\n\nACTIONS = {'acme.ping': ping}\n"
    )
    (tmp_path / "acme_actions_hook.py").write_text(
        "async def pong(args, ctx):\n    return 'ping'\n\n"
        "def register(registry):\n    registry.register('acme.pong', pong)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ActionRegistry()
    registry.load_modules(["acme_actions_map", "acme_actions_hook"])
    assert registry.names() == frozenset({"acme.ping", "acme.pong"})


def test_a_module_offering_no_actions_raises_type_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_actions_empty.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match="acme_actions_empty"):
        ActionRegistry().load_modules(["acme_actions_empty"])


def test_a_module_actions_map_cannot_shadow_a_builtin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_actions_clash.py").write_text(
        "async def mine(args, ctx):\n    return None\n\nACTIONS = {'http': mine}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="already registered"):
        ActionRegistry.with_builtins().load_modules(["acme_actions_clash"])


def test_entry_points_register_under_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_actions_ep.py").write_text("async def greet(args, ctx):\n    return 'hi'\n")
    dist_info = tmp_path / "acme_actions-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-actions\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[interlock.actions.test]\nacme.greet = acme_actions_ep:greet\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ActionRegistry()
    registry.load_entry_points("interlock.actions.test")
    action = registry.get("acme.greet")
    assert action is not None
    assert action.__module__ == "acme_actions_ep"
