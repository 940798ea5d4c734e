"""Logs through structlog: JSON lines in production, readable lines in the demo.

Every line of a request carries the request's context (request id, then school, actor and
terminal once they are known), bound in contextvars by the request middleware and by whoever
resolves the caller. Lines from the standard library's loggers (the service modules, uvicorn)
go through the same processors, so they carry the context too. Values under secret-looking keys
are replaced before any renderer sees them."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, merge_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

# keys whose values never reach a log line, whoever passes them
SECRET_KEYS = frozenset(
    {
        "password",
        "new_password",
        "old_password",
        "pin",
        "new_pin",
        "old_pin",
        "pin_token",
        "key",
        "key_hex",
        "terminal_key",
        "secret",
        "token",
        "authorization",
        "cookie",
        "csrf",
        "credential",
        "pickup_code",
        "card_uid",
        "uid",
        "master_key",
    }
)


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace the value of every key named like a secret (PINs, passwords, keys, pickup codes,
    card UIDs), at the top level and one level down."""
    for key, value in event_dict.items():
        if key.lower() in SECRET_KEYS:
            event_dict[key] = REDACTED
        elif isinstance(value, MutableMapping):
            for inner in value:
                if isinstance(inner, str) and inner.lower() in SECRET_KEYS:
                    value[inner] = REDACTED
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        redact_secrets,
    ]


def setup_logging(
    level: str = "INFO", *, as_json: bool = True, stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library's loggers to one handler on ``stream``
    (stderr)."""
    shared = _shared_processors()
    renderer: Processor
    if as_json:
        final: list[Processor] = [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("msg"),
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        # plain tracebacks: a rich one prints local variables, which may hold secrets
        final = [
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    renderer = final[-1]
    formatter = _LineFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final[:-1],
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    # A line is the event dict the processors render: the standard library's record of the
    # calling frame, thread and process is never shown, and gathering it (a walk up the stack,
    # a getpid system call) was a fifth of a request line's CPU (the logging HOWTO's
    # "Optimization" switches; decision 0400)
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared, *final, _as_rendered_record],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# structlog's own lines reach the handler rendered, marked by this attribute of their record
_RENDERED = "cc_rendered"


def _as_rendered_record(
    _logger: WrappedLogger, _method: str, line: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """structlog's line (the renderer's text; processors are typed as taking the event dict)
    as the standard library record's message."""
    return (line,), {"extra": {_RENDERED: True}}


class _LineFormatter(structlog.stdlib.ProcessorFormatter):
    """A structlog line arrives rendered (the processors ran once, in structlog's chain); a
    standard library record is rendered through the same processors here."""

    def format(self, record: logging.LogRecord) -> str:
        if record.__dict__.get(_RENDERED):
            return str(record.msg)
        return super().format(record)


def route_to_standard_logging() -> None:
    """Before ``setup_logging`` (tests, a library user): structured lines go to the standard
    library's loggers as plain text, to whatever handlers are there."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            merge_contextvars,
            redact_secrets,
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


route_to_standard_logging()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger: ``log.info("event", key=value, ...)``."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def start_request(request_id: str) -> None:
    """Forget the previous request's context and bind this request's id."""
    clear_contextvars()
    bind_contextvars(request_id=request_id)


def bind_actor(name: str, school_id: int | None, user_id: int | None) -> None:
    """Who is calling: every later line of the request names them."""
    bind_contextvars(actor=name, user_id=user_id, school=school_id)


def bind_terminal(terminal_id: int, school_id: int) -> None:
    """A signed device is calling: every later line of the request names it."""
    bind_contextvars(terminal=terminal_id, school=school_id)
