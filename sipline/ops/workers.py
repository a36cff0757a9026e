"""``workers = N``: N server processes sharing the listeners of one ``sipline serve``.

One Python process saturates one core (the GIL), so a multi-core box needs processes.  The
parent opens nothing but N inboxes (Unix datagram socket pairs), makes sure the nonce
secret exists (every worker must sign and check nonces with the same key), then forks.
Each worker runs the ordinary single-process server: listeners open with ``SO_REUSEPORT``
on the same ports, storage is the shared SQLite file (WAL lets the workers read while one
writes; writes take the file's write lock), and every UDP datagram is handled by the
worker owning its Call-ID -- see :mod:`sipline.runtime.dispatch` for why and how.

The parent only supervises: SIGTERM/SIGINT/SIGHUP/SIGUSR1 are passed on to every worker,
a worker that dies unexpectedly is started again (at most once per second), and the parent
exits with the worst exit code once all workers have stopped.

Per-worker differences: only worker 0 prints the banner and serves the admin endpoint; it
answers for the whole server by asking the other workers over loopback sockets bound here
before the fork (:mod:`sipline.ops.gather`).  Each worker keeps its own nonce-count replay
memory; one nonce used through two workers is only possible with two different Call-IDs.

Hook (``sipline/ops/cli.py``, in ``run()`` after ``setup_logging``, before the event loop
exists -- fork() must not happen inside a running loop)::

    if config.workers > 1 and server_factory is None:
        from sipline.ops.workers import serve_workers
        return serve_workers(config, run, reload_config=reload_config, config_path=config_path, out=out)

Until that hook is in, ``python -m sipline.ops.workers serve ...`` is the ``sipline`` CLI
with it applied (the benchmarks use it).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..runtime import dispatch
from .config import Config, load_secret
from .gather import make_admin_sockets

__all__ = ["serve_workers", "main"]

log = logging.getLogger("sipline.ops.workers")

#: A worker that dies sooner than this after its start is not started again.
_MIN_UPTIME = 5.0

#: Signals the parent passes on to every worker.
_FORWARDED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1")
                   if hasattr(signal, name))


def _worker_config(config: Config, index: int) -> Config:
    """The configuration of worker ``index``: one process, admin endpoint on worker 0 only."""
    changes: dict[str, Any] = {"workers": 1}
    if index > 0 and config.admin.enabled:
        changes["admin"] = dataclasses.replace(config.admin, enabled=False)
    return dataclasses.replace(config, **changes)


def serve_workers(config: Config, run: Callable[..., int], *, out: Any = None,
                  **run_options: Any) -> int:
    """Fork ``config.workers`` workers each calling ``run(worker_config, **run_options)``."""
    count = config.workers
    if count <= 1:
        return run(config, out=out, **run_options)
    load_secret(config)  # create it once, before the workers race to
    inboxes, outboxes = dispatch.make_inboxes(count)
    admin = make_admin_sockets(count, _loopback(config.admin.host)) if config.admin.enabled else []
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False
    worst = 0
    last_start: dict[int, float] = {}

    def start(index: int) -> None:
        last_start[index] = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for signum in _FORWARDED:
                    signal.signal(signum, signal.SIG_DFL)
                dispatch.set_current(dispatch.WorkerGroup(index, count, inboxes, outboxes, admin))
                stream = out if index == 0 else io.StringIO()
                code = run(_worker_config(config, index), out=stream, setup_log=False, **run_options)
            except BaseException:  # pragma: no cover - reported, then the worker ends
                log.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        for index in range(count):
            start(index)
        log.info("started %d workers: %s", count, ", ".join(str(pid) for pid in children))
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            if pid not in children:
                continue
            index = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            worst = max(worst, abs(code))
            if stopping or code == 0:
                continue  # asked to stop, or stopped by itself in good order
            if time.monotonic() - last_start[index] < _MIN_UPTIME:
                # Failing at start (a port taken, a bad config): restarting will not help.
                log.error("worker %d (pid %d) exited with %d right after starting; stopping",
                          index, pid, code)
                worst = max(worst, 1)
                forward(signal.SIGTERM, None)
                continue
            log.error("worker %d (pid %d) exited with %d; starting it again", index, pid, code)
            start(index)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for sock in (*inboxes, *outboxes, *admin):
            sock.close()
    return worst


def _loopback(host: str) -> str:
    """The workers' private admin sockets stay on loopback whatever the public one uses."""
    return "::1" if ":" in host else "127.0.0.1"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``sipline`` CLI with the workers hook applied to ``serve`` (see module docstring)."""
    from . import cli
    from .logging import setup_logging

    original = cli.run

    def run_with_workers(config: Config, **options: Any) -> int:
        if config.workers > 1 and options.get("server_factory") is None:
            if options.pop("setup_log", True):
                setup_logging(config.logging)
            return serve_workers(config, original, **options)
        return original(config, **options)

    cli.run = run_with_workers
    try:
        return cli.main(argv)
    finally:
        cli.run = original


if __name__ == "__main__":
    sys.exit(main())
