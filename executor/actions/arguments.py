"""Typed reads of an action's `with` map that fail the step, without retry, on a bad value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from executor.actions.errors import StepFailed


def invalid(field: str, problem: str) -> StepFailed:
    """A bad `with` argument: retrying the same input can never succeed."""
    return StepFailed(f"with.{field}: {problem}", retryable=False)


def required_str(args: Mapping[str, Any], field: str) -> str:
    value = args.get(field)
    if value is None:
        raise invalid(field, "is required")
    if not isinstance(value, str) or not value:
        raise invalid(field, f"must be a non-empty string, got {_describe(value)}")
    return value


def optional_str(args: Mapping[str, Any], field: str) -> str | None:
    value = args.get(field)
    if value is not None and not isinstance(value, str):
        raise invalid(field, f"must be a string, got {_describe(value)}")
    return value


def optional_str_map(args: Mapping[str, Any], field: str) -> dict[str, str]:
    """A map of string keys to scalars; scalars are turned into strings (headers, params)."""
    value = args.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid(field, f"must be a map, got {_describe(value)}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str | int | float | bool):
            raise invalid(f"{field}.{key}", f"must be a string, got {_describe(item)}")
        result[key] = str(item).lower() if isinstance(item, bool) else str(item)
    return result


def optional_map(args: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = args.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise invalid(field, f"must be a map with string keys, got {_describe(value)}")
    return value


def _describe(value: object) -> str:
    if value is None or value == "":
        return "null" if value is None else "an empty string"
    return type(value).__name__
