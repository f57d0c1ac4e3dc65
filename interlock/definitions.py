"""Compiled workflow versions, cached forever: a version never changes once stored."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.errors import DeadLetterReason, InvalidInput
from interlock.store.workflows import Workflows
from schemas.compiled import CompiledWorkflow, compile_workflow
from schemas.workflow import Workflow


class VersionCache:
    def __init__(self) -> None:
        self._compiled: dict[int, CompiledWorkflow] = {}

    def cached(self, version_id: int) -> CompiledWorkflow | None:
        return self._compiled.get(version_id)

    def put(self, version_id: int, compiled: CompiledWorkflow) -> None:
        self._compiled[version_id] = compiled

    async def get(self, session: AsyncSession, version_id: int) -> CompiledWorkflow:
        compiled = self._compiled.get(version_id)
        if compiled is not None:
            return compiled
        row = await Workflows(session).version(version_id)
        if row is None:
            raise InvalidInput(
                DeadLetterReason.UNKNOWN_WORKFLOW, f"no workflow version {version_id}"
            )
        try:
            compiled = compile_workflow(Workflow.model_validate(row.definition))
        except ValidationError as exc:
            raise InvalidInput(
                DeadLetterReason.UNKNOWN_WORKFLOW,
                f"stored definition {row.name} v{row.version} no longer validates: {exc}",
            ) from None
        self._compiled[version_id] = compiled
        return compiled
