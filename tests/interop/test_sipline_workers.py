"""``sipline serve`` with ``workers = 2`` as a real process: TCP phones and the admin view.

* Two sipline UAs register over TCP (digest auth) and call each other through the server,
  again and again.  Each call belongs to the worker owning its Call-ID, while each phone's
  connection is held by the worker the kernel gave it to; the test keeps calling until
  calls owned by *both* workers have completed, so for each phone at least one call had
  its INVITE (or its answer) relayed between the worker holding the connection and the
  worker owning the call (sipline.runtime.siblings).
* ``sipline calls`` lists ringing calls of both workers, each with its worker.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sipline.roles.ua import UserAgent
from sipline.runtime import dispatch
from sipline.sip.timers import TimerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = pytest.mark.interop

DOMAIN = harness.DEFAULT_DOMAIN
USERS = [("alice", "alice-pw"), ("bob", "bob-pw")]
FAST = TimerConfig(t1=0.1, t2=0.4, t4=0.5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[harness.Server]:
    config = "workers = 2\n" + harness.sipline_config(md5_only=False, drain_timeout=1.0)
    srv = harness.start_sipline(tmp_path / "sipline", config=config, users=USERS)
    with harness.running(srv):
        yield srv


@pytest.fixture
async def phones(server: harness.Server) -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    proxy = f"sip:127.0.0.1:{server.port};transport=tcp"
    made = []
    for n, (name, password) in enumerate(USERS):
        ua = UserAgent(f"{name}@{DOMAIN}", password=password, proxy=proxy, transport="tcp",
                       listen_host="127.0.0.1", rtp_ports=(36000 + n * 200, 36199 + n * 200), timers=FAST)
        await ua.start()
        made.append(ua)
    try:
        for ua in made:
            await ua.register()
        yield made[0], made[1]
    finally:
        for ua in made:
            await ua.close()


def owner(call_id: str) -> int:
    found = dispatch.owner_of(f"X\r\nCall-ID: {call_id}\r\n".encode(), 2)
    assert found is not None
    return found


def registrations(data: Path) -> list[dict[str, Any]]:
    result = harness.run_sipline_cli("registrations", "--data", str(data), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


@pytest.mark.timeout(90)
async def test_tcp_phones_call_each_other_through_both_workers(
        server: harness.Server, phones: tuple[UserAgent, UserAgent], tmp_path: Path) -> None:
    alice, bob = phones
    rows = registrations(tmp_path / "sipline" / "data")
    assert sorted(row["transport"] for row in rows) == ["tcp", "tcp"], rows
    owners: list[int] = []
    for _ in range(24):
        out = await alice.call(f"sip:bob@{DOMAIN}")
        inc = await bob.next_call(timeout=5)
        await inc.answer()
        assert await out.wait_answered(timeout=5), server.peer.log_tail()
        owners.append(owner(out.call_id))
        # Half the calls are hung up by each side: BYE travels both ways over both flows.
        await (out if len(owners) % 2 else inc).hangup()
        await out.wait_ended(timeout=5)
        await inc.wait_ended(timeout=5)
        if len(owners) >= 4 and set(owners) == {0, 1}:
            break
    assert set(owners) == {0, 1}, owners
    server.peer.check_alive()


@pytest.mark.timeout(90)
async def test_calls_lists_the_calls_of_every_worker(
        server: harness.Server, phones: tuple[UserAgent, UserAgent], tmp_path: Path) -> None:
    alice, bob = phones
    ringing: dict[int, str] = {}
    calls = []
    for _ in range(24):  # calls that ring unanswered, until both workers own one
        out = await alice.call(f"sip:bob@{DOMAIN}")
        calls.append((out, await bob.next_call(timeout=5)))
        ringing.setdefault(owner(out.call_id), out.call_id)
        if len(ringing) == 2:
            break
    assert len(ringing) == 2
    data = tmp_path / "sipline" / "data"
    result = harness.run_sipline_cli("calls", "--data", str(data), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {row["call_id"]: row for row in json.loads(result.stdout)}
    for index, call_id in ringing.items():
        assert listed[call_id]["worker"] == index and listed[call_id]["state"] in ("trying", "proceeding")
    assert len(listed) == len(calls)
    table = harness.run_sipline_cli("calls", "--data", str(data))
    assert "WORKER" in table.stdout.splitlines()[0]
    for out, _ in calls:
        await out.hangup()


@pytest.mark.timeout(60)
async def test_a_vanished_udp_phone_fails_fast_in_every_worker(server: harness.Server) -> None:
    """ICMP port unreachable ends the branch at once (sipline.runtime.icmp), in whichever
    worker owns the call and sends from its own port; without it each call waits 32 s."""
    proxy = f"sip:127.0.0.1:{server.port}"
    uas = [UserAgent(f"{name}@{DOMAIN}", password=password, proxy=proxy, listen_host="127.0.0.1",
                     rtp_ports=(36400 + n * 200, 36599 + n * 200), timers=FAST)
           for n, (name, password) in enumerate(USERS)]
    alice, bob = uas
    try:
        for ua in uas:
            await ua.start()
            await ua.register()
        assert bob.endpoint is not None
        await bob.endpoint.transports.close()  # bob's phone vanishes, its binding stays
        owners = set()
        loop = asyncio.get_running_loop()
        for _ in range(12):
            started = loop.time()
            out = await alice.call(f"sip:bob@{DOMAIN}")
            assert not await out.wait_answered(timeout=3)
            assert loop.time() - started < 1.5
            owners.add(owner(out.call_id))
            if owners == {0, 1}:
                break
        assert owners == {0, 1}
    finally:
        await alice.close()
        await asyncio.wait_for(bob.close(), 8)  # its unregister fails at once: no socket left
