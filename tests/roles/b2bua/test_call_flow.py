"""A call PBX -> sipline SBC -> carrier over loopback, checked on what each far side received."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sipline.sip.b2bua.numbers import NumberPlan
from sipline.sip.b2bua.routing import Route, RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, CustomerTrunk, TrunkSet
from sipline.sip.message import Request, Response, parse_message

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import (  # noqa: E402
    HOST,
    Carrier,
    RawPeer,
    eventually,
    final,
    in_dialog,
    is_status,
    pbx_invite,
    sbc_options,
)
import ipaddress

DE = NumberPlan(region="DE")


def customer(**kw: Any) -> CustomerTrunk:
    kw.setdefault("acl", (ipaddress.ip_network("127.0.0.0/8"),))
    return CustomerTrunk("pbx1", plan=DE, **kw)


def carrier(name: str, port: int, **kw: Any) -> CarrierTrunk:
    kw.setdefault("options_interval", 0.0)
    return CarrierTrunk(name, hosts=(CarrierHost(HOST, port),), plan=DE, **kw)


@pytest.mark.timeout(30)
async def test_call_with_topology_hiding_and_e164(peers: Any, run_sbc: Any) -> None:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"))
    far.start()
    trunks = TrunkSet(carriers=(carrier("carrier-a", far.port),), customers=(customer(),))
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")])))
    port = sbc.listening[0].port

    invite = pbx_invite(pbx, port, "030 123456".replace(" ", ""))
    pbx.send(invite, (HOST, port))
    ringing = await pbx.expect(is_status(180))
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response) and isinstance(ringing, Response)

    # What the carrier received: a fresh INVITE from the SBC, numbers in E.164, nothing of the PBX.
    got = far.invites
    assert len(got) == 1
    b_invite = next(iter(got.values()))
    assert b_invite.uri_text == f"sip:+4930123456@{HOST}:{far.port}"
    assert b_invite.from_.uri.user == "+49301111"  # type: ignore[union-attr]
    assert b_invite.call_id != "pbx-call-1"
    assert len(b_invite.vias) == 1 and b_invite.via.port == port
    assert b_invite.contacts[0].uri.port == port  # type: ignore[union-attr]
    for header in ("Record-Route", "User-Agent", "X-Internal-Queue"):
        assert header not in b_invite.headers
    assert b_invite.headers.get("Subject") == "hello"
    assert b_invite.headers.get("P-Asserted-Identity") == f"<sip:+49301111@{HOST}>"
    carrier_saw = far.peer.raw()
    for leak in (str(pbx.port).encode(), b"pbx-call-1", b"pbx-tag", b"z9hG4bKpbx1", b"FancyPBX", b"10.0.0.5"):
        assert leak not in carrier_saw, leak

    # What the PBX received: answers from the SBC, nothing of the carrier.
    assert ok.call_id == "pbx-call-1" and ok.contacts[0].uri.port == port  # type: ignore[union-attr]
    assert ok.body and b"m=audio 50000" in ok.body
    pbx_saw = pbx.raw()
    for leak in (str(far.port).encode(), b"carrier-tag", b"CarrierSBC", b"198.51.100.9", b_invite.call_id.encode()):
        assert leak not in pbx_saw, leak

    pbx.send(in_dialog(pbx, ok, "ACK", port, 1, "z9hG4bKpbxack"), (HOST, port))
    await eventually(lambda: far.peer.requests("ACK"))
    assert await sbc.channels("pbx1") == 1 and await sbc.channels("carrier-a") == 1

    pbx.send(in_dialog(pbx, ok, "BYE", port, 2, "z9hG4bKpbxbye"), (HOST, port))
    bye_ok = await pbx.expect(final)
    assert isinstance(bye_ok, Response) and bye_ok.status == 200 and bye_ok.cseq.method == "BYE"
    bye = (await eventually(lambda: far.peer.requests("BYE")))[0]
    assert bye.call_id == b_invite.call_id

    await eventually(lambda: not sbc.calls, timeout=5)
    assert await sbc.channels("pbx1") == 0 and await sbc.channels("carrier-a") == 0
    records = await sbc.storage.records.query()
    assert len(records) == 1
    rec = records[0]
    assert (rec.status, rec.hangup_by, rec.from_trunk, rec.to_trunk) == ("200", "caller", "pbx1", "carrier-a")
    assert (rec.caller, rec.callee, rec.callee_normalized) == ("0301111", "030123456", "+4930123456")
    assert rec.extra["caller_normalized"] == "+49301111"
    assert rec.answer is not None and rec.ring is not None and rec.pdd is not None and rec.end is not None


@pytest.mark.timeout(30)
async def test_carrier_hangs_up_and_reinvite_is_relayed(peers: Any, run_sbc: Any) -> None:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"))
    far.start()
    trunks = TrunkSet(carriers=(carrier("carrier-a", far.port),), customers=(customer(),))
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("", "carrier-a")])))
    port = sbc.listening[0].port
    pbx.send(pbx_invite(pbx, port, "+4930123"), (HOST, port))
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response)
    pbx.send(in_dialog(pbx, ok, "ACK", port, 1, "z9hG4bKa1"), (HOST, port))
    b_invite = next(iter(far.invites.values()))

    # re-INVITE from the PBX reaches the carrier in the carrier's dialog, and its 200 comes back.
    reinvite = in_dialog(pbx, ok, "INVITE", port, 2, "z9hG4bKre1")
    pbx.send(reinvite, (HOST, port))
    re_ok = await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "INVITE" and m.cseq.seq == 2)
    assert isinstance(re_ok, Response) and re_ok.status == 200
    reinvites = await eventually(lambda: [r for r in far.peer.requests("INVITE") if r.to.tag])
    assert reinvites[0].call_id == b_invite.call_id and reinvites[0].cseq.seq == 2

    # The carrier hangs up: the SBC BYEs the PBX in the PBX's dialog.
    bye = (
        f"BYE sip:sbc@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{far.port};branch=z9hG4bKcbye\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {b_invite.headers.get('To')};tag={far.tag}\r\n"
        f"To: {b_invite.headers.get('From')}\r\n"
        f"Call-ID: {b_invite.call_id}\r\n"
        "CSeq: 10 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    far.peer.send(bye, (HOST, port))
    got = await pbx.expect(lambda m: isinstance(m, Request) and m.method == "BYE")
    assert isinstance(got, Request) and got.call_id == "pbx-call-1"
    pbx.send(parse_message(b"SIP/2.0 200 OK\r\n" + b"".join(
        f"{n}: {v}\r\n".encode() for n, v in got.headers if n.lower() in ("via", "from", "to", "call-id", "cseq"))
        + b"Content-Length: 0\r\n\r\n"), (HOST, port))
    await eventually(lambda: not sbc.calls, timeout=5)
    rec = (await sbc.storage.records.query())[0]
    assert rec.hangup_by == "callee" and rec.status == "200"
    assert await sbc.channels("pbx1") == 0
