"""Measured figures, the targets they are held against, and each scenario's result (values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


@dataclass(frozen=True)
class Target:
    op: Literal[">=", "<="]
    value: float

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.op == ">=" else measured <= self.value

    def describe(self, unit: str) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {self.value:,g} {unit}".rstrip()


class Verdict(StrEnum):
    MET = "met"
    NOT_MET = "not met"
    QUICK = "quick"  # quick mode: sizes too small for a verdict
    NONE = ""  # no target for this figure
    MISSING = "no value"


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None
    unit: str
    target: Target | None = None

    def verdict(self, quick: bool) -> Verdict:
        if self.target is None:
            return Verdict.NONE
        if self.value is None:
            return Verdict.MISSING
        if quick:
            return Verdict.QUICK
        return Verdict.MET if self.target.met(self.value) else Verdict.NOT_MET


class Outcome(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass
class Recorder:
    """A scenario's figures and details, collected as it goes: a timeout keeps what was measured."""

    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def figure(
        self, name: str, value: float | None, unit: str, target: Target | None = None
    ) -> None:
        self.figures.append(Figure(name, value, unit, target))


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    outcome: Outcome
    seconds: float
    figures: tuple[Figure, ...]
    details: dict[str, Any]
    message: str = ""
