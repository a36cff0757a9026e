"""Stopping the SBC with calls up: answered calls get BYE on both legs, and every call's
record is written before the stop returns (a restart loses no call record)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import pytest

from sipline.sip.b2bua.numbers import NumberPlan
from sipline.sip.b2bua.routing import Route, RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, CustomerTrunk, TrunkSet
from sipline.sip.message import Request, Response
from sipline.storage import open_storage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import HOST, Carrier, RawPeer, eventually, in_dialog, is_status, pbx_invite, sbc_options  # noqa: E402

DE = NumberPlan(region="DE")


@pytest.mark.timeout(30)
async def test_stop_hangs_up_answered_calls_and_writes_their_records(
        peers: Any, run_sbc: Any, tmp_path: Path) -> None:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"))
    far.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, far.port),), plan=DE, options_interval=0),),
        customers=(CustomerTrunk("pbx1", acl=(ipaddress.ip_network("127.0.0.0/8"),), plan=DE),),
    )
    url = f"sqlite:///{tmp_path / 'sipline.db'}"
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")]), storage_url=url))
    port = sbc.listening[0].port
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response)
    pbx.send(in_dialog(pbx, ok, "ACK", port, 1, "z9hG4bKack"), (HOST, port))
    await eventually(lambda: far.peer.requests("ACK"))

    await sbc.stop()

    bye = await pbx.expect(lambda m: isinstance(m, Request) and m.method == "BYE")
    assert isinstance(bye, Request) and "server shutdown" in (bye.headers.get("Reason") or "")
    await eventually(lambda: far.peer.requests("BYE"))
    # The record is on disk: a fresh store (as after a restart) reads it back.
    storage = await open_storage(url)
    try:
        records = await storage.records.query()
    finally:
        await storage.close()
    assert [(r.status, r.reason, r.hangup_by) for r in records] == [("200", "server shutdown", "sbc")]
