"""Calls from carriers to DIDs, and customer trunks identified by digest user."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import pytest

from sipline.sip.auth import DigestClient, parse_challenges
from sipline.sip.b2bua.numbers import NumberFormat, NumberPlan
from sipline.sip.b2bua.routing import Route, RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, CustomerTrunk, DigestAccount, Did, TrunkSet
from sipline.sip.message import Request, Response, parse_message

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import (  # noqa: E402
    HOST,
    Carrier,
    RawPeer,
    Script,
    final,
    pbx_invite,
    sbc_options,
)

DE = NumberPlan(region="DE")


@pytest.mark.timeout(30)
async def test_did_call_from_carrier_to_customer(peers: Any, run_sbc: Any) -> None:
    carrier_side: RawPeer = peers("carrier")
    carrier_side.start()
    pbx = Carrier(peers("pbx"), script=Script(statuses=(180, 200)), tag="pbx-tag")
    pbx.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, carrier_side.port),), plan=DE,
                               options_interval=0),),
        customers=(CustomerTrunk("pbx1", acl=(ipaddress.ip_network("10.9.9.0/24"),), plan=DE,
                                 format=NumberFormat("national"), contact=f"sip:{HOST}:{pbx.port}"),),
        dids=(Did("+4930555*", "trunk", "pbx1"),),
    )
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")])))
    port = sbc.listening[0].port
    # The carrier sends E.164 without '+' (national plan DE reads 49... as needing +).
    invite = pbx_invite(carrier_side, port, "+49305551234", caller="+4989777")
    carrier_side.send(invite, (HOST, port))
    got = await carrier_side.expect(final)
    assert isinstance(got, Response) and got.status == 200
    delivered = next(iter(pbx.invites.values()))
    assert delivered.uri_text == f"sip:0305551234@{HOST}:{pbx.port}"
    assert delivered.from_.uri.user == "08977" + "7"  # type: ignore[union-attr]
    assert str(carrier_side.port).encode() not in pbx.peer.raw()
    rec_call = next(iter(sbc.calls.values()))
    assert rec_call.info.from_trunk == "carrier-a" and rec_call.to_trunk == "pbx1"
    assert await sbc.channels("pbx1") == 1 and await sbc.channels("carrier-a") == 1


@pytest.mark.timeout(30)
async def test_unknown_did_is_404_and_unknown_source_403(peers: Any, run_sbc: Any) -> None:
    carrier_side: RawPeer = peers("carrier")
    carrier_side.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, carrier_side.port),), plan=DE,
                               options_interval=0),),
        customers=(CustomerTrunk("pbx1", acl=(ipaddress.ip_network("10.9.9.0/24"),)),),
    )
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")])))
    port = sbc.listening[0].port
    carrier_side.send(pbx_invite(carrier_side, port, "+4940111"), (HOST, port))
    got = await carrier_side.expect(final)
    assert isinstance(got, Response) and got.status == 404

    # Nobody's source: neither a carrier host (192.0.2.1 is never contacted) nor a customer ACL.
    closed = TrunkSet(
        carriers=(CarrierTrunk("far", hosts=(CarrierHost("192.0.2.1"),), options_interval=0),),
        customers=(CustomerTrunk("pbx1", acl=(ipaddress.ip_network("10.9.9.0/24"),)),),
    )
    sbc2 = await run_sbc(sbc_options(closed, RouteTable([Route("+49", "far")])))
    stranger: RawPeer = peers("stranger")
    stranger.start()
    stranger.send(pbx_invite(stranger, sbc2.listening[0].port, "+4940111"), (HOST, sbc2.listening[0].port))
    got = await stranger.expect(final)
    assert isinstance(got, Response) and got.status == 403


@pytest.mark.timeout(30)
async def test_customer_identified_by_digest(peers: Any, run_sbc: Any) -> None:
    dialer: RawPeer = peers("dialer")
    dialer.start()
    far = Carrier(peers("carrier"), script=Script(statuses=(180, 200)))
    far.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, far.port),), plan=DE, options_interval=0),),
        customers=(CustomerTrunk("dialer", auth=DigestAccount("dialer", "pw"), plan=DE),),
    )
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")]), realm="sbc.test"))
    port = sbc.listening[0].port
    first = pbx_invite(dialer, port, "030123")
    dialer.send(first, (HOST, port))
    challenge = await dialer.expect(final)
    assert isinstance(challenge, Response) and challenge.status == 407
    challenges = [c for v in challenge.headers.get_all("Proxy-Authenticate") for c in parse_challenges(v, header="Proxy-Authenticate")]
    assert challenges and challenges[0].realm == "sbc.test"
    client = DigestClient("dialer", password="pw", make_cnonce=lambda: "cn1")
    request = parse_message(first)
    assert isinstance(request, Request)
    creds = client.authorize(challenges, "INVITE", request.uri_text)
    assert creds is not None
    retry = first.replace(b"branch=z9hG4bKpbx1", b"branch=z9hG4bKpbx2").replace(b"CSeq: 1 INVITE", b"CSeq: 2 INVITE")
    retry = retry.replace(b"Content-Type:", f"Proxy-Authorization: {creds}\r\nContent-Type:".encode())
    dialer.send(retry, (HOST, port))
    got = await dialer.expect(lambda m: isinstance(m, Response) and m.status >= 200 and m.cseq.seq == 2)
    assert isinstance(got, Response) and got.status == 200
    assert len(far.invites) == 1
    assert "Proxy-Authorization" not in next(iter(far.invites.values())).headers
