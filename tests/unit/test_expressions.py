import re
from typing import Any

import pytest

from schemas.expressions import (
    Expression,
    ExpressionError,
    ExpressionSyntaxError,
    Scope,
)
from schemas.templates import Template

SCOPE: dict[str, Any] = {
    "event": {"data": {"amount": 2500, "customer": "c-1", "note": None, "tags": ["a", "b"]}},
    "steps": {"lookup": {"output": {"vip": True}}},
    "execution": {"id": "e-1"},
}


def test_expression_evaluates_against_a_plain_mapping_or_a_shared_scope() -> None:
    expression = Expression.compile("event.data.amount >= 100")
    assert expression.evaluate(SCOPE) is True
    assert expression.evaluate_bool(Scope(SCOPE)) is True
    assert expression.source == "event.data.amount >= 100"


def test_syntax_error_names_the_source_and_position() -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        Expression.compile("event.data.amount >")
    message = str(caught.value)
    assert message.startswith("invalid CEL expression 'event.data.amount >': Syntax error")
    assert "(at 1:20)" in message
    assert "\n" not in message
    assert caught.value.source == "event.data.amount >"


def test_missing_key_error_names_the_expression_and_the_key() -> None:
    expression = Expression.compile("event.data.total >= 100")
    with pytest.raises(ExpressionError) as caught:
        expression.evaluate(SCOPE)
    assert str(caught.value) == "CEL error in 'event.data.total >= 100': no such key 'total'"


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        ("1 / 0", "division by zero"),
        ("1 + 'a'", "No such overload"),
        ("nope.x", "Undefined variable or function: 'nope'"),
    ],
)
def test_evaluation_failures_become_expression_errors(source: str, cause: str) -> None:
    with pytest.raises(ExpressionError, match=cause) as caught:
        Expression.compile(source).evaluate(SCOPE)
    assert not isinstance(caught.value, ExpressionSyntaxError)
    assert caught.value.cause.startswith(cause)


def test_evaluate_bool_rejects_non_bool_results() -> None:
    with pytest.raises(ExpressionError, match="expected a bool, got int"):
        Expression.compile("event.data.amount").evaluate_bool(SCOPE)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("timestamp('2024-01-02T03:04:05Z')", "2024-01-02T03:04:05Z"),
        ("timestamp('2024-01-02T03:04:05+02:00')", "2024-01-02T01:04:05Z"),
        ("duration('90s')", "1m30s"),
        ("duration('-90s')", "-1m30s"),
        ("b'hi'", "aGk="),
        ("{1: 'a', 2: 'b'}", {"1": "a", "2": "b"}),
        ("{true: 'b'}", {"true": "b"}),
        ("[1u, 2.5, null]", [1, 2.5, None]),
        ("optional.none()", None),
        ("optional.of(3)", 3),
    ],
)
def test_results_are_converted_to_json_values(source: str, expected: Any) -> None:
    assert Expression.compile(source).evaluate(SCOPE) == expected


def test_non_finite_results_are_errors_because_json_cannot_hold_them() -> None:
    with pytest.raises(ExpressionError, match="result inf has no JSON form"):
        Expression.compile("1.0 / 0.0").evaluate(SCOPE)


def test_references_list_top_level_names_including_macro_variables() -> None:
    expression = Expression.compile("event.data.tags.all(t, t != '') && execution.id != ''")
    assert expression.references() == {"event", "execution", "t"}


def test_step_references_read_dots_and_brackets_but_not_strings_or_nested_fields() -> None:
    source = (
        "steps.lookup.output.vip && steps['cool-off'] != null && steps[\"x\"].y"
        " && 'steps.quoted' != '' && event.steps.not_a_step"
    )
    assert Expression.compile(source).step_references() == {"lookup", "cool-off", "x"}


def test_exact_template_keeps_the_result_type() -> None:
    template = Template.compile(
        {
            "n": "${event.data.amount}",
            "big": "${event.data.amount > 1000}",
            "map": "${ {'k': event.data.customer} }",
            "none": "${event.data.note}",
        }
    )
    assert template.render(SCOPE) == {"n": 2500, "big": True, "map": {"k": "c-1"}, "none": None}


def test_mixed_template_interpolates_text() -> None:
    template = Template.compile(
        "n=${event.data.amount} f=${2500.0} half=${0.5} b=${true} none=[${event.data.note}]"
        " tags=${event.data.tags} map=${ {'a': 1} }"
    )
    assert template.render(SCOPE) == (
        'n=2500 f=2500 half=0.5 b=true none=[] tags=["a","b"] map={"a":1}'
    )


def test_double_dollar_escapes_a_literal_placeholder() -> None:
    template = Template.compile("cost $${price} for ${event.data.customer}")
    assert template.render(SCOPE) == "cost ${price} for c-1"
    static = Template.compile({"t": "$${x}"})
    assert static.is_static
    assert static.render({}) == {"t": "${x}"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${ {'a': 1}.a }", 1),
        ("${ {'a': {'b': 2}}.a.b }", 2),
        ("${ 'a}b' }", "a}b"),
        ('${ "say \\"}\\"" }', 'say "}"'),
        ("${ '''x}''' }", "x}"),
        ("${ r'back\\}' }", "back\\}"),
        ("<${ '{' }>", "<{>"),
    ],
)
def test_braces_and_quotes_inside_expressions_do_not_end_them(text: str, expected: Any) -> None:
    assert Template.compile(text).render(SCOPE) == expected


def test_syntax_error_in_a_template_names_its_path() -> None:
    value = {"data": {"customer": "${event.data.customer +}"}}
    with pytest.raises(ExpressionSyntaxError) as caught:
        Template.compile(value, "with")
    assert caught.value.path == "with.data.customer"
    assert str(caught.value).startswith(
        "with.data.customer: invalid CEL expression 'event.data.customer +'"
    )


@pytest.mark.parametrize(
    ("text", "cause"),
    [("x ${event.data", "unterminated '${'"), ("${ }", "empty '${}'"), ("${'}", "unterminated")],
)
def test_malformed_placeholders_are_syntax_errors(text: str, cause: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match=re.escape(cause)) as caught:
        Template.compile({"items": [text]}, "with")
    assert caught.value.path == "with.items[0]"


def test_evaluation_error_in_a_template_names_its_path() -> None:
    template = Template.compile({"url": "http://crm/${event.data.missing}"}, "with")
    with pytest.raises(ExpressionError) as caught:
        template.render(SCOPE)
    assert str(caught.value) == (
        "with.url: CEL error in 'event.data.missing': no such key 'missing'"
    )


def test_static_template_returns_the_same_object_without_evaluating() -> None:
    value = {"a": [1, {"b": "text"}], "c": None}
    template = Template.compile(value)
    assert template.is_static
    assert template.expressions() == []
    assert template.render({}) is value


def test_dynamic_template_reuses_static_subtrees() -> None:
    static_part = {"b": [1, 2]}
    template = Template.compile({"s": static_part, "d": "${execution.id}"})
    assert not template.is_static
    rendered = template.render(SCOPE)
    assert rendered == {"s": {"b": [1, 2]}, "d": "e-1"}
    assert rendered["s"] is static_part


def test_template_lists_its_expressions_in_document_order_with_paths() -> None:
    template = Template.compile({"a": "${event.x}", "b": ["x${steps.s.y}${execution.id}"]}, "with")
    located = [(path, e.source) for path, e in template.located_expressions()]
    assert located == [
        ("with.a", "event.x"),
        ("with.b[0]", "steps.s.y"),
        ("with.b[0]", "execution.id"),
    ]
    assert [e.source for e in template.expressions()] == ["event.x", "steps.s.y", "execution.id"]


def test_templates_reject_values_that_are_not_json_like() -> None:
    with pytest.raises(TypeError, match=r"with\.x: set is not JSON-like"):
        Template.compile({"x": {1, 2}}, "with")
