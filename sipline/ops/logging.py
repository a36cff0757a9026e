"""Log output for operators: one readable line per event, tagged with the call it concerns.

A busy proxy interleaves hundreds of calls, so every line logged while handling a call
carries its Call-ID in brackets, set once per task with :func:`call_context` (a context
variable, so it follows the asyncio task and never leaks into another) or per logger with
:class:`CallLogAdapter`.  ``grep '\\[a84b4c76e66710\\]'`` then tells the story of one call.

TRACE (5) sits below DEBUG for whole messages on the wire: far too much for DEBUG, exactly
what is needed to debug interop.  Colour goes to terminals only, JSON lines to log
shippers, and :func:`reopen_log_files` lets logrotate move the file away (SIGUSR1).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

from sipline.ops.config import LoggingConfig

__all__ = [
    "TRACE",
    "LEVELS",
    "setup_logging",
    "reopen_log_files",
    "call_context",
    "current_call_id",
    "CallLogAdapter",
    "TextFormatter",
    "JsonFormatter",
    "use_color",
]

#: Below DEBUG: every SIP message as sent and received.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

#: Config level names -> logging levels.
LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("sipline_call_id", default=None)

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "call_id",
    "taskName",
}


@contextmanager
def call_context(call_id: str | None) -> Iterator[None]:
    """Tag every line logged inside the block (and tasks it starts) with ``call_id``."""
    token = _call_id.set(call_id)
    try:
        yield
    finally:
        _call_id.reset(token)


def current_call_id() -> str | None:
    """The Call-ID set by the innermost :func:`call_context`, if any."""
    return _call_id.get()


class CallLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to one call: ``CallLogAdapter(log, call_id).info("ringing")``.

    Unlike the stock adapter it keeps any ``extra`` the caller passes.
    """

    def __init__(self, logger: logging.Logger, call_id: str) -> None:
        super().__init__(logger, {"call_id": call_id})
        self.call_id = call_id

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(kwargs.get("extra") or {})
        extra.setdefault("call_id", self.call_id)
        kwargs["extra"] = extra
        return msg, kwargs


class _CallIdFilter(logging.Filter):
    """Fills ``record.call_id`` from the context unless an adapter already set it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_id", None) is None:
            record.call_id = _call_id.get()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"


_COLORS = {
    TRACE: "\x1b[2m",  # dim
    logging.DEBUG: "\x1b[36m",  # cyan
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
_RESET = "\x1b[0m"


class TextFormatter(logging.Formatter):
    """``2026-11-22 10:00:00.123 INFO  [call-id] message``, level coloured on request."""

    def __init__(self, *, color: bool = False) -> None:
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.ljust(5)
        if self.color:
            # Custom levels between the standard ones take the colour of the one below.
            known = [k for k in _COLORS if k <= record.levelno]
            if known:
                level = f"{_COLORS[max(known)]}{level}{_RESET}"
        call_id = getattr(record, "call_id", None)
        prefix = f"[{call_id}] " if call_id else ""
        text = f"{_timestamp(record)} {level} {prefix}{record.getMessage()}"
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}"
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, call_id, message, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            entry["call_id"] = call_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _ReopenableFileHandler(logging.FileHandler):
    """A file handler whose file can be closed and opened again by name (log rotation)."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def use_color(setting: str, stream: TextIO | None) -> bool:
    """``always``/``never`` as said; ``auto`` only on a terminal and without NO_COLOR."""
    if setting == "always":
        return True
    if setting == "never" or stream is None:
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


_OURS = "_sipline_handler"


def setup_logging(config: LoggingConfig, *, stream: TextIO | None = None) -> logging.Handler:
    """Install one handler on the root logger as ``config`` says and return it.

    Calling it again (SIGHUP reload) replaces the handler installed before, leaving
    handlers that others added (pytest's caplog) alone.  ``stream`` defaults to stderr
    and is ignored when ``config.file`` is set.
    """
    handler: logging.Handler
    if config.file is not None:
        config.file.parent.mkdir(parents=True, exist_ok=True)
        handler = _ReopenableFileHandler(config.file, encoding="utf-8")
        color = config.color == "always"
    else:
        target = stream if stream is not None else sys.stderr
        handler = logging.StreamHandler(target)
        color = use_color(config.color, target)
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter(color=color))
    handler.addFilter(_CallIdFilter())
    setattr(handler, _OURS, True)

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _OURS, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(LEVELS[config.level])
    logging.captureWarnings(True)
    return handler


def reopen_log_files() -> int:
    """Reopen the log file after rotation (what the server does on SIGUSR1).

    Returns the number of files reopened; 0 when logging goes to a stream.
    """
    count = 0
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _ReopenableFileHandler):
            handler.reopen()
            count += 1
    return count
