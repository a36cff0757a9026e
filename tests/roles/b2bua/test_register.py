"""REGISTER to a carrier with ``register = true``: digest challenge, refresh, state."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sipline.roles.b2bua.register import granted_expires, refresh_delay
from sipline.sip.auth import DigestServer, NonceFactory, parse_credentials
from sipline.sip.b2bua.routing import RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, DigestAccount, TrunkSet
from sipline.sip.message import Request, parse_message
from sipline.sip.message.builders import response_to
from sipline.storage.models import compute_ha1

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import HOST, sbc_options  # noqa: E402


def test_refresh_delay() -> None:
    assert refresh_delay(3600) == 2880.0
    assert refresh_delay(60) == 30.0
    assert refresh_delay(1) == 1.0


def test_granted_expires_prefers_our_contact() -> None:
    ok = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:a@h>;tag=2\r\n"
        b"Call-ID: x\r\nCSeq: 1 REGISTER\r\nContact: <sip:other@h>;expires=10, <sip:acct@h>;expires=120\r\n"
        b"Expires: 300\r\nContent-Length: 0\r\n\r\n")
    assert granted_expires(ok, "acct", 3600) == 120  # type: ignore[arg-type]
    assert granted_expires(ok, "nobody", 3600) == 300  # type: ignore[arg-type]


@pytest.mark.timeout(20)
async def test_registers_with_digest_and_refreshes(peers: Any, run_sbc: Any) -> None:
    carrier = peers("carrier")
    carrier.start()
    digest = DigestServer("carrier.example", NonceFactory(b"k" * 32, 60), algorithms=("MD5",))
    trunk = CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, carrier.port),), options_interval=0,
                         auth=DigestAccount("acct", "secret", register=True, register_expires=2))
    sbc = await run_sbc(sbc_options(TrunkSet(carriers=(trunk,)), RouteTable()))
    ok_count = 0
    call_ids = set()
    deadline = time.monotonic() + 10
    while ok_count < 2 and time.monotonic() < deadline:
        msg, addr = await carrier.queue.get()
        if not isinstance(msg, Request) or msg.method != "REGISTER":
            continue
        call_ids.add(msg.call_id)
        assert msg.headers.get("Expires") == "2" and "acct@" in (msg.headers.get("Contact") or "")
        values = msg.headers.get_all("Authorization")
        verified = False
        for value in values:
            creds = parse_credentials(value, header="Authorization")
            result = digest.verify(creds, "REGISTER", msg.uri_text, time.time(),
                                   lambda u, r, a: compute_ha1(u, r, "secret", a) if u == "acct" else None)
            verified = verified or result.ok
        if not verified:
            challenge = [("WWW-Authenticate", str(c)) for c in digest.challenge(time.time())]
            carrier.send(response_to(msg, 401, to_tag="reg", headers=challenge), addr)
            continue
        carrier.send(response_to(msg, 200, to_tag="reg", headers=[("Contact", f"{msg.headers.get('Contact')};expires=2")]), addr)
        ok_count += 1
        if ok_count == 1:
            await _eventually_registered(sbc)
    assert ok_count == 2, "no refresh"
    assert len(call_ids) == 1  # one Call-ID for the life of the binding
    await _eventually_registered(sbc)
    rows = {row["name"]: row for row in await sbc.trunk_rows()}
    assert rows["carrier-a"]["registration"]["last_status"] == 200


async def _eventually_registered(sbc: Any) -> None:
    import asyncio

    for _ in range(50):
        state = sbc.registrations.state("carrier-a")
        if state and state["registered"] and state["last_status"] == 200:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not registered")
