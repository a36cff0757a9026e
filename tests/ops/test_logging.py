"""Log format, the TRACE level, per-call prefixes, colour and file reopening."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipline.ops.config import LoggingConfig
from sipline.ops.logging import (
    TRACE,
    CallLogAdapter,
    TextFormatter,
    call_context,
    current_call_id,
    reopen_log_files,
    setup_logging,
    use_color,
)

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (?P<level>\S+) +(?P<rest>.*)$")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _setup(stream: io.StringIO, **kwargs: object) -> logging.Logger:
    setup_logging(LoggingConfig(**kwargs), stream=stream)  # type: ignore[arg-type]
    return logging.getLogger("sipline.test")


def test_trace_level_registered() -> None:
    assert TRACE == 5 < logging.DEBUG
    assert logging.getLevelName(TRACE) == "TRACE"
    assert logging.getLevelName("TRACE") == TRACE


def test_text_format() -> None:
    out = io.StringIO()
    log = _setup(out, level="info", color="never")
    log.info("hello %s", "world")
    log.debug("hidden")
    line = out.getvalue().rstrip("\n")
    match = LINE.match(line)
    assert match, line
    assert match["level"] == "INFO" and match["rest"] == "hello world"
    assert line[23:30] == " INFO  "  # level padded to five characters


def test_trace_only_at_trace_level() -> None:
    out = io.StringIO()
    log = _setup(out, level="debug", color="never")
    log.log(TRACE, "wire bytes")
    assert out.getvalue() == ""
    log = _setup(out, level="trace", color="never")
    log.log(TRACE, "INVITE sip:bob@example.com SIP/2.0\nVia: x")
    assert " TRACE INVITE sip:bob@example.com SIP/2.0\nVia: x" in out.getvalue()


def test_call_context_prefix() -> None:
    out = io.StringIO()
    log = _setup(out, color="never")
    with call_context("a84b4c76e66710"):
        assert current_call_id() == "a84b4c76e66710"
        log.info("ringing")
    log.info("idle")
    first, second = out.getvalue().splitlines()
    assert first.endswith("INFO  [a84b4c76e66710] ringing")
    assert second.endswith("INFO  idle")
    assert current_call_id() is None


async def test_call_context_follows_tasks() -> None:
    out = io.StringIO()
    log = _setup(out, color="never")

    async def call(call_id: str) -> None:
        with call_context(call_id):
            await asyncio.sleep(0)
            log.info("step")

    await asyncio.gather(call("one"), call("two"))
    assert sorted(line.split("INFO  ")[1] for line in out.getvalue().splitlines()) == ["[one] step", "[two] step"]


def test_adapter_prefix_and_extra() -> None:
    out = io.StringIO()
    _setup(out, color="never", format="json")
    adapter = CallLogAdapter(logging.getLogger("sipline.call"), "c-1")
    adapter.warning("timeout on %s", "branch-2", extra={"branch": "z9hG4bK1"})
    entry = json.loads(out.getvalue())
    assert entry["call_id"] == "c-1" and entry["branch"] == "z9hG4bK1"
    assert entry["level"] == "WARNING" and entry["logger"] == "sipline.call"
    assert entry["message"] == "timeout on branch-2"


def test_json_exception() -> None:
    out = io.StringIO()
    log = _setup(out, format="json")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    entry = json.loads(out.getvalue())
    assert "ValueError: boom" in entry["exc"] and "call_id" not in entry


def test_text_exception_follows_line() -> None:
    out = io.StringIO()
    log = _setup(out, color="never")
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        log.error("oops", exc_info=True)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("ERROR oops") and lines[-1] == "RuntimeError: kaput"


def test_color_only_on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    plain, tty = io.StringIO(), _Tty()
    assert not use_color("auto", plain)
    assert use_color("auto", tty)
    assert use_color("always", plain) and not use_color("never", tty)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", tty)
    monkeypatch.delenv("NO_COLOR")
    log = _setup(tty, color="auto")
    log.warning("careful")
    assert "\x1b[33mWARNING\x1b[0m careful" in tty.getvalue()


def test_formatter_colour_for_custom_levels() -> None:
    record = logging.LogRecord("x", 25, __file__, 1, "between", (), None)
    record.levelname = "NOTICE"
    assert "\x1b[32mNOTICE\x1b[0m" in TextFormatter(color=True).format(record)


def test_setup_replaces_only_its_own_handler() -> None:
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    first = setup_logging(LoggingConfig(), stream=io.StringIO())
    second = setup_logging(LoggingConfig(level="debug"), stream=io.StringIO())
    handlers = logging.getLogger().handlers
    assert second in handlers and first not in handlers and foreign in handlers
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger().removeHandler(foreign)


def test_file_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "sipline.log"
    setup_logging(LoggingConfig(file=path, color="auto"))
    log = logging.getLogger("sipline.test")
    log.info("before rotation")
    rotated = path.with_suffix(".log.1")
    path.rename(rotated)
    log.info("still old file")
    assert reopen_log_files() == 1
    log.info("after rotation")
    assert "before rotation" in rotated.read_text() and "still old file" in rotated.read_text()
    assert "after rotation" in path.read_text() and "\x1b[" not in path.read_text()


def test_reopen_without_file() -> None:
    setup_logging(LoggingConfig(), stream=io.StringIO())
    assert reopen_log_files() == 0
