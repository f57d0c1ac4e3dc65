"""Steps as a graph: `needs`, `for_each`, and what `interlock apply` refuses about them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.compiled import compile_workflow
from schemas.definition import DefinitionError, parse_definition
from schemas.graph import CycleError, StepGraph, find_cycle, resolve_needs

ORDER_FLOW = """\
name: order-flow
triggers: [{on: order.placed}]
steps:
  - id: fetch-order
    action: http
    with: {url: "https://orders.internal/${event.data.order}"}
  - id: score
    needs: [fetch-order]
    action: risk.score
  - id: reserve
    needs: [fetch-order]
    action: http
    with: {method: POST, url: "https://stock.internal/reserve", json: "${steps['fetch-order'].output.body}"}
  - id: notify-each
    needs: [score, reserve]
    for_each: "${steps['fetch-order'].output.body.lines}"
    max_concurrency: 5
    action: http
    with: {method: POST, url: "https://mail.internal/send", json: {sku: "${item.sku}", n: "${index}"}}
  - id: start-now
    needs: []
    action: log
    with: {message: "order ${event.data.order} received"}
"""


def _wf(*steps: dict[str, Any]) -> str:
    return json.dumps({"name": "wf", "triggers": [{"on": "a.b"}], "steps": list(steps)})


def _problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text, "g.json")
    return caught.value.problems


def _log(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "log", "with": {"message": "x"}, **fields}


def test_the_issue_example_compiles_to_the_graph_it_describes() -> None:
    compiled = compile_workflow(parse_definition(ORDER_FLOW, "order.yaml"))
    graph = compiled.graph
    assert graph.needs == {
        "fetch-order": (),
        "score": ("fetch-order",),
        "reserve": ("fetch-order",),
        "notify-each": ("score", "reserve"),
        "start-now": (),
    }
    assert graph.ancestors["notify-each"] == {"fetch-order", "score", "reserve"}
    assert graph.descendants("fetch-order") == {"score", "reserve", "notify-each"}
    each = compiled.steps_by_id["notify-each"]
    assert each.for_each is not None
    assert each.max_concurrency == 5
    assert compiled.steps_by_id["score"].max_concurrency == 10


def test_a_step_without_needs_follows_the_step_listed_before_it() -> None:
    compiled = compile_workflow(parse_definition(_wf(_log("a"), _log("b"), _log("c")), "s.json"))
    assert compiled.graph.needs == {"a": (), "b": ("a",), "c": ("b",)}
    # after an explicit needs, the next step still follows the one listed before it
    text = _wf(_log("a"), _log("b", needs=[]), _log("c"))
    assert compile_workflow(parse_definition(text, "s.json")).graph.needs["c"] == ("b",)


def test_unknown_and_self_needs_are_refused_naming_the_field() -> None:
    problems = _problems(_wf(_log("a"), _log("b", needs=["a", "nope", "b"])))
    assert problems == [
        "steps[1] (id 'b') -> needs[1]: there is no step 'nope'",
        "steps[1] (id 'b') -> needs[2]: a step cannot need itself",
    ]


def test_a_cycle_is_refused_and_named() -> None:
    problems = _problems(_wf(_log("a", needs=["c"]), _log("b", needs=["a"]), _log("c")))
    assert problems == ["steps[0] (id 'a') -> needs: needs form a cycle: a -> c -> b -> a"]


def test_a_need_listed_twice_is_refused() -> None:
    problems = _problems(_wf(_log("a"), _log("b", needs=["a", "a"])))
    assert problems == ["steps[1] (id 'b') -> needs: lists 'a' more than once"]


def test_references_to_steps_that_are_not_ancestors_are_refused() -> None:
    text = _wf(
        _log("a"),
        _log("b", needs=["a"]),
        {"id": "c", "needs": ["a"], "action": "set", "with": {"x": "${steps.b.output}"}},
    )
    assert _problems(text) == [
        "steps[2] (id 'c') -> with.x: step 'c' refers to step 'b' which does not run before it"
        " (not among the steps it needs, directly or through others)"
    ]


def test_references_through_a_chain_of_needs_are_allowed() -> None:
    text = _wf(
        _log("a"),
        _log("b", needs=["a"]),
        {"id": "c", "needs": ["b"], "action": "set", "with": {"x": "${steps.a.output}"}},
    )
    parse_definition(text, "ok.json")


def test_item_and_index_are_refused_outside_for_each_items() -> None:
    outside = {"id": "a", "action": "set", "with": {"x": "${item}", "y": "${index}"}}
    in_list = {"id": "b", "needs": [], "action": "set", "for_each": "${[item]}", "with": {}}
    macro = {"id": "c", "needs": [], "action": "set", "with": {"x": "${[1].map(item, item)}"}}
    problems = _problems(_wf(outside, in_list, macro))
    assert problems == [
        "steps[0] (id 'a') -> with.x: 'item' is only defined in a step's for_each items,"
        " not outside for_each",
        "steps[0] (id 'a') -> with.y: 'index' is only defined in a step's for_each items,"
        " not outside for_each",
        "steps[1] (id 'b') -> for_each: 'item' is only defined in a step's for_each items,"
        " not in the for_each list itself",
    ]


def test_for_each_is_only_for_action_steps_and_max_concurrency_needs_it() -> None:
    wait = {"id": "w", "wait": "5s", "for_each": "${[1]}"}
    assert _problems(_wf(wait)) == ["steps[0] (id 'w') -> for_each: unknown key"]
    lonely = {"id": "a", "action": "log", "with": {"message": "x"}, "max_concurrency": 2}
    assert _problems(_wf(lonely)) == [
        "steps[0] (id 'a'): max_concurrency applies only to a step with for_each"
    ]


def test_definitions_without_needs_keep_their_digest() -> None:
    from schemas.definition import definition_digest

    wf = parse_definition(_wf(_log("a"), _log("b")), "d.json")
    dumped = wf.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert "needs" not in dumped["steps"][0]
    assert definition_digest(wf) == definition_digest(parse_definition(json.dumps(dumped), "x"))


def test_graph_helpers_find_cycles_and_order() -> None:
    assert resolve_needs(["a", "b", "c"], [None, [], None]) == [[], [], ["b"]]
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"a": [], "b": ["a"]}) is None
    with pytest.raises(CycleError, match="a -> a"):
        StepGraph.build(["a"], [["a"]])
    graph = StepGraph.build(["a", "b", "c", "d"], [[], ["a"], ["a"], ["b", "c"]])
    assert graph.dependents["a"] == ("b", "c")
    assert graph.ancestors["d"] == {"a", "b", "c"}
