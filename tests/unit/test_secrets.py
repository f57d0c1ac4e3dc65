"""`${secrets.NAME}`: read at start, resolved in `with` only, masked wherever it could leak."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import structlog

from executor.actions import ActionContext, ActionRegistry
from executor.attempt import run_attempt
from executor.secrets import Redactor, Secrets, SecretsError
from interlock.cli.secret_check import secret_problems
from interlock.engine.inputs import Outcome
from interlock.telemetry.logging import configure_logging
from schemas.compiled import CompiledStep, compile_workflow
from schemas.definition import parse_definition
from schemas.expressions import Expression, ExpressionError, Scope
from schemas.workflow import Workflow
from tests.support.local_http import LocalHttpServer, Received, Reply

TOKEN = "s3cr3t-t0ken/+="


def test_secrets_are_read_from_files_and_environment_variables(tmp_path: Path) -> None:
    (tmp_path / "db_password").write_text("hunter2\n")
    (tmp_path / "api-key").write_text("k-1\r\n")
    (tmp_path / "shadowed").write_text("from file")
    (tmp_path / ".hidden").write_text("skipped")
    (tmp_path / "..data").mkdir()  # how a Kubernetes secret volume looks inside
    environ = {
        "INTERLOCK_SECRET_TOKEN": "t\n",
        "INTERLOCK_SECRET_shadowed": "from env",
        "INTERLOCK_SECRET_": "no name",
        "INTERLOCK_SECRETS_DIR": str(tmp_path),
        "PATH": "/bin",
    }
    secrets = Secrets.load(tmp_path, environ)
    assert secrets.names() == {"db_password", "api-key", "shadowed", "TOKEN"}
    assert secrets.get("db_password") == "hunter2"
    assert secrets.get("api-key") == "k-1"
    assert secrets.get("TOKEN") == "t"
    assert secrets.get("shadowed") == "from env"
    assert "hunter2" not in repr(secrets)
    assert Secrets.load(None, {}).names() == frozenset()


def test_a_missing_secrets_directory_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match=r"^INTERLOCK_SECRETS_DIR=.*/missing: cannot read: No"):
        Secrets.load(tmp_path / "missing", {})


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"x" * 70_000, "s is larger than 65536 bytes"), (b"\xff\xfe", "s is not UTF-8 text")],
)
def test_a_secret_file_that_cannot_be_used_is_one_clear_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "s").write_bytes(content)
    with pytest.raises(SecretsError, match=f"^INTERLOCK_SECRETS_DIR=.*: {message}$"):
        Secrets.load(tmp_path, {})


def test_redactor_masks_values_their_url_forms_and_keys_but_not_empty_secrets() -> None:
    redactor = Redactor(["abc", "abcdef", "p@ss word", ""])
    assert redactor.text("x abcdef y abc z") == "x *** y *** z"
    assert redactor.text("q=p%40ss+word&r=p%40ss%20word") == "q=***&r=***"
    value = {"abc": ["abcdef", 1, None, {"n": "p@ss word"}], "ok": True}
    assert redactor.value(value) == {"***": ["***", 1, None, {"n": "***"}], "ok": True}
    assert not Redactor([""])
    assert Redactor([]).text("anything") == "anything"


def _context(client: httpx.AsyncClient, secrets: Secrets) -> ActionContext:
    return ActionContext(
        execution_id="ex-1",
        workflow="calls",
        version=1,
        step_id="call",
        attempt=1,
        idempotency_key="ex-1:call",
        event={"type": "x.y", "data": {"who": "bob"}},
        http=client,
        logger=structlog.get_logger("test").bind(),
        secrets=secrets,
    )


def _step(with_: Mapping[str, Any], action: str = "http", guard: str | None = None) -> CompiledStep:
    step: dict[str, Any] = {"id": "call", "action": action, "with": dict(with_)}
    if guard is not None:
        step["if"] = guard
    workflow = Workflow.model_validate(
        {"name": "calls", "triggers": [{"on": "x.y"}], "steps": [step]}
    )
    return compile_workflow(workflow).steps[0]


async def _attempt(
    step: CompiledStep,
    secrets: Secrets,
    actions: ActionRegistry | None = None,
    scope: Mapping[str, Any] | Scope | None = None,
) -> Outcome:
    async with httpx.AsyncClient() as client:
        return await run_attempt(
            step,
            scope=scope if scope is not None else Scope({"event": {"data": {"who": "bob"}}}),
            actions=actions or ActionRegistry.with_builtins(),
            context=_context(client, secrets),
            default_timeout=timedelta(seconds=5),
            now=datetime.now(UTC),
        )


def _echo(request: Received) -> Reply:
    body = {"auth": request.headers.get("authorization"), "target": request.target}
    return Reply(200, orjson.dumps(body), {"Content-Type": "application/json"})


async def test_a_secret_is_sent_but_masked_in_the_output() -> None:
    secrets = Secrets({"TOKEN": TOKEN})
    async with LocalHttpServer({"/echo": _echo}) as server:
        step = _step(
            {
                "url": server.url("/echo?key=${secrets.TOKEN}"),
                "headers": {"Authorization": "Bearer ${secrets.TOKEN}"},
            }
        )
        outcome = await _attempt(step, secrets)
    assert outcome.ok, outcome.error
    assert server.received[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert outcome.output["body"] == {"auth": "Bearer ***", "target": "/echo?key=***"}
    assert TOKEN not in orjson.dumps(outcome.output).decode()


async def test_a_secret_in_an_error_text_is_masked() -> None:
    secrets = Secrets({"TOKEN": TOKEN})
    reply = Reply(500, f"bad token {TOKEN}".encode())
    async with LocalHttpServer({"/fail": reply}) as server:
        outcome = await _attempt(_step({"url": server.url("/fail?key=${secrets.TOKEN}")}), secrets)
    assert outcome.retryable is True
    assert outcome.error == f"GET {server.url('/fail?key=***')} returned 500: bad token ***"


async def test_an_exception_message_holding_a_secret_is_masked() -> None:
    async def leaky(args: Mapping[str, Any], ctx: ActionContext) -> None:
        raise RuntimeError(f"login failed with {args['password']}")

    registry = ActionRegistry()
    registry.register("leaky", leaky)
    step = _step({"password": "${secrets.TOKEN}"}, action="leaky")
    outcome = await _attempt(step, Secrets({"TOKEN": TOKEN}), registry)
    assert outcome.error == "RuntimeError: login failed with ***"


async def test_an_event_emitted_with_a_secret_carries_the_mask() -> None:
    step = _step({"type": "x.done", "data": {"token": "${secrets.TOKEN}"}}, action="publish")
    outcome = await _attempt(step, Secrets({"TOKEN": TOKEN}))
    assert outcome.ok, outcome.error
    (message,) = outcome.emitted
    assert orjson.loads(message.body)["data"] == {"token": "***"}


async def test_an_unknown_secret_fails_the_step_without_retry_naming_only_the_secret() -> None:
    async with LocalHttpServer({"/x": Reply(200)}) as server:
        step = _step({"url": server.url("/x"), "headers": {"A": "${secrets.MISSING}"}})
        outcome = await _attempt(step, Secrets({"TOKEN": TOKEN}))
    assert outcome.retryable is False
    assert outcome.error is not None
    assert outcome.error.startswith("unknown secret 'MISSING': set INTERLOCK_SECRET_MISSING")
    assert server.received == []


async def test_secrets_exist_only_for_the_with_render_of_the_attempt() -> None:
    scope = Scope({"event": {"data": {}}})
    guard = Expression.compile('secrets.TOKEN == "x"')
    with pytest.raises(ExpressionError):
        guard.evaluate_bool(scope)
    step = _step({"value": "${secrets.TOKEN}"}, action="set")
    outcome = await _attempt(step, Secrets({"TOKEN": TOKEN}), scope=scope)
    assert outcome.output == {"value": "***"}
    with pytest.raises(ExpressionError):
        guard.evaluate_bool(scope)  # the step's render did not leave them in the shared scope


async def test_a_step_reads_only_the_secrets_it_names() -> None:
    step = _step({"all": "${secrets}"}, action="set")
    outcome = await _attempt(step, Secrets({"TOKEN": TOKEN}))
    assert outcome.ok is False
    assert outcome.error is not None
    assert TOKEN not in outcome.error


@pytest.fixture
def logging_restored() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "_StructlogHandler"]:
        root.removeHandler(handler)
        handler.close()


@pytest.mark.parametrize("as_json", [True, False])
@pytest.mark.usefixtures("logging_restored")
async def test_log_lines_never_carry_a_secret(
    capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    secrets = Secrets({"TOKEN": TOKEN})
    configure_logging(level="INFO", json=as_json, redact=secrets.redactor().text)
    fields = {"t": "${secrets.TOKEN}"}
    step = _step({"message": "token is ${secrets.TOKEN}", "fields": fields}, action="log")
    outcome = await _attempt(step, secrets)
    try:
        raise ValueError(f"bad {TOKEN}")
    except ValueError:
        structlog.get_logger("test").exception("failed", token=TOKEN)
    logging.getLogger("stdlib").warning("stdlib saw %s", TOKEN)
    assert outcome.output == {"message": "token is ***"}
    err = capsys.readouterr().err
    assert "token is ***" in err
    assert "stdlib saw ***" in err
    assert TOKEN not in err
    assert TOKEN.replace("/", "\\/") not in err


def _loaded(text: str) -> list[tuple[Path, Workflow]]:
    return [(Path("flows/wf.yaml"), parse_definition(text, "wf.yaml"))]


def test_apply_warns_about_secrets_it_cannot_see_and_refuses_them_outside_with() -> None:
    loaded = _loaded(
        """
name: wf
triggers: [{on: a.b, if: 'secrets.T == "x"'}]
steps:
  - id: call
    if: has(secrets.T)
    action: http
    with:
      url: "https://api.example/?k=${secrets.SEEN}"
      headers: {A: "${secrets.UNSEEN}", B: "${secrets[event.data.name]}"}
  - id: ask
    approval: {approvers: any, prompt: "token ${secrets.T}"}
"""
    )
    warnings, errors = secret_problems(loaded, frozenset({"SEEN"}))
    assert warnings == [
        "flows/wf.yaml: steps[0] (id 'call') -> with.headers.A: secret 'UNSEEN' is not set here"
        " (INTERLOCK_SECRET_UNSEEN or a file 'UNSEEN' in INTERLOCK_SECRETS_DIR);"
        " the executor needs it",
        "flows/wf.yaml: steps[0] (id 'call') -> with.headers.B: secrets can only be read by a"
        ' written-out name: secrets.NAME or secrets["NAME"]',
    ]
    assert errors == [
        "flows/wf.yaml: triggers[0] -> if: secrets can only be used in a step's `with`",
        "flows/wf.yaml: steps[0] (id 'call') -> if: secrets can only be used in a step's `with`",
        "flows/wf.yaml: steps[1] (id 'ask') -> approval.prompt: secrets can only be used in a"
        " step's `with`",
    ]
    assert secret_problems(loaded, None)[0] == [warnings[1]]
