"""The relay's media timeout in a call: RTP flowing keeps an answered call up; when it stops
both ways the SBC hangs up both legs and the call record says "media timeout"."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sipline.sip.b2bua.numbers import NumberPlan
from sipline.sip.b2bua.routing import Route, RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, CustomerTrunk, TrunkSet
from sipline.sip.message import Request, Response
from sipline.sip.message.builders import response_to
from sipline.sip.sdp import parse_sdp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import HOST, Carrier, RawPeer, eventually, in_dialog, is_status, pbx_invite, sbc_options  # noqa: E402

DE = NumberPlan(region="DE")
TIMEOUT = 0.4


@pytest.mark.timeout(30)
async def test_silent_call_is_hung_up_on_both_legs(peers: Any, run_sbc: Any) -> None:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"))
    far.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, far.port),), plan=DE, options_interval=0),),
        customers=(CustomerTrunk("pbx1", acl=(ipaddress.ip_network("127.0.0.0/8"),), plan=DE),),
    )
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")]), media="relay",
                                    rtp_ports=(21600, 21699), media_timeout=TIMEOUT))
    port = sbc.listening[0].port
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response)
    pbx.send(in_dialog(pbx, ok, "ACK", port, 1, "z9hG4bKack"), (HOST, port))

    # RTP from the PBX (the SDP's 40000 is where the PBX listens; any source port will do)
    # for three timeouts: the call stays up.
    relay_port = parse_sdp(ok.body).media[0].port
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind((HOST, 0))
    try:
        end = time.monotonic() + 3 * TIMEOUT
        while time.monotonic() < end:
            rtp.sendto(b"\x80\x00" + b"\x00" * 170, (HOST, relay_port))
            await asyncio.sleep(0.02)
        assert not pbx.requests("BYE") and not far.peer.requests("BYE") and len(sbc.calls) == 1
    finally:
        rtp.close()

    # Then silence: both legs get a BYE.
    bye = await pbx.expect(lambda m: isinstance(m, Request) and m.method == "BYE", timeout=5 * TIMEOUT + 2)
    assert isinstance(bye, Request) and "media timeout" in (bye.headers.get("Reason") or "")
    pbx.send(response_to(bye, 200), (HOST, port))
    await eventually(lambda: far.peer.requests("BYE"))
    await eventually(lambda: not sbc.calls)
    rec = (await sbc.storage.records.query())[0]
    assert (rec.status, rec.reason, rec.hangup_by) == ("200", "media timeout", "sbc")
    assert sbc.relay.in_use == 0 and await sbc.channels("pbx1") == 0
