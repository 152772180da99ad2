"""Structured logging (structlog over the standard library) with secret redaction.

Every handler Kestrel installs formats through `RedactingFormatter` and filters through
`RedactionFilter`, so a secret value never reaches a log line, whatever logged it (our code, aiohttp,
a traceback). Secrets are registered with `register_secrets` (the CLI registers every SecretStr of
the configuration) and matched literally, URL-encoded too.
"""

from __future__ import annotations

import logging
import sys
import threading
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import structlog

REDACTED = "***REDACTED***"
_MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secrets(values: Iterable[str]) -> None:
    """Add secret values to redact from now on (idempotent)."""
    global _secrets
    with _lock:
        found = set(_secrets)
        for value in values:
            if len(value) >= _MIN_SECRET_LENGTH:
                found.add(value)
                quoted = urllib.parse.quote(value, safe="")
                if quoted != value:
                    found.add(quoted)
        # longest first, so a secret containing another is replaced whole
        _secrets = tuple(sorted(found, key=len, reverse=True))


def clear_secrets() -> None:
    global _secrets
    with _lock:
        _secrets = ()


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(item) for item in value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    return value


class RedactionFilter(logging.Filter):
    """Rewrites a record's message (with its arguments merged) and exception text, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        if isinstance(record.msg, dict):  # a structlog event dict: redact its values in place
            record.msg = {key: _redact_value(value) for key, value in record.msg.items()}
        else:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                message = str(record.msg)
            record.msg = redact(message)
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's stdlib formatter whose final text is redacted (catches values in any field)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _redact_event_dict(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value)
    return event_dict


_JSON = structlog.processors.JSONRenderer

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _redact_event_dict,
]


def configure_logging(
    level: str = "INFO",
    fmt: str = "console",
    stream: IO[str] | None = None,
    file: Path | None = None,
) -> None:
    """Route structlog and the standard library through redacting handlers on the root logger."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_kestrel", False):
            root.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    formatters: list[Any] = [renderer]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
        formatters.append(structlog.processors.JSONRenderer())
    for handler, render in zip(handlers, formatters, strict=True):
        handler.setFormatter(
            RedactingFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *([structlog.processors.format_exc_info] if isinstance(render, _JSON) else []),
                    render,
                ],
                foreign_pre_chain=_SHARED_PROCESSORS,
            )
        )
        handler.addFilter(RedactionFilter())
        handler._kestrel = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str) -> Any:
    """A structlog logger bound to `name` (use module `__name__`)."""
    return structlog.get_logger(name)
