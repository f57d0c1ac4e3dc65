"""A start the broker refuses because of a setting fails in one line, not with a traceback."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from interlock.errors import StartupFailed
from interlock.runtime import Runtime
from interlock.settings import Settings
from tests.support.harness import running

pytestmark = pytest.mark.integration


async def test_queues_declared_with_another_delivery_limit_fail_the_start_naming_it(
    settings: Settings,
) -> None:
    async with running(settings, which=()):
        changed = settings.model_copy(deep=True)
        changed.amqp.delivery_limit = settings.amqp.delivery_limit + 2
        runtime = Runtime(changed, name="test-2", registry=CollectorRegistry(), serve_http=False)
        try:
            with pytest.raises(StartupFailed) as failed:
                await runtime.open()
        finally:
            await runtime.close()
    assert failed.value.exit_code == 2
    line = str(failed.value)
    assert line.startswith(
        f"INTERLOCK_AMQP_DELIVERY_LIMIT={changed.amqp.delivery_limit}: "
        "the broker refused the queues as declared"
    )
    assert "x-delivery-limit" in line
    assert "\n" not in line
