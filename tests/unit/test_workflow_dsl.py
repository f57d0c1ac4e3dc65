import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.compiled import compile_workflow
from schemas.definition import (
    DefinitionError,
    definition_digest,
    load_definition,
    load_definitions,
    parse_definition,
)
from schemas.steps import ActionStep, ApprovalStep, OnReject, OnTimeout, WaitStep, WaitUntil
from schemas.workflow import Workflow

EXAMPLE = """\
name: refund-approval
description: Refunds over 100 are looked up and announced
retry: {attempts: 3, backoff: 1s, max_backoff: 1m, jitter: 0.2}
triggers:
  - on: payment.refund.requested
    if: event.data.amount >= 100
steps:
  - id: lookup
    action: http
    with: {method: GET, url: "http://crm.local/customers/${event.data.customer}"}
    timeout: 10s
    retry: {attempts: 5, backoff: 2s}
    continue_on_failure: false
  - id: classify
    action: set
    with: {big: "${event.data.amount > 1000}"}
  - id: announce
    if: steps.classify.output.big
    action: publish
    with: {type: payment.refund.big, data: {customer: "${event.data.customer}"}}
  - id: finance
    approval:
      approvers: [alice, bob]
      prompt: "Refund ${event.data.amount}?"
      timeout: 24h
      on_timeout: continue
      on_reject: fail
  - id: cool-off
    wait: 10m
  - id: release
    wait: {until: "${event.data.release_at}"}
"""


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "wf",
        "triggers": [{"on": "order.created"}],
        "steps": [{"id": "first", "action": "log", "with": {"message": "hi"}}],
    }
    doc.update(changes)
    return doc


def _problems(doc: dict[str, Any] | str, filename: str = "flows/wf.yaml") -> list[str]:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text, filename)
    assert caught.value.file == filename
    lines = str(caught.value).splitlines()
    assert lines == [f"{filename}: {problem}" for problem in caught.value.problems]
    return lines


def _step(**fields: Any) -> dict[str, Any]:
    return {"id": "s", "action": "log", **fields}


def test_the_documented_example_loads() -> None:
    wf = parse_definition(EXAMPLE, "examples/refund.yaml")
    assert wf.triggers[0].on == "payment.refund.requested"
    assert wf.triggers[0].if_ == "event.data.amount >= 100"
    lookup, _, announce, finance, cool_off, release = wf.steps
    assert isinstance(lookup, ActionStep)
    assert lookup.timeout == timedelta(seconds=10)
    assert lookup.with_["url"] == "http://crm.local/customers/${event.data.customer}"
    assert isinstance(announce, ActionStep)
    assert announce.if_ == "steps.classify.output.big"
    assert isinstance(finance, ApprovalStep)
    assert finance.approval.approvers == ("alice", "bob")
    assert finance.approval.on_timeout is OnTimeout.CONTINUE
    assert finance.approval.on_reject is OnReject.FAIL
    assert isinstance(cool_off, WaitStep)
    assert cool_off.wait == timedelta(minutes=10)
    assert isinstance(release, WaitStep)
    assert release.wait == WaitUntil(until="${event.data.release_at}")


def test_bare_on_key_stays_the_string_on() -> None:
    wf = parse_definition("name: w\ntriggers:\n  - on: a.b\nsteps: [{id: s, wait: 1s}]\n", "w.yaml")
    assert wf.triggers[0].on == "a.b"


def test_yes_no_and_dates_stay_strings_while_true_and_false_stay_bools() -> None:
    text = (
        "name: w\ntriggers: [{on: a}]\nsteps:\n"
        "  - {id: s, action: log, continue_on_failure: true,"
        " with: {a: yes, b: off, c: 2024-01-01, d: false, on: 1}}\n"
    )
    step = parse_definition(text, "w.yaml").steps[0]
    assert isinstance(step, ActionStep)
    assert step.continue_on_failure is True
    assert step.with_ == {"a": "yes", "b": "off", "c": "2024-01-01", "d": False, "on": 1}


def test_json_definitions_load_even_when_indented_with_tabs() -> None:
    text = json.dumps(_doc(), indent="\t")
    assert parse_definition(text, "wf.json").name == "wf"


def test_dump_validates_back_to_an_equal_workflow() -> None:
    wf = parse_definition(EXAMPLE, "examples/refund.yaml")
    dump = wf.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert Workflow.model_validate(dump) == wf
    assert dump["steps"][0]["timeout"] == "10s"
    assert dump["steps"][3]["approval"]["timeout"] == "1d"
    assert dump["triggers"][0] == {
        "on": "payment.refund.requested",
        "if": "event.data.amount >= 100",
    }
    assert "if" not in dump["steps"][0]


def test_digest_ignores_formatting_and_spelling_of_durations() -> None:
    reformatted = json.dumps(
        {
            "steps": [{"wait": "PT5M", "id": "s"}],
            "triggers": [{"on": "a.b"}],
            "name": "w",
        },
        indent=4,
    )
    block = "name: w  # comment\ntriggers:\n  - on: a.b\nsteps:\n  - id: s\n    wait: 300s\n"
    assert definition_digest(parse_definition(block, "w.yaml")) == definition_digest(
        parse_definition(reformatted, "w.json")
    )
    changed = block.replace("300s", "301s")
    assert definition_digest(parse_definition(changed, "w.yaml")) != definition_digest(
        parse_definition(block, "w.yaml")
    )


def test_compiled_workflow_resolves_retry_and_compiles_every_template() -> None:
    compiled = compile_workflow(parse_definition(EXAMPLE, "examples/refund.yaml"))
    lookup = compiled.steps_by_id["lookup"]
    assert (lookup.index, lookup.id, lookup.retry.attempts) == (0, "lookup", 5)
    assert compiled.steps_by_id["classify"].retry.attempts == 3
    assert compiled.steps_by_id["finance"].retry.attempts == 1
    assert compiled.triggers[0].pattern == "payment.refund.requested"
    condition = compiled.triggers[0].condition
    assert condition is not None
    scope = {
        "event": {"data": {"amount": 2500, "customer": "c-1", "release_at": "2030-01-01T00:00:00Z"}}
    }
    assert condition.evaluate_bool(scope)
    assert lookup.with_ is not None
    assert lookup.with_.render(scope)["url"] == "http://crm.local/customers/c-1"
    announce = compiled.steps_by_id["announce"]
    assert announce.guard is not None
    assert announce.guard.source == "steps.classify.output.big"
    prompt = compiled.steps_by_id["finance"].prompt
    assert prompt is not None
    assert prompt.render(scope) == "Refund 2500?"
    until = compiled.steps_by_id["release"].until
    assert until is not None
    assert until.render(scope) == "2030-01-01T00:00:00Z"
    assert compiled.steps_by_id["cool-off"].until is None


def test_workflow_without_a_retry_block_does_not_retry() -> None:
    compiled = compile_workflow(parse_definition(json.dumps(_doc()), "wf.yaml"))
    assert compiled.steps[0].retry.attempts == 1


def test_duplicate_step_ids_are_reported_on_the_second() -> None:
    steps = [_step(id="a"), {"id": "a", "wait": "1s"}]
    assert _problems(_doc(steps=steps)) == [
        "flows/wf.yaml: steps[1] (id 'a') -> id: duplicate step id (also steps[0])"
    ]


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "sp ace", "x" * 101, "a/b"])
def test_invalid_workflow_names_are_rejected(name: str) -> None:
    [line] = _problems(_doc(name=name))
    assert line.startswith(f"flows/wf.yaml: name: invalid workflow name {name!r}")


@pytest.mark.parametrize("step_id", ["Upper", "with.dot", "_lead", "x" * 64])
def test_invalid_step_ids_are_rejected(step_id: str) -> None:
    [line] = _problems(_doc(steps=[_step(id=step_id)]))
    assert line.startswith(f"flows/wf.yaml: steps[0] (id {step_id!r}) -> id: invalid step id")


@pytest.mark.parametrize("field", ["triggers", "steps"])
def test_empty_triggers_or_steps_are_rejected(field: str) -> None:
    assert _problems(_doc(**{field: []})) == [f"flows/wf.yaml: {field}: must not be empty"]


@pytest.mark.parametrize("pattern", ["a..b", "a.b*", "#x.y", "", "a b", "a.*#"])
def test_invalid_topic_patterns_are_rejected(pattern: str) -> None:
    [line] = _problems(_doc(triggers=[{"on": "ok.*"}, {"on": pattern}]))
    assert line.startswith(f"flows/wf.yaml: triggers[1] -> on: invalid topic pattern {pattern!r}")


def test_valid_topic_patterns_are_accepted() -> None:
    triggers = [{"on": p} for p in ("a", "a.*.c", "#", "a.#", "*.b.#")]
    assert len(parse_definition(json.dumps(_doc(triggers=triggers)), "w.yaml").triggers) == 5


def test_cel_syntax_error_in_a_trigger_condition_names_the_trigger() -> None:
    [line] = _problems(_doc(triggers=[{"on": "a", "if": "event.data.amount >"}]))
    assert line.startswith(
        "flows/wf.yaml: triggers[0] -> if: invalid CEL expression 'event.data.amount >': Syntax"
    )


def test_cel_syntax_error_in_with_names_file_step_and_path() -> None:
    steps = [
        _step(id="lookup"),
        _step(id="classify", **{"with": {"big": "${event.data.amount >}"}}),
    ]
    [line] = _problems(_doc(steps=steps), "examples/refund.yaml")
    assert line.startswith(
        "examples/refund.yaml: steps[1] (id 'classify') -> with.big:"
        " invalid CEL expression 'event.data.amount >': Syntax error"
    )


@pytest.mark.parametrize(
    ("step", "where"),
    [
        ({"id": "s", "if": "1 +", "wait": "1s"}, "if"),
        (_step(**{"with": {"a": [{"b": "x ${1 +}"}]}}), "with.a[0].b"),
        ({"id": "s", "approval": {"approvers": "any", "prompt": "ok ${)}"}}, "approval.prompt"),
        ({"id": "s", "wait": {"until": "${event.at"}}, "wait.until"),
    ],
)
def test_every_expression_must_compile_at_load(step: dict[str, Any], where: str) -> None:
    [line] = _problems(_doc(steps=[step]))
    assert line.startswith(f"flows/wf.yaml: steps[0] (id 's') -> {where}: invalid CEL expression")


def test_reference_to_a_later_step_is_rejected() -> None:
    steps = [_step(id="a", **{"if": "steps.b.output.ok"}), {"id": "b", "wait": "1s"}]
    assert _problems(_doc(steps=steps)) == [
        "flows/wf.yaml: steps[0] (id 'a') -> if: step 'a' refers to step 'b' which does not"
        " run before it"
    ]


def test_reference_to_an_unknown_step_says_there_is_none() -> None:
    steps = [_step(id="a"), _step(id="b", **{"with": {"x": "${steps['lokup'].output}"}})]
    [line] = _problems(_doc(steps=steps))
    assert line == (
        "flows/wf.yaml: steps[1] (id 'b') -> with.x: step 'b' refers to step 'lokup'"
        " which does not run before it (there is no step 'lokup')"
    )


def test_a_step_cannot_refer_to_itself() -> None:
    [line] = _problems(_doc(steps=[_step(id="a", **{"with": {"x": "${steps.a.output}"}})]))
    assert "step 'a' refers to step 'a' which does not run before it" in line


def test_references_to_earlier_steps_are_accepted() -> None:
    steps = [
        _step(id="cool-off"),
        _step(id="b", **{"if": "steps['cool-off'].output.ok", "with": {"x": "${steps.b2}"}}),
    ]
    steps[1]["with"] = {"x": "${steps['cool-off'].output}"}
    assert len(parse_definition(json.dumps(_doc(steps=steps)), "w.yaml").steps) == 2


@pytest.mark.parametrize("name", ["steps", "execution"])
def test_trigger_conditions_may_only_use_event(name: str) -> None:
    [line] = _problems(_doc(triggers=[{"on": "a", "if": f"{name}.x == 1"}]))
    assert line == (
        f"flows/wf.yaml: triggers[0] -> if: a trigger condition can only use 'event', not {name!r}"
    )


def test_trigger_conditions_may_use_macro_variables() -> None:
    doc = _doc(triggers=[{"on": "a", "if": "event.data.items.exists(i, i.sku == 'x')"}])
    assert parse_definition(json.dumps(doc), "w.yaml").triggers[0].if_ is not None


@pytest.mark.parametrize(
    ("step", "where", "message"),
    [
        ({"id": "s", "wait": "0s"}, "wait", "must be more than 0 and at most 365d, got 0s"),
        ({"id": "s", "wait": "366d"}, "wait", "must be more than 0 and at most 365d"),
        ({"id": "s", "wait": "soon"}, "wait", "invalid duration 'soon'"),
        ({"id": "s", "wait": {"until": "tomorrow"}}, "wait", "'tomorrow' is neither"),
        ({"id": "s", "wait": {"at": "x"}}, "wait", "expected a duration or {until:"),
        (
            {"id": "s", "approval": {"approvers": "any", "timeout": "0s"}},
            "approval.timeout",
            "must be more than 0",
        ),
        (
            {"id": "s", "approval": {"approvers": "any", "timeout": "400d"}},
            "approval.timeout",
            "at most 365d",
        ),
        ({"id": "s", "approval": {"approvers": []}}, "approval.approvers", "must not be empty"),
        ({"id": "s", "approval": {"timeout": "1h"}}, "approval.approvers", "is required: a list"),
        ({"id": "s", "approval": {"approvers": "all"}}, "approval.approvers", "or `any` to let"),
        ({"id": "s", "approval": {"approvers": ["any"]}}, "approval.approvers", "not a list"),
        (
            {"id": "s", "approval": {"approvers": "any", "on_timeout": "retry"}},
            "approval.on_timeout",
            "'continue'",
        ),
        ({"id": "s", "approval": {"approvers": "any", "who": "me"}}, "approval.who", "unknown key"),
        (_step(timeout="-1s"), "timeout", "must not be negative"),
        (_step(retry={"attempts": 0}), "retry.attempts", "greater than or equal to 1"),
        (_step(retry={"attempts": 101}), "retry.attempts", "less than or equal to 100"),
        (_step(retry={"jitter": 2}), "retry.jitter", "less than or equal to 1"),
        (_step(retry={"backoff": "1m", "max_backoff": "1s"}), "retry", "max_backoff must not"),
        (_step(colour="red"), "colour", "unknown key"),
        ({"id": "s", "wait": "1s", "timeout": "1s"}, "timeout", "unknown key"),
        ({"action": "log"}, "id", "is required"),
    ],
)
def test_step_field_problems_name_the_step_and_field(
    step: dict[str, Any], where: str, message: str
) -> None:
    [line] = _problems(_doc(steps=[_step(id="ok"), step]))  # one line, naming step and field
    step_id = f" (id {step['id']!r})" if "id" in step else ""
    assert line.startswith(f"flows/wf.yaml: steps[1]{step_id} -> {where}: ")
    assert message in line


@pytest.mark.parametrize(
    "step",
    [
        {"id": "s"},
        {"id": "s", "action": "log", "wait": "1s"},
        {"id": "s", "approval": {}, "wait": 1},
    ],
)
def test_a_step_needs_exactly_one_kind(step: dict[str, Any]) -> None:
    assert _problems(_doc(steps=[step])) == [
        "flows/wf.yaml: steps[0] (id 's'):"
        " a step needs exactly one of 'action', 'approval' or 'wait'"
    ]


def test_unknown_top_level_and_trigger_keys_are_errors() -> None:
    assert _problems(_doc(owner="me", triggers=[{"on": "a", "when": "x"}])) == [
        "flows/wf.yaml: triggers[0] -> when: unknown key",
        "flows/wf.yaml: owner: unknown key",
    ]


def test_all_problems_are_reported_together() -> None:
    doc = _doc(name="Bad Name", steps=[{"id": "s", "wait": "0s"}, _step(id="t", retry={"x": 1})])
    assert len(_problems(doc)) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: a\nname: b\n", "invalid YAML at line 2, column 1: duplicate key 'name'"),
        ("name: a\n---\nname: b\n", "but found another document"),
        ("- name: a\n", "the document must be a mapping, not list"),
        ("", "the document must be a mapping, not nothing"),
        ("name: [a\n", "invalid YAML at line 2, column 1"),
        ("x: " + "[" * 65 + "]" * 65, "nesting is deeper than 64 levels"),
        ("x: " + "[" * 5000 + "]" * 5000, "nesting is deeper than 64 levels"),
        ("a: &a [*a]\n", "nesting is deeper than 64 levels"),
        ("x" * ((1 << 20) + 1), "larger than 1048576 bytes"),
    ],
)
def test_unusable_documents_are_rejected_naming_the_file(text: str, message: str) -> None:
    [line] = _problems(text)
    assert line.startswith("flows/wf.yaml: ")
    assert message in line


def test_yaml_alias_bombs_are_rejected() -> None:
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcde", "bcdef", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    [line] = _problems("\n".join(lines))
    assert "expands to more than 100000 values" in line


def test_non_utf8_bytes_are_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"wf\.yaml: not UTF-8"):
        parse_definition(b"name: caf\xe9\n", "wf.yaml")


def test_json_duplicate_keys_are_rejected() -> None:
    [line] = _problems('{"name": "a", "name": "b"}', "wf.json")
    assert line == "wf.json: invalid JSON: duplicate key 'name'"


def test_load_definitions_reads_directories_in_order_and_rejects_duplicate_names(
    tmp_path: Path,
) -> None:
    (tmp_path / "b.yaml").write_text(json.dumps(_doc(name="second")))
    (tmp_path / "a.json").write_text(json.dumps(_doc(name="first")))
    (tmp_path / "notes.txt").write_text("ignored")
    loaded = load_definitions([tmp_path])
    assert [(p.name, wf.name) for p, wf in loaded] == [("a.json", "first"), ("b.yaml", "second")]

    (tmp_path / "c.yml").write_text(json.dumps(_doc(name="first")))
    (tmp_path / "d.yaml").write_text(json.dumps(_doc(name="Bad")))
    with pytest.raises(DefinitionError) as caught:
        load_definitions([tmp_path])
    lines = str(caught.value).splitlines()
    assert (
        lines[0]
        == f"{tmp_path / 'c.yml'}: workflow 'first' is also defined in {tmp_path / 'a.json'}"
    )
    assert lines[1].startswith(f"{tmp_path / 'd.yaml'}: name: invalid workflow name 'Bad'")


def test_load_definition_names_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DefinitionError, match=r"nope\.yaml: cannot read") as caught:
        load_definition(missing)
    assert caught.value.file == str(missing)


def test_an_approval_without_approvers_is_refused_at_apply_but_still_reads_back_stored() -> None:
    """Versions stored before `approvers` was required keep loading: anyone may decide."""
    stored = {
        "name": "old",
        "triggers": [{"on": "a.b"}],
        "steps": [{"id": "ask", "approval": {"timeout": "1h"}}],
    }
    step = Workflow.model_validate(stored).steps[0]
    assert isinstance(step, ApprovalStep)
    assert step.approval.approvers is None
    assert step.approval.named_approvers is None
    assert _problems(stored) == [
        "flows/wf.yaml: steps[0] (id 'ask') -> approval.approvers: is required: a list of"
        " approver names, or `any` to let anyone decide"
    ]


def test_approvers_any_lets_anyone_decide_and_a_list_names_who() -> None:
    anyone = _doc(steps=[{"id": "a", "approval": {"approvers": "any"}}])
    named = _doc(steps=[{"id": "a", "approval": {"approvers": ["alice", "bob"]}}])
    first = parse_definition(json.dumps(anyone), "wf.json").steps[0]
    second = parse_definition(json.dumps(named), "wf.json").steps[0]
    assert isinstance(first, ApprovalStep)
    assert isinstance(second, ApprovalStep)
    assert first.approval.named_approvers is None
    assert second.approval.named_approvers == ("alice", "bob")
