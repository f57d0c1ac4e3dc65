"""Which triggers of the active workflow versions an event fires: topic index, then `if`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from router.trigger_index import TopicIndex
from schemas.expressions import Expression, ExpressionBudgetExceeded, ExpressionError, Scope


@dataclass(frozen=True)
class TriggerRef:
    """One trigger of one workflow version, with its condition compiled."""

    workflow: str
    version_id: int
    version: int
    trigger_index: int
    pattern: str
    condition: Expression | None = None


@dataclass(frozen=True)
class MatchResult:
    """Triggers that fired, and those whose condition could not be evaluated (not fired).

    `over_budget` conditions were refused before they ran, as too costly for this event: the
    event is fine and so is the condition, they only do not match each other.
    """

    matches: list[TriggerRef] = field(default_factory=list)
    errors: list[tuple[TriggerRef, str]] = field(default_factory=list)
    over_budget: list[tuple[TriggerRef, str]] = field(default_factory=list)


class Matcher:
    """Matches events against one revision of the definitions; build a new one per revision."""

    def __init__(self, triggers: Iterable[TriggerRef]) -> None:
        """Index the triggers; a refused pattern raises ValueError (validate at apply time)."""
        self._index: TopicIndex[TriggerRef] = TopicIndex()
        for trigger in triggers:
            self._index.add(trigger.pattern, trigger)

    def __len__(self) -> int:
        return len(self._index)

    def match(self, event_type: str, event_scope: Mapping[str, Any]) -> MatchResult:
        """Return the matching triggers in the order they were given.

        Conditions see the event as `event`. A condition that raises or yields a non-bool is
        reported in `errors` and does not fire, one too costly for the event in `over_budget`;
        neither stops the other triggers from matching.
        """
        result = MatchResult()
        scope = _LazyScope(event_scope)
        for trigger in self._index.match(event_type):
            if trigger.condition is None:
                result.matches.append(trigger)
                continue
            try:
                outcome = _evaluate(trigger.condition, scope)
            except ExpressionBudgetExceeded as exc:
                result.over_budget.append((trigger, str(exc)))
                continue
            if isinstance(outcome, str):
                result.errors.append((trigger, outcome))
            elif outcome:
                result.matches.append(trigger)
        return result


class _LazyScope:
    """Converts the event to CEL once per event, and only if some condition needs it."""

    def __init__(self, event_scope: Mapping[str, Any]) -> None:
        self._event_scope = event_scope
        self._scope: Scope | None = None

    def get(self) -> Scope:
        if self._scope is None:
            self._scope = Scope({"event": self._event_scope})
        return self._scope


def _evaluate(condition: Expression, scope: _LazyScope) -> bool | str:
    """Return whether the condition holds, or a message saying why it could not be decided."""
    try:
        outcome: object = condition.evaluate_bool(scope.get())
    except ExpressionBudgetExceeded:
        raise
    except ExpressionError as exc:
        return str(exc) or type(exc).__name__
    except Exception as exc:
        # A bug in one workflow's condition must not stop every other workflow from starting.
        return f"condition raised {type(exc).__name__}: {exc}"
    if not isinstance(outcome, bool):
        return f"condition returned {type(outcome).__name__}, not bool"
    return outcome
