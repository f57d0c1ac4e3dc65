"""The docs hold: every definition in them applies, every CLI command and setting in them exists.

A YAML block in README.md or docs/*.md is a whole definition, checked as `interlock apply`
checks it (parse, validate, action names), unless an HTML comment on the line before says what
else it is:

- `<!-- docs-check: steps -->`: a list of steps, checked inside a one-trigger workflow;
- `<!-- docs-check: part of examples/x.yaml -->`: its top-level keys equal that file's;
- `<!-- docs-check: invalid -->`: shows a mistake; it must fail the check;
- `<!-- docs-check: auth file -->`: an `INTERLOCK_AUTH_FILE`, checked as the resumer reads one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from pydantic import BaseModel

from interlock.auth import parse_auth_file
from interlock.cli.action_check import action_problems, known_actions
from interlock.cli.app import app
from interlock.settings import ExecutorSettings, Settings
from schemas.definition import DefinitionError, load_definitions
from tests.chaos import test_chaos
from tests.support.markdown import ROOT, Block, blocks, commands, docs

EXAMPLES = ROOT / "examples"
# what `make run` gives the executor, and so what `interlock apply examples/` finds
EXAMPLE_ACTIONS = ["order_actions"]
_PART_OF = "part of "


def _yaml_blocks() -> list[Block]:
    return [b for path in docs() for b in blocks(path) if b.lang in ("yaml", "yml")]


def _apply_check(tmp_path: Path, name: str, text: str) -> list[str]:
    """What `interlock apply` would refuse in a file holding `text`: [] when it applies."""
    path = tmp_path / name
    path.write_text(text)
    try:
        loaded = load_definitions([path])
    except DefinitionError as exc:
        return [str(exc)]
    settings = Settings(executor=ExecutorSettings(actions=EXAMPLE_ACTIONS))
    return action_problems(loaded, known_actions(settings))


def _as_checked(block: Block) -> str:
    if block.marker != "steps":
        return block.text
    steps = yaml.safe_load(block.text)
    assert isinstance(steps, list), f"{block.where}: `steps` marks a list of steps"
    return yaml.safe_dump({"name": "docs-example", "triggers": [{"on": "docs.x"}], "steps": steps})


@pytest.fixture(autouse=True)
def _example_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


@pytest.mark.parametrize("block", _yaml_blocks(), ids=lambda b: b.where)
def test_every_definition_in_the_docs_applies_unless_marked_otherwise(
    block: Block, tmp_path: Path
) -> None:
    if block.marker is not None and block.marker.startswith(_PART_OF):
        whole = yaml.safe_load((ROOT / block.marker.removeprefix(_PART_OF)).read_text())
        part = yaml.safe_load(block.text)
        assert {key: whole.get(key) for key in part} == part, f"{block.where}: not {block.marker}"
        return
    if block.marker == "auth file":
        parse_auth_file(block.text.encode())  # raises on a file the resumer would refuse
        return
    assert block.marker in (None, "steps", "invalid"), f"{block.where}: unknown marker"
    problems = _apply_check(tmp_path, "example.yaml", _as_checked(block))
    if block.marker == "invalid":
        assert problems, f"{block.where} is marked invalid but applies"
    else:
        assert problems == [], f"{block.where} does not apply"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_workflow_applies(path: Path, tmp_path: Path) -> None:
    assert _apply_check(tmp_path, path.name, path.read_text()) == []


def _walk(args: list[str]) -> Iterator[str]:
    """Problems of `interlock <args>`: an unknown subcommand, or a long option it lacks."""
    command: Any = typer.main.get_command(app)  # click's, as typer vendors it
    path = ["interlock"]
    rest = list(args)
    # a group has subcommands; the walk ends at a command, or at an option or a group's end
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        found = command.commands.get(name)
        if found is None:
            yield f"`{' '.join(path)}` has no command {name!r} (has: {sorted(command.commands)})"
            return
        command, path = found, [*path, name]
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in rest:
        option = word.split("=", 1)[0]
        if option.startswith("--") and option not in options:
            yield f"`{' '.join(path)}` has no option {option} (has: {sorted(options)})"


@pytest.mark.parametrize("path", docs(), ids=lambda p: p.name)
def test_every_cli_command_in_the_docs_exists_with_its_options(path: Path) -> None:
    found = list(commands(path))
    problems = [f"{c.where}: {c.text}\n    {p}" for c in found for p in _walk(c.args)]
    assert problems == [], "\n".join(problems)


def test_the_command_check_sees_commands_and_catches_a_wrong_one() -> None:
    assert sum(len(list(commands(path))) for path in docs()) >= 40
    assert list(_walk(["executions", "list", "--status", "paused"])) == []
    assert list(_walk(["executions", "lst"])) != []
    assert list(_walk(["approve", "ID", "--by", "x", "--comentary", "y"])) != []


def test_the_docs_state_the_chaos_suites_size() -> None:
    counts = test_chaos.COUNTS
    executions = sum(counts.values()) + counts["chaos.work"] // 2  # even ones match twice
    readme = (ROOT / "docs" / "guarantees.md").read_text()
    assert f"drives {executions:,}\nexecutions ({sum(counts.values()):,} events" in readme
    assert f"plus {test_chaos.POISON} poison messages" in readme


def test_a_block_marked_invalid_must_fail_and_an_unmarked_one_must_apply(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Wrong on purpose:\n\n<!-- docs-check: invalid -->\n```yaml\nname: x\nsteps: []\n```\n\n"
        "- in a list:\n\n  ```yaml\n  name: ok\n  triggers: [{on: a.b}]\n"
        "  steps: [{id: s, action: set, with: {}}]\n  ```\n"
    )
    wrong, right = blocks(page)

    assert (wrong.marker, right.marker) == ("invalid", None)
    assert _apply_check(tmp_path, "wrong.yaml", _as_checked(wrong)) != []
    assert _apply_check(tmp_path, "right.yaml", _as_checked(right)) == []


def _setting_names() -> set[str]:
    """INTERLOCK_* of every setting, sections' fields as INTERLOCK_<SECTION>_<FIELD>."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names |= {f"INTERLOCK_{name}_{sub}".upper() for sub in section.model_fields}
        else:
            names.add(f"INTERLOCK_{name}".upper())
    return names


def test_the_settings_page_lists_every_setting_and_no_other() -> None:
    table = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"^\| `(INTERLOCK_[A-Z_]+)", table, flags=re.MULTILINE))
    documented.discard("INTERLOCK_SECRET_")  # `INTERLOCK_SECRET_<NAME>`: one per secret
    assert documented == _setting_names()


def _anchors(page: Path) -> set[str]:
    """GitHub's ids for a page's headings (code blocks skipped)."""
    found: set[str] = set()
    fenced = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"^#{1,6} (.+)$", line)):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


@pytest.mark.parametrize(
    "page", [*docs(), ROOT / "ARCHITECTURE.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_link_between_the_pages_lands(page: Path) -> None:
    """Relative links name files that exist, and headings that exist in them."""
    broken = []
    fenced = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}:{number}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{page.name}:{number}: {target} (no such heading)")
    assert broken == [], "\n".join(broken)
