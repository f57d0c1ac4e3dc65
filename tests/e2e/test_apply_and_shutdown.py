"""`interlock apply` refusing a bad definition, and a service stopping cleanly on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.processes import Cli, Services

pytestmark = pytest.mark.e2e

VALID = """
name: fine-refund
triggers: [{on: payment.refund.requested}]
steps:
  - id: classify
    action: set
    with: {big: "${event.data.amount > 1000}"}
"""

BROKEN = """
name: broken-refund
triggers: [{on: payment.refund.requested}]
steps:
  - id: classify
    action: set
    with: {x: "${event.data.amount >}"}
"""


async def test_apply_of_an_invalid_file_exits_2_names_file_step_and_field_and_stores_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "a_valid.yaml").write_text(VALID)
    broken = tmp_path / "b_broken.yaml"
    broken.write_text(BROKEN)

    result = await cli.run("apply", str(tmp_path))

    assert result.code == 2, result.explain()
    assert str(broken) in result.stderr, result.explain()
    assert "classify" in result.stderr, result.explain()
    assert "with.x" in result.stderr, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    # the valid file in the same apply is not stored either
    assert await cli.json("workflows", "list") == []


async def test_sigterm_to_an_idle_executor_exits_0_within_a_few_seconds(
    services: Services,
) -> None:
    (executor,) = await services.start_ready("executor")

    executor.signal(signal.SIGTERM)

    code = await executor.wait_exit(within=5)
    assert code == 0, executor.log()
