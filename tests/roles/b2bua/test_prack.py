"""Reliable provisionals (RFC 3262) across the SBC, hop by hop: the carrier's reliable 183
gets the SBC's PRACK on the carrier leg; the PBX gets its own 183 -- reliable with RSeq when
it supports 100rel (and its 200 waits for the PRACK), plain otherwise."""

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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import HOST, Carrier, RawPeer, Script, eventually, is_status, pbx_invite, sbc_options  # noqa: E402

DE = NumberPlan(region="DE")


async def setup(peers: Any, run_sbc: Any, script: Script) -> tuple[RawPeer, Carrier, Any, int]:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"), script=script)
    far.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, far.port),), plan=DE, options_interval=0),),
        customers=(CustomerTrunk("pbx1", acl=(ipaddress.ip_network("127.0.0.0/8"),), plan=DE),),
    )
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")])))
    return pbx, far, sbc, sbc.listening[0].port


def prack(pbx: RawPeer, provisional: Response, cseq: int) -> bytes:
    contact = provisional.contacts[0].uri
    return (
        f"PRACK {contact} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{pbx.port};branch=z9hG4bKprack{cseq};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {provisional.headers.get('From')}\r\n"
        f"To: {provisional.headers.get('To')}\r\n"
        f"Call-ID: {provisional.call_id}\r\n"
        f"CSeq: {cseq} PRACK\r\n"
        f"RAck: {provisional.headers.get('RSeq')} 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.timeout(30)
async def test_carrier_reliable_183_is_pracked_and_pbx_with_100rel_pracks_ours(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(statuses=(183, 200), reliable=True))
    pbx.send(pbx_invite(pbx, port, "030123", extra="Supported: 100rel\r\n"), (HOST, port))

    early = await pbx.expect(is_status(183))
    assert isinstance(early, Response)
    # Our own reliable 183 towards the PBX: our RSeq, not the carrier's (7).
    assert "100rel" in (early.headers.get("Require") or "") and early.headers.get("RSeq")
    assert early.body and b"m=audio 50000" in early.body

    # The carrier got a PRACK in its early dialog, naming its 183.
    b_invite = next(iter(far.invites.values()))
    assert "100rel" in ",".join(b_invite.headers.get_all("Supported"))
    got = (await eventually(lambda: far.peer.requests("PRACK")))[0]
    assert got.call_id == b_invite.call_id and got.headers.get("RAck") == f"7 {b_invite.cseq.seq} INVITE"
    assert got.to.tag == far.tag and got.cseq.seq == b_invite.cseq.seq + 1

    # The carrier answered after our PRACK, but the PBX's 200 waits for the PBX's PRACK
    # (its 183 carried SDP; RFC 3262 §3).  Meanwhile the 183 is retransmitted.
    await eventually(lambda: sbc.calls and next(iter(sbc.calls.values())).answer is not None)
    again = await pbx.expect(lambda m: isinstance(m, Response) and m.status in (183, 200))
    assert isinstance(again, Response) and again.status == 183
    assert again.headers.get("RSeq") == early.headers.get("RSeq")

    pbx.send(prack(pbx, early, 2), (HOST, port))
    prack_ok = await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "PRACK")
    assert isinstance(prack_ok, Response) and prack_ok.status == 200
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response) and ok.cseq.method == "INVITE"
    # Nothing hop-by-hop crossed from the carrier leg.
    assert ok.headers.get("RSeq") is None


@pytest.mark.timeout(30)
async def test_pbx_without_100rel_gets_plain_183(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(statuses=(183, 200), reliable=True))
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    early = await pbx.expect(is_status(183))
    assert isinstance(early, Response)
    assert early.headers.get("RSeq") is None and early.headers.get("Require") is None
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response) and ok.cseq.method == "INVITE"
    assert len(far.peer.requests("PRACK")) == 1


@pytest.mark.timeout(30)
async def test_pbx_requiring_100rel_gets_reliable_180_and_bad_prack_is_refused(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(statuses=(180,)))
    pbx.send(pbx_invite(pbx, port, "030123", extra="Require: 100rel\r\n"), (HOST, port))
    ringing = await pbx.expect(is_status(180))
    assert isinstance(ringing, Response) and ringing.headers.get("RSeq")
    assert not far.peer.requests("PRACK")  # the carrier's 180 was not reliable

    wrong = prack(pbx, ringing, 2).replace(f"RAck: {ringing.headers.get('RSeq')} ".encode(), b"RAck: 1 ")
    pbx.send(wrong, (HOST, port))
    refused = await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "PRACK")
    assert isinstance(refused, Response) and refused.status == 481
    garbled = prack(pbx, ringing, 3).replace(b"RAck:", b"RAck: x")
    pbx.send(garbled, (HOST, port))
    bad = await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "PRACK")
    assert isinstance(bad, Response) and bad.status == 400 and "RAck" in bad.reason
    pbx.send(prack(pbx, ringing, 4), (HOST, port))
    good = await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "PRACK")
    assert isinstance(good, Response) and good.status == 200
    assert not any(isinstance(m, Request) for _, m in pbx.received)
