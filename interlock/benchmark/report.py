"""The results as a table for people and one JSON document for machines."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from sqlalchemy import make_url

from interlock.benchmark.config import BenchConfig
from interlock.benchmark.figures import Figure, Outcome, ScenarioResult
from interlock.benchmark.runner import BenchRun
from interlock.settings import Settings

FORMAT = 1
_MESSAGE_WIDTH = 90


def document(
    config: BenchConfig, settings: Settings, run: BenchRun, date: datetime
) -> dict[str, Any]:
    return {
        "benchmark": "interlock",
        "format": FORMAT,
        "date": date.isoformat(timespec="seconds"),
        "mode": config.mode,
        "ok": all(r.outcome is Outcome.OK for r in run.results),
        "seconds": run.seconds,
        **run.environment,
        "settings": _settings(config, settings, run),
        "scenarios": {r.scenario: _scenario(r, config.quick) for r in run.results},
    }


def write(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dumps(doc))


def dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)


def table(results: list[ScenarioResult], quick: bool) -> str:
    headers = ["scenario", "figure", "value", "target", "verdict"]
    rows: list[list[str]] = []
    for result in results:
        for figure in result.figures:
            target = figure.target.describe(figure.unit) if figure.target else ""
            verdict = figure.verdict(quick).value
            rows.append([result.scenario, figure.name, _value(figure), target, verdict])
        if result.outcome is not Outcome.OK:
            message = result.message.splitlines()[0] if result.message else ""
            rows.append([result.scenario, f"{result.outcome.value.upper()}: {_clip(message)}"])
    rows = [row + [""] * (len(headers) - len(row)) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _value(figure: Figure) -> str:
    if figure.value is None:
        return "-"
    v = figure.value
    number = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return f"{number} {figure.unit}"


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_WIDTH else text[: _MESSAGE_WIDTH - 1] + "…"


def _scenario(result: ScenarioResult, quick: bool) -> dict[str, Any]:
    return {
        "outcome": result.outcome.value,
        "message": result.message or None,
        "seconds": result.seconds,
        "figures": [
            {
                "name": f.name,
                "value": f.value,
                "unit": f.unit,
                "target": {"op": f.target.op, "value": f.target.value} if f.target else None,
                "verdict": f.verdict(quick).value or None,
            }
            for f in result.figures
        ],
        "details": result.details,
    }


def _settings(config: BenchConfig, settings: Settings, run: BenchRun) -> dict[str, Any]:
    """What was asked for, and the service settings (the environment the services inherit)."""
    service = settings.model_dump(mode="json")
    service["namespace"] = run.sandbox["namespace"]
    service["database"]["url"] = (
        make_url(settings.database.url)
        .set(database=run.sandbox["database"])
        .render_as_string(hide_password=True)
    )
    service["amqp"]["url"] = _hide_password(settings.amqp.url)
    service["telemetry"] |= {"port": "a free port per process", "log_level": "WARNING"}
    return {
        "sizes": asdict(config.sizes),
        "executors": list(config.executors),
        "scenarios": [s.value for s in config.scenarios],
        "stall_timeout_s": config.stall_timeout,
        "output": str(config.output),
        "logs": str(run.logs) if run.logs else None,
        "service": service,
    }


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
