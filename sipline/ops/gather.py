"""Worker mode: the admin endpoint asks the other workers for their state.

Why not the inter-worker datagram channel: a ``GET /calls`` answer of a busy server is
megabytes, far beyond one datagram, and the channel is the SIP hot path.  Instead the
parent binds one loopback TCP socket per worker before forking (so the ports are known to
everyone and survive a worker's restart); each worker serves its *local* state there with
the ordinary admin protocol, and the worker holding the public endpoint fetches the others
concurrently and merges (:func:`sipline.ops.admin.merge_rows`).  A worker that does not
answer within ``timeout`` (busy, restarting) is left out and logged, so ``sipline calls``
still answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

from ..runtime.dispatch import WorkerGroup

__all__ = ["make_admin_sockets", "fetch", "gather_workers"]

log = logging.getLogger("sipline.serve")

#: Largest local answer read from a worker (a guard, not a limit anyone should reach).
MAX_ANSWER = 256 << 20


def make_admin_sockets(count: int, host: str = "127.0.0.1") -> list[socket.socket]:
    """One listening loopback socket per worker, created by the parent before the fork."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.listen(64)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


async def fetch(address: tuple[str, int], path: str, timeout: float) -> Any:
    """``GET path`` on a worker's local admin socket; the decoded JSON body."""
    async def get() -> Any:
        reader, writer = await asyncio.open_connection(address[0], address[1], limit=1 << 16)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status_line = head.split(b"\r\n", 1)[0]
            status = status_line.split()
            if len(status) < 2 or status[1] != b"200":
                raise ValueError(f"answered {status_line!r}")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is None or length > MAX_ANSWER:
                raise ValueError("no usable Content-Length")
            return json.loads(await reader.readexactly(length))
        finally:
            writer.close()

    return await asyncio.wait_for(get(), timeout)


async def gather_workers(group: WorkerGroup, path: str, own: Any, *, timeout: float = 3.0) -> list[Any]:
    """Every worker's local answer for ``path``, ours (``own``) at our index; None for a
    worker that did not answer."""
    async def one(index: int) -> Any:
        address = group.admin[index].getsockname()
        try:
            return await fetch((str(address[0]), int(address[1])), path, timeout)
        except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            log.warning("admin %s: worker %d did not answer (%s); its rows are missing", path, index, exc)
            return None

    others = [index for index in range(group.count) if index != group.index]
    answers = await asyncio.gather(*(one(index) for index in others))
    result: list[Any] = [None] * group.count
    result[group.index] = own
    for index, answer in zip(others, answers):
        result[index] = answer
    return result
