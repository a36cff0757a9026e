"""Worker mode admin: merging the workers' rows, and fetching them from their sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sipline.ops.admin import merge_rows
from sipline.ops.gather import fetch, gather_workers, make_admin_sockets
from sipline.runtime import dispatch


def call(call_id: str) -> dict[str, Any]:
    return {"call_id": call_id, "from": "sip:a@x", "to": "sip:b@x", "state": "proceeding", "started": 1.0,
            "duration": 2.0}


def test_calls_are_listed_with_their_worker() -> None:
    merged = merge_rows("/calls", [[call("a")], None, [call("b"), call("c")]], shared_store=True)
    assert [(row["call_id"], row["worker"]) for row in merged] == [("a", 0), ("b", 2), ("c", 2)]


def test_registrations_are_not_repeated_from_a_shared_store() -> None:
    rows = [{"aor": "sip:bob@x", "contact": "sip:bob@1.2.3.4"}]
    assert merge_rows("/registrations", [rows, rows], shared_store=True) == rows
    mine, theirs = [{"aor": "sip:a@x"}], [{"aor": "sip:b@x"}]
    assert merge_rows("/registrations", [mine, theirs], shared_store=False) == mine + theirs


def trunk(**fields: Any) -> dict[str, Any]:
    return {"name": "carrier-a", "kind": "carrier", "channels": 2, "max_channels": 10, "cps": 0.5, "max_cps": 5,
            "attempts": 3, "finals": {"200": 2, "486": 1}, **fields}


def test_trunk_counters_add_up() -> None:
    one = trunk(hosts=[{"host": "udp:192.0.2.1:5060", "state": "down"}],
                registration={"registered": False, "expires_in": 0, "last_status": 403})
    two = trunk(attempts=4, cps=0.25, finals={"503": 1, "200": 1},
                hosts=[{"host": "udp:192.0.2.1:5060", "state": "up"}],
                registration={"registered": True, "expires_in": 300, "last_status": 200})
    [merged] = merge_rows("/trunks", [[one], [two], None], shared_store=True)
    assert merged["attempts"] == 7 and merged["cps"] == 0.75
    assert merged["channels"] == 2  # a shared counter: every worker reports the total
    assert merged["finals"] == {"200": 3, "486": 1, "503": 1}
    assert merged["hosts"] == [{"host": "udp:192.0.2.1:5060", "state": "up"}]
    assert merged["registration"]["registered"] is True
    [separate] = merge_rows("/trunks", [[trunk()], [trunk()]], shared_store=False)
    assert separate["channels"] == 4 and separate["max_channels"] == 10


def test_junk_from_a_worker_is_skipped() -> None:
    assert merge_rows("/calls", [[call("a"), "junk"], {"error": "x"}], shared_store=True) == [{**call("a"), "worker": 0}]
    assert merge_rows("/trunks", [[{"kind": "carrier"}], [trunk()]], shared_store=True)[0]["name"] == "carrier-a"


async def serve(sock: Any, body: bytes, status: str = "200 OK") -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, sock=sock)


async def test_gather_asks_every_other_worker_and_survives_a_silent_one() -> None:
    inboxes, outboxes = dispatch.make_inboxes(3)
    admin = make_admin_sockets(3)
    group = dispatch.WorkerGroup(0, 3, inboxes, outboxes, admin)
    one = await serve(admin[1], json.dumps([call("b")]).encode())
    # Worker 2 accepts (the socket listens) but never answers: left out after the timeout.
    try:
        answers = await gather_workers(group, "/calls", [call("a")], timeout=0.3)
        assert answers == [[call("a")], [call("b")], None]
        with pytest.raises(ValueError):
            bad = await serve(admin[2], b"{}", "404 Not Found")
            try:
                address = admin[2].getsockname()
                await fetch((address[0], address[1]), "/calls", 1.0)
            finally:
                bad.close()
    finally:
        one.close()
        for sock in (*inboxes, *outboxes, *admin):
            sock.close()
