"""structlog setup: JSON lines off a TTY, a console renderer on one, stdlib routed through it.

This is the one place that touches process-wide logging configuration. Only entry points
(service `__main__`, the CLI) call `configure_logging`; library code just calls
`structlog.get_logger()` and binds `execution_id`, `workflow` and `step` with
`structlog.contextvars.bound_contextvars` at message boundaries.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, Processor

# Chatty libraries (aio_pika, aiormq, sqlalchemy) only reach the output from this level up.
STDLIB_LEVEL = logging.WARNING


class _StructlogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the root handler we own, so a second `configure_logging` replaces it."""


def configure_logging(
    *, level: str = "INFO", json: bool | None = None, redact: Callable[[str], str] | None = None
) -> None:
    """Configure structlog and stdlib logging to write to stderr; safe to call again.

    `json=None` picks JSON lines unless stderr is a TTY. `redact` is applied to every string of
    every line (values, tracebacks, the rendered console line), so secrets never reach the log.
    Raises ValueError on an unknown level.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level: {level!r}")
    as_json = json if json is not None else not sys.stderr.isatty()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # ConsoleRenderer formats exceptions itself and warns if they arrive pre-formatted.
    tail: list[Processor] = (
        [structlog.processors.format_exc_info, _json_renderer()]
        if as_json
        else [structlog.dev.ConsoleRenderer()]
    )
    if redact is not None:
        tail = [*tail[:-1], _redacting(redact), _redacted_output(tail[-1], redact)]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        # Not cached, so a later call also reconfigures loggers that already logged.
        cache_logger_on_first_use=False,
    )
    _route_stdlib(shared, tail)


def _redacting(redact: Callable[[str], str]) -> Processor:
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {walk(key): walk(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [walk(item) for item in value]
        if isinstance(value, BaseException):
            return redact(f"{type(value).__name__}: {value}")
        return value

    def processor(logger: Any, method: str, event_dict: EventDict) -> EventDict:
        # exc_info is left for the renderer to format; its output is redacted afterwards
        return {k: v if k == "exc_info" else walk(v) for k, v in event_dict.items()}

    return processor


def _redacted_output(renderer: Processor, redact: Callable[[str], str]) -> Processor:
    """The renderer, its output redacted too: the console renderer formats tracebacks itself."""

    def render(logger: Any, method: str, event_dict: EventDict) -> Any:
        output = renderer(logger, method, event_dict)
        return redact(output) if isinstance(output, str) else output

    return render


def _json_renderer() -> structlog.processors.JSONRenderer:
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj, default=str).decode()

    return structlog.processors.JSONRenderer(serializer=dumps)


def _route_stdlib(shared: list[Processor], tail: list[Processor]) -> None:
    handler = _StructlogHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StructlogHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(STDLIB_LEVEL)
