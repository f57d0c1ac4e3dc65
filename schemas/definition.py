"""Reading workflow definitions from YAML or JSON, with errors naming file, step and field."""

import hashlib
import json
import re
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from schemas.steps import NEW_DEFINITION, STEP_KINDS
from schemas.workflow import Workflow, WorkflowProblems, describe_location

__all__ = [
    "DefinitionError",
    "definition_digest",
    "load_definition",
    "load_definitions",
    "parse_definition",
]

MAX_BYTES: Final = 1 << 20
MAX_DEPTH: Final = 64
MAX_VALUES: Final = 100_000  # bounds what YAML aliases can expand to ("billion laughs")
SUFFIXES: Final = frozenset({".yaml", ".yml", ".json"})


class DefinitionError(Exception):
    """A definition cannot be used; `str()` gives one `file: where: what` line per problem."""

    def __init__(self, file: str | None, problems: list[str]) -> None:
        self.file, self.problems = file, problems
        prefix = f"{file}: " if file else ""
        super().__init__("\n".join(prefix + problem for problem in problems))


class _TooDeep(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader, YAML 1.2 style: `on`/`yes`/`no` and dates stay strings; no duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # The composer recurses per level: stop before Python's recursion limit does.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:
                raise _TooDeep
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges may override keys on purpose
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads `on:` as True and `2024-01-01` as a date; JSON-minded authors expect strings.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":bool", ":timestamp"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_definition(text: str | bytes, filename: str) -> Workflow:
    """Parse and validate one definition; JSON when `filename` ends in .json, YAML otherwise."""
    data = _read_document(_decode(text, filename), filename)
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise DefinitionError(filename, [f"the document must be a mapping, not {kind}"])
    try:
        # a definition being applied: rules older stored versions may break apply here too
        return Workflow.model_validate(data, context={NEW_DEFINITION: True})
    except ValidationError as exc:
        raise DefinitionError(filename, _problems(exc, data)) from None


def load_definition(path: Path) -> Workflow:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DefinitionError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    return parse_definition(data, str(path))


def load_definitions(paths: Sequence[Path]) -> list[tuple[Path, Workflow]]:
    """Load files, and the *.yaml/*.yml/*.json directly inside directories, in sorted order.

    Every file is read before failing, so one DefinitionError reports all their problems.
    """
    loaded: list[tuple[Path, Workflow]] = []
    problems: list[str] = []
    owners: dict[str, Path] = {}
    for path in _expand(paths):
        try:
            workflow = load_definition(path)
        except DefinitionError as exc:
            problems += [f"{exc.file}: {problem}" for problem in exc.problems]
            continue
        if workflow.name in owners:
            problems.append(
                f"{path}: workflow {workflow.name!r} is also defined in {owners[workflow.name]}"
            )
            continue
        owners[workflow.name] = path
        loaded.append((path, workflow))
    if problems:
        raise DefinitionError(None, problems)
    return loaded


def definition_digest(wf: Workflow) -> str:
    """sha256 of the canonical JSON form: equal for definitions that differ only in formatting."""
    dump = wf.model_dump(mode="json", by_alias=True, exclude_none=True)
    canonical = json.dumps(dump, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _expand(paths: Sequence[Path]) -> list[Path]:
    found: dict[Path, Path] = {}
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            found.update((p.resolve(), p) for p in inside if p.resolve() not in found)
        elif path.resolve() not in found:
            found[path.resolve()] = path
    return list(found.values())


def _decode(text: str | bytes, filename: str) -> str:
    size = len(text) if isinstance(text, bytes) else len(text.encode(errors="replace"))
    if size > MAX_BYTES:
        raise DefinitionError(filename, [f"the document is larger than {MAX_BYTES} bytes"])
    if isinstance(text, str):
        return text
    try:
        return text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(filename, [f"not UTF-8 (bad byte at offset {exc.start})"]) from None


def _read_document(text: str, filename: str) -> Any:
    try:
        data = _parse_json(text) if filename.endswith(".json") else _parse_yaml(text)
    except (_TooDeep, RecursionError):
        raise DefinitionError(filename, [f"nesting is deeper than {MAX_DEPTH} levels"]) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise DefinitionError(filename, [_syntax_message(exc)]) from None
    if problem := _shape_problem(data):
        raise DefinitionError(filename, [problem])
    return data


def _parse_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _parse_json(text: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) < len(pairs):
            duplicate = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
            raise ValueError(f"invalid JSON: duplicate key {duplicate!r}")
        return result

    return json.loads(text, object_pairs_hook=no_duplicates)


def _syntax_message(exc: yaml.YAMLError | ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        return f"invalid YAML{where}: {what}"
    return str(exc) if isinstance(exc, ValueError) else f"invalid YAML: {exc}"


def _shape_problem(data: Any) -> str | None:
    """Walk the loaded value without recursion; YAML aliases count once per use."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return f"the document expands to more than {MAX_VALUES} values"
        children = (
            value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        )
        if children and depth > MAX_DEPTH:
            return f"nesting is deeper than {MAX_DEPTH} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def _problems(exc: ValidationError, data: dict[Any, Any]) -> list[str]:
    problems: list[str] = []
    for error in exc.errors():
        if error["type"] == "too_short" and error["input"]:
            continue  # its items failed and are reported themselves
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, WorkflowProblems):
            problems += [f"{cause.where(p)}: {p.message}" for p in cause.problems]
            continue
        loc = list(error["loc"])
        if len(loc) > 2 and loc[0] == "steps" and loc[2] in STEP_KINDS:
            del loc[2]  # the union's tag, always right after steps[i]
        problems.append(f"{describe_location(loc, _step_id(data, loc))}: {_message(error)}")
    return problems


def _step_id(data: dict[Any, Any], loc: Sequence[str | int]) -> str | None:
    steps = data.get("steps")
    if len(loc) < 2 or loc[0] != "steps" or not isinstance(steps, list):
        return None
    index = loc[1]
    step = steps[index] if isinstance(index, int) and index < len(steps) else None
    step_id = step.get("id") if isinstance(step, dict) else None
    return step_id if isinstance(step_id, str) else None


_MESSAGES: Final = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
}


def _message(error: ErrorDetails) -> str:
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return _MESSAGES.get(error["type"], error["msg"])
