"""The benchmark's workflow definitions, stored by the repository `interlock apply` uses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from interlock.benchmark.sandbox import Sandbox
from interlock.store.engine import create_sessionmaker, transaction
from interlock.store.workflows import Workflows
from schemas.definition import definition_digest
from schemas.workflow import Workflow

THROUGHPUT: Final = "bench-throughput"
THROUGHPUT_TYPE: Final = "bench.throughput"
THROUGHPUT_STEPS: Final = 3
RESUME: Final = "bench-resume"
RESUME_TYPE: Final = "bench.resume"
TIMER: Final = "bench-timer"
TIMER_TYPE: Final = "bench.timer"
TIMER_STEP: Final = "rest"
GRAPH: Final = "bench-graph"
GRAPH_TYPE: Final = "bench.graph"
GRAPH_WIDTH: Final = 10
GRAPH_STEPS: Final = GRAPH_WIDTH + 2  # one step fanning out to GRAPH_WIDTH, and a join
EACH: Final = "bench-each"
EACH_TYPE: Final = "bench.each"
EACH_ITEMS: Final = 100
ROUTE_TARGET: Final = "bench-route-target"
ROUTE_TYPE: Final = "bench.route.event"

Definition = dict[str, Any]


def throughput() -> Definition:
    return {
        "name": THROUGHPUT,
        "triggers": [{"on": THROUGHPUT_TYPE}],
        "steps": [
            {"id": "first", "action": "set", "with": {"n": "${event.data.n}"}},
            {"id": "second", "action": "set", "with": {"m": "${steps.first.output.n}"}},
            {
                "id": "note",
                "action": "log",
                "with": {"level": "debug", "message": "bench ${event.data.n}"},
            },
        ],
    }


def graph() -> Definition:
    """One built-in step fanning out to GRAPH_WIDTH built-ins that run together, then a join."""
    branches = [
        {"id": f"branch-{i}", "needs": ["start"], "action": "set", "with": {"b": i}}
        for i in range(GRAPH_WIDTH)
    ]
    return {
        "name": GRAPH,
        "triggers": [{"on": GRAPH_TYPE}],
        "steps": [
            {"id": "start", "action": "set", "with": {"n": "${event.data.n}"}},
            *branches,
            {
                "id": "join",
                "needs": [b["id"] for b in branches],
                "action": "set",
                "with": {"n": "${steps.start.output.n}"},
            },
        ],
    }


def each() -> Definition:
    """A for_each over EACH_ITEMS items of a built-in step (the default max_concurrency)."""
    return {
        "name": EACH,
        "triggers": [{"on": EACH_TYPE}],
        "steps": [
            {
                "id": "each",
                "for_each": list(range(EACH_ITEMS)),
                "action": "set",
                "with": {"i": "${item}", "n": "${event.data.n}"},
            }
        ],
    }


def resume() -> Definition:
    return {
        "name": RESUME,
        "triggers": [{"on": RESUME_TYPE}],
        "steps": [
            {
                "id": "review",
                "approval": {"approvers": "any", "timeout": "1h", "on_timeout": "fail"},
            },
            {
                "id": "done",
                "action": "set",
                "with": {"decision": "${steps.review.output.decision}"},
            },
        ],
    }


def timer() -> Definition:
    return {
        "name": TIMER,
        "triggers": [{"on": TIMER_TYPE}],
        "steps": [
            {"id": TIMER_STEP, "wait": {"until": "${event.data.at}"}},
            {"id": "done", "action": "set", "with": {"n": "${event.data.n}"}},
        ],
    }


def route_target() -> Definition:
    return _one_set_step(ROUTE_TARGET, {"on": ROUTE_TYPE})


def route_probe(level: int) -> Definition:
    """Matches only its own event type: once it starts executions, `level`'s set is loaded."""
    return _one_set_step(f"bench-route-probe-{level}", {"on": probe_type(level)})


def probe_type(level: int) -> str:
    return f"bench.probe.l{level}"


def route_noise(i: int) -> Definition:
    """Exact, `*` and `#` patterns, every other one with a CEL filter; none match ROUTE_TYPE."""
    pattern = (
        f"svc{i}.order.created",
        f"svc{i}.*.updated",
        f"svc{i}.#",
        f"*.svc{i}.deleted",
    )[i % 4]
    trigger: dict[str, str] = {"on": pattern}
    if i % 2:
        trigger["if"] = f"event.data.amount > {i} && event.data.currency == 'EUR'"
    return _one_set_step(f"bench-route-{i}", trigger)


def _one_set_step(name: str, trigger: dict[str, str]) -> Definition:
    return {
        "name": name,
        "triggers": [trigger],
        "steps": [{"id": "mark", "action": "set", "with": {"seen": True}}],
    }


async def apply(sandbox: Sandbox, definitions: Iterable[Definition]) -> None:
    """Validate and store every definition in one transaction, as `interlock apply` does."""
    workflows = [Workflow.model_validate(d) for d in definitions]
    sessions = create_sessionmaker(sandbox.engine)
    async with transaction(sessions) as session:
        repo = Workflows(session)
        for wf in workflows:
            dump = wf.model_dump(mode="json", by_alias=True, exclude_none=True)
            await repo.apply(wf.name, dump, definition_digest(wf))
