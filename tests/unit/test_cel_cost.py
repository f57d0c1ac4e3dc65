"""CEL evaluations are bounded: costly shapes on big inputs are refused before they run."""

from __future__ import annotations

from typing import Any

import pytest

from router.matching import Matcher, TriggerRef
from schemas.cel_cost import MAX_COST, MAX_ITEMS, CostShape, InputSize, cost_shape, measure
from schemas.expressions import Expression, ExpressionBudgetExceeded, ExpressionError, Scope
from schemas.templates import Template


@pytest.mark.parametrize(
    ("source", "degree"),
    [
        ("event.data.items.all(x, x > 0)", 1),
        ('event.data.tags.exists(t, t.startsWith("a")) && has(event.data.x)', 1),
        ("event.data.items.all(x, x in [1, 2, 3])", 1),
        ("event.data.items.all(x, [1, 2].exists(y, y == x))", 1),  # a fixed-size inner list
        ('event.data.orders.all(o, o.lines.exists(l, l.sku == "a"))', 1),  # parts add up to N
        ("event.data.items.all(x, x.all(y, y.all(z, z > 0)))", 1),
        ("(event.data.a + event.data.b).all(x, x > 0)", 1),
        ("event.data.items[0].all(x, x > 0)", 1),
        ("[1, 2, 3].map(x, x * 2).size() == 3", 0),
        # map and filter copy their result on every element
        ("event.data.items.filter(x, x > 0).size() > 0", 2),
        ("event.data.items.map(x, x * 2).filter(y, y > 5).size() > 0", 2),
        ("event.data.orders.all(o, o.lines.map(l, l.sku).size() > 0)", 2),
        # every read of a variable converts all of it
        ("event.data.items.all(x, x >= event.data.min)", 2),
        ("event.data.orders.all(o, o.lines.exists(l, l.sku == event.data.sku))", 2),
        ("event.data.items.exists(x, event.data.items.exists(y, y == x))", 2),
        ("event.data.items.filter(x, event.data.items.exists(y, y == x + 1)).size() > 0", 2),
        ("event.data.a.all(x, event.data.b.all(y, event.data.c.all(z, z > 0)))", 3),
        ('size(event.data.items.filter(x, x == "a.all(b, c)")) > 0', 2),  # strings are text
    ],
)
def test_cost_shape_reads_the_degree_from_the_source(source: str, degree: int) -> None:
    Expression.compile(source)  # valid CEL
    assert cost_shape(source) == CostShape(degree, frozenset({"event"}) if degree else frozenset())


@pytest.mark.parametrize(
    "source", ["event.data.amount >= 100", 'event.type == "a" && "x" in event.data.tags', "1 + 2"]
)
def test_expressions_that_iterate_over_nothing_have_no_shape_and_are_never_checked(
    source: str,
) -> None:
    assert cost_shape(source) is None


def test_loop_variables_and_macro_names_inside_strings_are_not_inputs() -> None:
    shape = cost_shape('steps.a.output.rows.all(r, r.ok && r.id != "event") && event.x > 0')
    assert shape == CostShape(1, frozenset({"steps", "event"}))


def test_measure_counts_every_value_and_the_widest_container() -> None:
    assert measure([{"a": [1, 2, 3], "b": {"c": None}}]) == InputSize(values=7, widest=3)
    assert measure([]) == InputSize(0, 0)


def _items(n: int) -> dict[str, Any]:
    return {"event": {"data": {"items": list(range(n)), "min": 0}}}


def test_a_quadratic_filter_over_4000_items_is_refused_before_it_runs() -> None:
    quadratic = Expression.compile(
        "event.data.items.filter(x, event.data.items.exists(y, y == x + 1)).size() > 0"
    )
    with pytest.raises(ExpressionBudgetExceeded) as caught:
        quadratic.evaluate_bool(Scope(_items(4000)))
    assert str(caught.value) == (
        "CEL evaluation refused for 'event.data.items.filter(x, event.data.items.exists(y, y =="
        " x + 1)).size() > 0': would take about 16,032,016 steps (4004 input values, nested 2"
        f" deep), over the budget of {MAX_COST:,}"
    )
    assert isinstance(caught.value, ExpressionError)  # a step fails, a trigger does not fire
    assert quadratic.evaluate_bool(Scope(_items(100))) is True


def test_iterating_over_a_list_longer_than_the_limit_is_refused() -> None:
    linear = Expression.compile("event.data.items.all(x, x >= 0)")
    assert linear.evaluate_bool(Scope(_items(MAX_ITEMS))) is True
    with pytest.raises(ExpressionBudgetExceeded, match=f"list or map of {MAX_ITEMS + 1} items"):
        linear.evaluate_bool(_items(MAX_ITEMS + 1))


def test_an_expression_that_does_not_iterate_runs_on_any_input() -> None:
    plain = Expression.compile("event.data.min == 0 && size(event.data.items) > 0")
    assert plain.evaluate_bool(Scope(_items(MAX_ITEMS * 3))) is True


def test_a_template_names_the_field_whose_expression_was_refused() -> None:
    template = Template.compile({"n": "${event.data.items.filter(x, x > 0).size()}"}, "with")
    assert template.render(Scope(_items(10))) == {"n": 9}
    with pytest.raises(ExpressionBudgetExceeded, match=r"^with\.n: CEL evaluation refused for"):
        template.render(Scope(_items(1000)))


def test_steps_are_measured_again_when_they_change() -> None:
    view: dict[str, Any] = {"a": {"output": {"rows": [1]}}}

    def lookup(name: str) -> Any:
        return view if name == "steps" else None

    scope = Scope({"event": {}}, lookup)
    rows = Expression.compile("steps.a.output.rows.filter(r, r > 0).size()")
    assert rows.evaluate(scope) == 1
    view = {"a": {"output": {"rows": list(range(1000))}}}  # a new checkpoint, a new view
    with pytest.raises(ExpressionBudgetExceeded):
        rows.evaluate(scope)


def test_a_costly_trigger_does_not_match_and_does_not_stop_the_others() -> None:
    costly = TriggerRef(
        "costly", 1, 1, 0, "order.#", Expression.compile("event.data.items.filter(x, x > 1)")
    )
    cheap = TriggerRef("cheap", 2, 1, 0, "order.#", Expression.compile("event.data.min == 0"))
    result = Matcher([costly, cheap]).match("order.created", _items(1000)["event"])
    assert result.matches == [cheap]
    assert result.errors == []
    assert [(t.workflow, e.split(":")[0]) for t, e in result.over_budget] == [
        ("costly", "CEL evaluation refused for 'event.data.items.filter(x, x > 1)'")
    ]
