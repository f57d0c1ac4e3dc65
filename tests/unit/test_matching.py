"""Tests for matching events to triggers: topic pattern first, then the `if` condition."""

from collections.abc import Mapping
from typing import Any, cast

from router.matching import Matcher, TriggerRef
from schemas.expressions import Expression


def trigger(
    workflow: str, pattern: str, condition: str | None = None, *, index: int = 0
) -> TriggerRef:
    return TriggerRef(
        workflow=workflow,
        version_id=100,
        version=1,
        trigger_index=index,
        pattern=pattern,
        condition=Expression.compile(condition) if condition is not None else None,
    )


class ExplodingCondition:
    """Stands in for an expression whose evaluator has a bug."""

    def evaluate_bool(self, scope: Mapping[str, Any]) -> bool:
        raise RuntimeError("evaluator bug")


class StringCondition:
    """Stands in for an expression that breaks its contract by returning a non-bool."""

    def evaluate_bool(self, scope: Mapping[str, Any]) -> bool:
        return cast(bool, "yes")


def with_condition(workflow: str, condition: object) -> TriggerRef:
    return TriggerRef(
        workflow=workflow,
        version_id=1,
        version=1,
        trigger_index=0,
        pattern="order.created",
        condition=cast(Expression, condition),
    )


def event(amount: object) -> dict[str, Any]:
    return {"type": "order.created", "source": "shop", "data": {"amount": amount}}


def test_trigger_without_condition_matches_on_its_pattern_alone() -> None:
    matcher = Matcher([trigger("orders", "order.*"), trigger("refunds", "refund.#")])
    result = matcher.match("order.created", event(1))
    assert [t.workflow for t in result.matches] == ["orders"]
    assert result.errors == []


def test_event_type_matching_no_pattern_matches_nothing() -> None:
    result = Matcher([trigger("orders", "order.*")]).match("invoice.paid", event(1))
    assert result.matches == []
    assert result.errors == []


def test_condition_sees_the_event_under_the_name_event() -> None:
    matcher = Matcher([trigger("big", "order.created", "event.data.amount > 100")])
    assert [t.workflow for t in matcher.match("order.created", event(150)).matches] == ["big"]
    assert matcher.match("order.created", event(50)).matches == []


def test_condition_can_read_the_event_type() -> None:
    matcher = Matcher([trigger("shop", "#", 'event.source == "shop"')])
    assert len(matcher.match("order.created", event(1)).matches) == 1


def test_failing_condition_is_an_error_for_that_trigger_only() -> None:
    bad = trigger("bad", "order.created", "event.data.amount > 100", index=0)
    good = trigger("good", "order.created", index=1)
    result = Matcher([bad, good]).match("order.created", event("lots"))
    assert result.matches == [good]
    assert [t for t, _ in result.errors] == [bad]
    assert result.errors[0][1]


def test_condition_yielding_a_non_bool_is_an_error_not_a_match() -> None:
    bad = trigger("bad", "order.created", "event.data.amount")
    result = Matcher([bad]).match("order.created", event(5))
    assert result.matches == []
    assert [t for t, _ in result.errors] == [bad]


def test_unexpected_exception_from_a_condition_is_reported_not_raised() -> None:
    exploding = with_condition("exploding", ExplodingCondition())
    plain = trigger("plain", "order.#")
    result = Matcher([exploding, plain]).match("order.created", event(1))
    assert result.matches == [plain]
    assert result.errors == [(exploding, "condition raised RuntimeError: evaluator bug")]


def test_non_bool_despite_the_contract_is_reported_not_matched() -> None:
    stringy = with_condition("stringy", StringCondition())
    result = Matcher([stringy]).match("order.created", event(1))
    assert result.matches == []
    assert result.errors == [(stringy, "condition returned str, not bool")]


def test_event_that_cel_cannot_hold_fails_only_the_conditional_triggers() -> None:
    conditional = trigger("conditional", "order.created", "event.data.amount > 1")
    plain = trigger("plain", "order.created", index=1)
    result = Matcher([conditional, plain]).match("order.created", event({1, 2}))
    assert result.matches == [plain]
    assert [t for t, _ in result.errors] == [conditional]
    assert "set" in result.errors[0][1]


def test_matches_keep_the_order_triggers_were_given_in() -> None:
    triggers = [
        trigger(f"w{n}", pattern) for n, pattern in enumerate(["#", "order.*", "*.created"])
    ]
    assert Matcher(triggers).match("order.created", event(1)).matches == triggers


def test_two_triggers_of_one_workflow_both_match() -> None:
    first = trigger("orders", "order.*", index=0)
    second = trigger("orders", "#.created", index=1)
    assert Matcher([first, second]).match("order.created", event(1)).matches == [first, second]


def test_length_is_the_number_of_triggers() -> None:
    assert len(Matcher([])) == 0
    assert len(Matcher([trigger("a", "x"), trigger("b", "x"), trigger("c", "#")])) == 3
