"""Scenario: throughput while retention prunes old finished executions, against a baseline."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any, Final

from interlock.benchmark import workflows
from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Recorder, Target
from interlock.benchmark.processes import ClusterSpec
from interlock.benchmark.sandbox import Sandbox
from interlock.benchmark.scenarios.throughput import measure
from interlock.store import retention

# the services' own retention would race the one measured here
RETENTION_OFF: Final = (("INTERLOCK_RETENTION", "off"),)
KEPT_TARGET: Final = Target(">=", 90)  # % of the baseline's executions/s while pruning
_SEED_CHUNK: Final = 5000
_STEPS: Final = 3
_TRANSITIONS: Final = 8  # what a three-step execution leaves in the audit trail
# finished executions 40 days old: three completed steps and their audit rows each
_SEED: Final = f"""
WITH v AS (
    SELECT id, name, version FROM workflow_version WHERE name = :workflow
    ORDER BY version DESC LIMIT 1
),
ex AS (
    INSERT INTO execution (id, workflow, version_id, version, trigger_index, status, event,
                           event_source, event_id, created_at, started_at, finished_at,
                           updated_at)
    SELECT gen_random_uuid(), v.name, v.id, v.version, 0, 'completed', '{{}}'::jsonb,
           'interlock-bench/prune-seed', CAST(:prefix AS text) || g, old, old, old, old
    FROM v, generate_series(1, :n) g, (SELECT now() - interval '40 days' AS old) t
    RETURNING id, finished_at
),
steps AS (
    INSERT INTO step_run (execution_id, step_id, position, status, attempt, output,
                          started_at, finished_at, updated_at)
    SELECT ex.id, 'step-' || p, p, 'completed', 1, '{{"n": 1}}'::jsonb,
           ex.finished_at, ex.finished_at, ex.finished_at
    FROM ex, generate_series(0, {_STEPS - 1}) p
    RETURNING 1
)
INSERT INTO transition (execution_id, from_status, to_status, cause, at)
SELECT ex.id, 'running', 'completed', 'seeded by interlock bench', ex.finished_at
FROM ex, generate_series(1, {_TRANSITIONS})
"""


async def seed(sandbox: Sandbox, n: int) -> None:
    """Insert `n` executions that finished 40 days ago (beyond a 30-day retention)."""
    for start in range(0, n, _SEED_CHUNK):
        await sandbox.execute(
            _SEED,
            workflow=workflows.THROUGHPUT,
            n=min(_SEED_CHUNK, n - start),
            prefix=f"seed-{start}-",
        )


async def _prune(sandbox: Sandbox) -> dict[str, Any]:
    started = time.perf_counter()
    before = await retention.cutoff(sandbox.engine, timedelta(days=30))
    # paced as the resumer's automatic retention is: that is what runs beside live traffic
    deleted = await retention.prune(sandbox.engine, before, rest=retention.AUTOMATIC_REST)
    seconds = time.perf_counter() - started
    return {
        "deleted": deleted,
        "seconds": round(seconds, 3),
        "executions_per_s": round(deleted["execution"] / seconds, 1),
    }


async def run_prune(bench: Bench, rec: Recorder) -> None:
    n = bench.config.sizes.executions
    seeded = bench.config.sizes.prune_seeded
    await bench.cluster.ensure(ClusterSpec(executors=1, env=RETENTION_OFF))
    baseline = await measure(bench, "prune: baseline", "prune-baseline", n)
    pruning: list[asyncio.Task[dict[str, Any]]] = []

    async def start_pruning() -> None:
        bench.progress.line(f"prune: seeding {seeded} finished executions 40 days old")
        await seed(bench.sandbox, seeded)
        pruning.append(asyncio.create_task(_prune(bench.sandbox)))

    during = await measure(bench, "prune: while pruning", "prune-during", n, before=start_pruning)
    pruned = await pruning[0]
    kept = 100.0 * during["executions_per_s"] / baseline["executions_per_s"]
    rec.details |= {
        "baseline": baseline,
        "while pruning": during,
        "prune": pruned,
        "seeded": seeded,
        # did the prune last the whole measured run, or end before it did?
        "prune_covered_run": pruned["seconds"] >= during["seconds"],
        "throughput_kept_percent": round(kept, 1),
    }
    rec.figure("executions/s, baseline", baseline["executions_per_s"], "exec/s")
    rec.figure("executions/s, while pruning", during["executions_per_s"], "exec/s")
    rec.figure("executions pruned/s, under load", pruned["executions_per_s"], "exec/s")
    rec.figure("throughput kept while pruning", round(kept, 1), "%", KEPT_TARGET)
    p99 = during["event_to_completed"]["p99_ms"]
    rec.figure("event→completed p99, while pruning", p99, "ms")
