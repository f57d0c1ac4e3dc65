"""The `interlock` command as a user runs it: a subprocess on the test's database and namespace."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from interlock.settings import Settings
from interlock.store.executions import ExecutionRecord
from schemas.status import ExecutionStatus
from tests.support.harness import Harness, running
from tests.support.processes import Cli

pytestmark = pytest.mark.integration

ORDERS = """
name: orders
description: order intake
triggers:
  - on: order.placed
steps:
  - id: price
    action: set
    with: {total: "${event.data.qty * 10}"}
  - id: check
    if: event.data.qty < 0
    action: fail
    with: {message: negative quantity}
"""

AUDIT = """
name: audit
triggers: [{on: audit.requested}]
steps:
  - {id: note, action: log, with: {message: audited}}
"""

REFUND = """
name: refund
triggers: [{on: refund.requested}]
steps:
  - id: finance
    approval:
      approvers: [alice, bob]
      prompt: "Refund ${event.data.amount}?"
      timeout: 1h
  - id: pay
    if: steps.finance.output.decision == "approved"
    action: set
    with: {paid: "${event.data.amount}"}
"""

SUMMARY_KEYS = {
    "id",
    "workflow",
    "version",
    "status",
    "event",
    "error",
    "created_at",
    "started_at",
    "finished_at",
}
LISTED_KEYS = SUMMARY_KEYS | {"progress", "eta"}
DETAIL_KEYS = LISTED_KEYS | {"waiting", "steps", "transitions", "trace_id"}
STEP_KEYS = {
    "id",
    "kind",
    "needs",
    "waiting_for",
    "status",
    "attempt",
    "started_at",
    "finished_at",
    "duration_ms",
    "output",
    "error",
}


@pytest.fixture
def cli(database_url: str, amqp_url: str, namespace: str) -> Cli:
    return Cli.for_test(database_url, amqp_url, namespace)


@pytest.fixture
async def unborn_database_url(database_url: str) -> AsyncIterator[str]:
    """A URL naming a database that does not exist yet; dropped after the test."""
    url = make_url(database_url)
    fresh = url.set(database=f"{url.database}_m")
    yield fresh.render_as_string(hide_password=False)
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{fresh.database}" WITH (FORCE)'))
    finally:
        await engine.dispose()


def write(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


# --- migrate ---------------------------------------------------------------------------------


async def test_migrate_creates_a_missing_database_and_a_second_run_changes_nothing(
    cli: Cli, unborn_database_url: str
) -> None:
    fresh = cli.with_database(unborn_database_url)
    first = await fresh("migrate")
    assert first.code == 0, first
    assert "created database" in first.stdout
    second = await fresh("migrate")
    assert second.code == 0, second
    assert "created database" not in second.stdout
    assert "up to date" in second.stdout


async def test_a_command_on_a_database_that_does_not_exist_fails_cleanly_with_exit_3(
    cli: Cli, unborn_database_url: str
) -> None:
    missing = await cli.with_database(unborn_database_url)("workflows", "list")
    assert missing.code == 3, missing
    assert "Traceback" not in missing.stderr
    assert missing.stderr.startswith("error: ")
    assert str(make_url(unborn_database_url).database) in missing.stderr


# --- apply and workflows ---------------------------------------------------------------------


async def test_apply_creates_a_version_is_a_no_op_when_unchanged_and_versions_a_change(
    cli: Cli, tmp_path: Path
) -> None:
    path = write(tmp_path / "orders.yaml", ORDERS)
    first = await cli("apply", str(path))
    assert first.code == 0, first
    assert first.stdout.strip() == f"orders: v1 created ({path})"
    again = await cli("apply", str(path))
    assert again.stdout.strip() == f"orders: v1 unchanged ({path})"
    write(path, ORDERS.replace("order intake", "order intake, second edition"))
    changed = await cli("apply", str(path))
    assert changed.stdout.strip() == f"orders: v2 created ({path})"

    listing, showing = await asyncio.gather(
        cli("workflows", "list", "--json"), cli("workflows", "show", "orders", "--json")
    )
    (listed,) = listing.json()
    assert listed.keys() == {
        "name",
        "version",
        "description",
        "triggers",
        "steps",
        "deleted_at",
        "updated_at",
    }
    assert listed["name"] == "orders"
    assert listed["version"] == 2
    assert listed["description"] == "order intake, second edition"
    assert listed["triggers"] == ["order.placed"]
    assert listed["steps"] == ["price", "check"]
    assert listed["deleted_at"] is None
    assert listed["updated_at"]

    shown = showing.json()
    assert shown.keys() == {"name", "version", "digest", "created_at", "versions", "definition"}
    assert shown["name"] == "orders"
    assert shown["version"] == 2
    assert shown["versions"] == [1, 2]
    assert re.fullmatch(r"[0-9a-f]{64}", shown["digest"])
    assert shown["definition"]["description"] == "order intake, second edition"
    assert [s["id"] for s in shown["definition"]["steps"]] == ["price", "check"]


SWITCH = """
name: switch
triggers:
  - on: light.toggled
steps:
  - id: flip
    action: set
    with: {on: yes, off: no}
"""


async def test_apply_on_a_directory_stores_every_file_and_delete_hides_the_workflow(
    cli: Cli, tmp_path: Path
) -> None:
    write(tmp_path / "orders.yaml", ORDERS)
    write(tmp_path / "audit.yml", AUDIT)
    write(tmp_path / "switch.yaml", SWITCH)
    write(tmp_path / "README.md", "not a definition")
    applied = await cli("apply", str(tmp_path))
    assert applied.code == 0, applied
    lines = sorted(applied.stdout.splitlines())
    assert [line.split(" (")[0] for line in lines] == [
        "audit: v1 created",
        "orders: v1 created",
        "switch: v1 created",
    ]
    listing, showing = await asyncio.gather(
        cli("workflows", "list", "--json"), cli("workflows", "show", "switch", "--json")
    )
    assert sorted(w["name"] for w in listing.json()) == ["audit", "orders", "switch"]
    # YAML 1.1 would read `on:` as True and yes/no as booleans; definitions keep them strings
    definition = showing.json()["definition"]
    assert definition["triggers"] == [{"on": "light.toggled"}]
    assert definition["steps"][0]["with"] == {"on": "yes", "off": "no"}

    deleted = await cli("workflows", "delete", "audit")
    assert deleted.code == 0, deleted
    assert "audit: deleted" in deleted.stdout
    remaining = [w["name"] for w in (await cli("workflows", "list", "--json")).json()]
    assert sorted(remaining) == ["orders", "switch"]


# file name -> (content, what its one error line must say besides the file name)
INVALID: dict[str, tuple[str, list[str]]] = {
    "bad_cel_in_with": (
        """
name: bad
triggers: [{on: order.placed}]
steps:
  - id: charge
    action: set
    with: {amount: "${event.data.amount +}"}
""",
        ["steps[0] (id 'charge')", "with.amount", "invalid CEL expression"],
    ),
    "bad_cel_in_trigger_if": (
        """
name: bad
triggers:
  - on: order.placed
    if: "event.data.amount >"
steps:
  - {id: note, action: log, with: {message: hi}}
""",
        ["triggers[0] -> if", "invalid CEL expression"],
    ),
    "duplicate_step_ids": (
        """
name: bad
triggers: [{on: order.placed}]
steps:
  - {id: note, action: log, with: {message: one}}
  - {id: note, action: log, with: {message: two}}
""",
        ["steps[1] (id 'note') -> id", "duplicate step id"],
    ),
    "unknown_key": (
        """
name: bad
triggers: [{on: order.placed}]
steps:
  - {id: note, action: log, retries: 3, with: {message: hi}}
""",
        ["steps[0] (id 'note') -> retries", "unknown key"],
    ),
    "refers_to_a_later_step": (
        """
name: bad
triggers: [{on: order.placed}]
steps:
  - {id: first, action: log, with: {message: "${steps.second.output.x}"}}
  - {id: second, action: set, with: {x: 1}}
""",
        ["steps[0] (id 'first') -> with.message", "refers to step 'second'"],
    ),
    "yaml_syntax_error": (
        "name: bad\ntriggers: [{on: order.placed}\nsteps: []\n",
        ["invalid YAML at line"],
    ),
    "empty": ("", ["must be a mapping"]),
}


async def test_apply_refuses_invalid_files_naming_the_file_step_and_field_of_each(
    cli: Cli, tmp_path: Path
) -> None:
    # every file is checked before apply gives up, so one run reports each file's mistake
    paths = {
        name: write(tmp_path / f"{name}.yaml", content) for name, (content, _) in INVALID.items()
    }
    refused = await cli("apply", str(tmp_path))
    assert refused.code == 2, refused
    assert refused.stdout == ""
    lines = refused.stderr.splitlines()
    for name, path in paths.items():
        fragments = INVALID[name][1]
        # one `file: where: what` line carries everything a user needs to find the mistake
        assert any(
            line.startswith(f"{path}: ") and all(f in line for f in fragments) for line in lines
        ), f"{name}: {refused}"


SECRETIVE = """
name: secretive
triggers: [{on: secret.used}]
steps:
  - id: call
    action: http
    with: {url: "https://api.example/", headers: {A: "${secrets.SEEN}", B: "${secrets.UNSEEN}"}}
"""


async def test_apply_warns_about_a_secret_it_cannot_see_and_still_stores(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "SEEN").write_text("x\n")
    path = write(tmp_path / "secretive.yaml", SECRETIVE)
    result = await Cli(cli.env | {"INTERLOCK_SECRETS_DIR": str(tmp_path / "secrets")})(
        "apply", str(path)
    )
    assert result.code == 0, result
    assert result.stdout.strip() == f"secretive: v1 created ({path})"
    assert result.stderr.strip() == (
        f"warning: {path}: steps[0] (id 'call') -> with.headers.B: secret 'UNSEEN' is not set"
        " here (INTERLOCK_SECRET_UNSEEN or a file 'UNSEEN' in INTERLOCK_SECRETS_DIR);"
        " the executor needs it"
    )
    seen_by_env = await Cli(
        cli.env | {"INTERLOCK_SECRET_SEEN": "1", "INTERLOCK_SECRET_UNSEEN": "2"}
    )("apply", str(path))
    assert seen_by_env.code == 0, seen_by_env
    assert seen_by_env.stderr == ""


async def test_apply_refuses_a_secret_outside_with_and_stores_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "leaky.yaml",
        SECRETIVE.replace("name: secretive", "name: leaky").replace(
            "  - id: call\n", '  - id: call\n    if: secrets.SEEN == "x"\n'
        ),
    )
    result = await cli("apply", str(path))
    assert result.code == 2, result
    assert f"{path}: steps[0] (id 'call') -> if: secrets can only be used in a step's `with`" in (
        result.stderr
    )
    assert (await cli.json("workflows", "list")) == []


async def test_apply_stores_nothing_when_any_file_is_invalid(cli: Cli, tmp_path: Path) -> None:
    good = write(tmp_path / "a_good.yaml", ORDERS)
    bad = write(tmp_path / "b_bad.yaml", AUDIT.replace("action: log", "action: log, bogus: 1"))
    refused = await cli("apply", str(good), str(bad))
    assert refused.code == 2, refused
    assert str(bad) in refused.stderr
    assert str(good) not in refused.stderr
    assert "created" not in refused.stdout
    assert (await cli("workflows", "list", "--json")).json() == []


# --- executions ------------------------------------------------------------------------------


async def test_executions_list_and_show_describe_finished_runs(
    settings: Settings, cli: Cli
) -> None:
    async with running(settings) as h:
        await h.apply(ORDERS)
        await h.apply(AUDIT)
        ok = await h.run_to_end("order.placed", {"qty": 3}, source="shop")
        bad = await h.run_to_end("order.placed", {"qty": -1})
        other = await h.run_to_end("audit.requested", {})
    assert (ok.status, bad.status, other.status) == (
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.COMPLETED,
    )

    everything, filtered, shown_ok, shown_bad = await asyncio.gather(
        cli("executions", "list", "--json"),
        cli("executions", "list", "--status", "completed", "--workflow", "orders", "--json"),
        cli("executions", "show", str(ok.id), "--json"),
        cli("executions", "show", str(bad.id)[:13], "--json"),  # a unique prefix will do
    )
    listed = everything.json()
    assert [e["id"] for e in listed] == [str(other.id), str(bad.id), str(ok.id)]
    assert all(e.keys() == LISTED_KEYS for e in listed)
    summary = listed[-1]
    assert summary["workflow"] == "orders"
    assert summary["version"] == 1
    assert summary["status"] == "completed"
    assert summary["event"] == {"type": "order.placed", "source": "shop", "id": ok.event_id}
    assert summary["error"] is None
    assert summary["started_at"] <= summary["finished_at"]

    assert [e["id"] for e in filtered.json()] == [str(ok.id)]

    shown = shown_ok.json()
    assert shown.keys() == DETAIL_KEYS
    assert shown["status"] == "completed"
    assert shown["event"]["data"] == {"qty": 3}
    assert shown["progress"] == {"done": 2, "total": 2, "percent": 100.0}
    assert shown["eta"] is None  # finished
    assert shown["waiting"] is None
    assert shown["trace_id"] is None  # these services ran without tracing
    assert all(s.keys() == STEP_KEYS for s in shown["steps"])
    price, check = shown["steps"]
    assert (price["id"], price["status"], price["attempt"]) == ("price", "completed", 1)
    assert price["output"] == {"total": 30}
    assert price["duration_ms"] >= 0
    assert price["started_at"] <= price["finished_at"]
    assert (check["id"], check["status"]) == ("check", "skipped")
    assert all(
        t.keys() == {"at", "step", "item", "from", "to", "cause"} for t in shown["transitions"]
    )
    assert [(s["kind"], s["needs"]) for s in shown["steps"]] == [
        ("action", []),
        ("action", ["price"]),
    ]
    assert [t["at"] for t in shown["transitions"]] == sorted(t["at"] for t in shown["transitions"])
    execution_moves = [t["to"] for t in shown["transitions"] if t["step"] is None]
    assert execution_moves[-1] == "completed"
    assert {(t["step"], t["to"]) for t in shown["transitions"]} >= {
        ("price", "completed"),
        ("check", "skipped"),
    }

    failed = shown_bad.json()
    assert failed["id"] == str(bad.id)
    assert failed["status"] == "failed"
    assert "negative quantity" in failed["error"]
    assert failed["steps"][1]["status"] == "failed"
    assert "negative quantity" in failed["steps"][1]["error"]


async def test_executions_show_of_an_unknown_id_exits_2_with_a_message(cli: Cli) -> None:
    idents = ["00000000-0000-0000-0000-000000000000", "zzzz"]
    results = await asyncio.gather(*(cli("executions", "show", i, "--json") for i in idents))
    for ident, missing in zip(idents, results, strict=True):
        assert missing.code == 2, missing
        assert missing.stdout == ""
        assert f"no execution '{ident}'" in missing.stderr


# --- approvals and cancel --------------------------------------------------------------------


async def paused(h: Harness, amount: int) -> ExecutionRecord:
    event_id = await h.publish("refund.requested", {"amount": amount})
    (execution,) = await h.executions_for(event_id)
    return await h.wait_status(execution.id, ExecutionStatus.PAUSED)


async def shown(cli: Cli, execution_id: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await cli("executions", "show", str(execution_id), "--json")).json()
    return result


async def test_paused_execution_says_what_it_waits_for_and_approve_completes_it(
    settings: Settings, cli: Cli
) -> None:
    async with running(settings) as h:
        await h.apply(REFUND)
        execution = await paused(h, 250)

        detail, approvals = await asyncio.gather(
            shown(cli, execution.id), cli("approvals", "list", "--json")
        )
        assert detail["status"] == "paused"
        assert detail["progress"] == {"done": 0, "total": 2, "percent": 0.0}
        assert detail["eta"] is None  # no refund has completed before
        waiting = detail["waiting"]
        assert waiting["reason"] == "approval"
        assert waiting["prompt"] == "Refund 250?"
        assert waiting["expires_at"] > detail["created_at"]
        approval_id = waiting["approval_id"]
        assert approval_id in waiting["resumes_on"]
        assert "interlock approve" in waiting["resumes_on"]

        (pending,) = approvals.json()
        assert pending["approval_id"] == approval_id
        assert pending["execution_id"] == str(execution.id)
        assert pending["prompt"] == "Refund 250?"
        assert pending["approvers"] == ["alice", "bob"]

        approved = await cli("approve", approval_id, "--by", "alice")
        assert approved.code == 0, approved
        assert approval_id in approved.stdout
        await h.wait_status(execution.id, ExecutionStatus.COMPLETED)

        done = await shown(cli, execution.id)
        assert done["status"] == "completed"
        assert done["waiting"] is None
        finance, pay = done["steps"]
        assert finance["output"]["decision"] == "approved"
        assert finance["output"]["decided_by"] == "alice"
        assert pay["output"] == {"paid": 250}


async def test_cancel_of_a_paused_execution_reports_it_cancelled(
    settings: Settings, cli: Cli
) -> None:
    async with running(settings) as h:
        await h.apply(REFUND)
        kept = await paused(h, 10)
        doomed = await paused(h, 20)

        cancelled = await cli("cancel", str(doomed.id), "--reason", "customer withdrew")
        assert cancelled.code == 0, cancelled
        assert cancelled.stdout.strip() == f"cancelled {doomed.id}"
        detail, approvals = await asyncio.gather(
            shown(cli, doomed.id), cli("approvals", "list", "--json")
        )
        assert detail["status"] == "cancelled"
        assert detail["waiting"] is None
        assert any("customer withdrew" in (t["cause"] or "") for t in detail["transitions"])

        (pending,) = approvals.json()
        assert pending["execution_id"] == str(kept.id)
        assert (await h.load(kept.id)).status is ExecutionStatus.PAUSED


# --- publish ---------------------------------------------------------------------------------


async def test_published_event_starts_an_execution(settings: Settings, cli: Cli) -> None:
    async with running(settings) as h:
        await h.apply(ORDERS)
        sent = await cli("publish", "order.placed", "--data", '{"qty": 4}', "--id", "cli-1")
        assert sent.code == 0, sent
        assert "published order.placed id=cli-1" in sent.stdout
        (execution,) = await h.executions_for("cli-1")
        done = await h.wait_status(execution.id, ExecutionStatus.COMPLETED)
        assert done.steps["price"].output == {"total": 40}


async def test_publish_with_malformed_data_exits_2_naming_the_option(cli: Cli) -> None:
    refused = await cli("publish", "order.placed", "--data", "{bad")
    assert refused.code == 2, refused
    assert "--data" in refused.stderr
    assert "published" not in refused.stdout


# --- JSON output of the commands that change things ------------------------------------------


async def test_commands_that_change_things_print_json_of_what_they_did(
    settings: Settings, cli: Cli, tmp_path: Path
) -> None:
    path = write(tmp_path / "refund.yaml", REFUND)
    assert (await cli("apply", str(path), "--json")).json() == [
        {"name": "refund", "version": 1, "changed": True, "path": str(path)}
    ]
    assert (await cli("apply", str(path), "--json")).json()[0]["changed"] is False
    assert (await cli("migrate", "--json")).json() == {
        "created_database": False,
        "up_to_date": True,
    }
    async with running(settings) as h:
        await h.apply(REFUND)
        sent = await cli(
            "publish", "refund.requested", "--data", '{"amount": 5}', "--id", "j-1", "--json"
        )
        assert sent.json() == {"type": "refund.requested", "id": "j-1", "source": "interlock-cli"}
        (first,) = await h.executions_for("j-1")
        await h.wait_status(first.id, ExecutionStatus.PAUSED)
        second, third = await paused(h, 6), await paused(h, 7)
        approval_of = {
            a["execution_id"]: a["approval_id"] for a in await cli.json("approvals", "list")
        }

        approved = (
            await cli("approve", approval_of[str(first.id)], "--by", "alice", "--json")
        ).json()
        assert approved.keys() == {"approval_id", "decision", "decided_by", "decision_id"}
        assert approved["approval_id"] == approval_of[str(first.id)]
        assert (approved["decision"], approved["decided_by"]) == ("approved", "alice")
        rejected = (
            await cli("reject", approval_of[str(second.id)], "--by", "bob", "--json")
        ).json()
        assert (rejected["decision"], rejected["decided_by"]) == ("rejected", "bob")
        assert rejected["decision_id"] != approved["decision_id"]
        done = await h.wait_status(first.id, ExecutionStatus.COMPLETED)
        assert done.steps["pay"].output == {"paid": 5}
        declined = await h.wait_status(second.id, ExecutionStatus.COMPLETED)
        assert declined.steps["finance"].output["decision"] == "rejected"

        cancelled = (await cli("cancel", str(third.id), "--json")).json()
        assert cancelled == {
            "execution_id": str(third.id),
            "confirmed": True,
            "status": "cancelled",
        }
        retried = (await cli("executions", "retry", str(third.id)[:8], "--json")).json()
        assert retried == {
            "execution_id": str(third.id),
            "status": "pending",
            "from_steps": ["finance"],
        }
        await h.wait_status(third.id, ExecutionStatus.PAUSED)  # waiting for a person again

    assert (await cli("workflows", "delete", "refund", "--json")).json() == {
        "name": "refund",
        "deleted": True,
    }


async def test_with_json_an_error_is_still_one_line_on_stderr_and_its_exit_code(cli: Cli) -> None:
    missing = await cli("workflows", "delete", "nothing", "--json")
    assert (missing.code, missing.stdout) == (2, "")
    assert missing.stderr == "error: no active workflow named 'nothing'\n"
    bad = await cli("publish", "x.y", "--data", "{", "--json")
    assert (bad.code, bad.stdout) == (2, "")
    assert bad.stderr.startswith("error: --data is not valid JSON")
