"""REFER across the SBC by trunk policy: terminate (the SBC performs the transfer), pass
(relayed with Refer-To/Referred-By rewritten) and reject."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import pytest

from sipline.sip.b2bua.numbers import NumberPlan
from sipline.sip.b2bua.routing import Route, RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, CustomerTrunk, TrunkSet
from sipline.sip.dialog import parse_sipfrag
from sipline.sip.message import Message, Request, Response
from sipline.sip.message.builders import response_to
from sipline.sip.sdp import parse_sdp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import HOST, Carrier, RawPeer, eventually, in_dialog, is_status, pbx_invite, sbc_options  # noqa: E402

DE = NumberPlan(region="DE")


async def setup(peers: Any, run_sbc: Any, *, refer: str = "terminate", **kw: Any) -> tuple[RawPeer, Carrier, Carrier, Any, int]:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far, far2 = Carrier(peers("carrier")), Carrier(peers("carrier2"), tag="other-tag")
    far.start()
    far2.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, far.port),), plan=DE, options_interval=0),
                  CarrierTrunk("carrier-b", hosts=(CarrierHost(HOST, far2.port),), plan=DE, options_interval=0)),
        customers=(CustomerTrunk("pbx1", acl=(ipaddress.ip_network("127.0.0.0/8"),), plan=DE, refer=refer,
                                 allowed_destinations=("+4930", "+4940")),),  # type: ignore[arg-type]
    )
    routes = RouteTable([Route("+4930", "carrier-a"), Route("+4940", "carrier-b"), Route("+4950", "carrier-b")])
    sbc = await run_sbc(sbc_options(trunks, routes, **kw))
    return pbx, far, far2, sbc, sbc.listening[0].port


def refer(pbx: RawPeer, ok: Response, port: int, cseq: int, target: str) -> bytes:
    head = in_dialog(pbx, ok, "REFER", port, cseq, f"z9hG4bKrefer{cseq}").decode()
    extra = (f"Refer-To: <{target}>\r\nReferred-By: <sip:201@10.0.0.5>\r\n"
             f"Contact: <sip:alice@{HOST}:{pbx.port}>\r\n")
    return head.replace("Content-Length: 0\r\n", extra + "Content-Length: 0\r\n").encode()


def ok_to(peer: RawPeer, request: Message, port: int) -> None:
    assert isinstance(request, Request)
    peer.send(response_to(request, 200), (HOST, port))


def request_of(method: str) -> Any:
    return lambda m: isinstance(m, Request) and m.method == method


async def answered_call(pbx: RawPeer, port: int) -> Response:
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response)
    pbx.send(in_dialog(pbx, ok, "ACK", port, 1, "z9hG4bKack1"), (HOST, port))
    return ok


@pytest.mark.timeout(30)
async def test_terminate_places_the_new_call_and_bridges_the_carrier(peers: Any, run_sbc: Any) -> None:
    pbx, far, far2, sbc, port = await setup(peers, run_sbc, media="off")
    ok = await answered_call(pbx, port)
    b_invite = next(iter(far.invites.values()))
    pbx.send(refer(pbx, ok, port, 2, "sip:040555@10.0.0.5"), (HOST, port))
    accepted = await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "REFER")
    assert isinstance(accepted, Response) and accepted.status == 202

    statuses = []
    while True:  # NOTIFYs: 100 Trying, 180 from the new party, then 200 (terminated)
        notify = await pbx.expect(request_of("NOTIFY"))
        ok_to(pbx, notify, port)
        assert isinstance(notify, Request) and notify.headers.get("Event", "").startswith("refer")
        statuses.append(parse_sipfrag(notify.body)[0])
        if statuses[-1] >= 200:
            assert (notify.headers.get("Subscription-State") or "").startswith("terminated")
            break
    assert statuses[0] == 100 and statuses[-1] == 200 and 180 in statuses

    # The new call went to carrier-b, in E.164, showing the remaining party as the caller.
    c_invite = next(iter(far2.invites.values()))
    assert c_invite.uri.user == "+4940555"  # type: ignore[union-attr]
    assert c_invite.from_.uri.user == "+4930123"  # type: ignore[union-attr]
    assert b"10.0.0.5" not in far2.peer.raw() and b"FancyPBX" not in far2.peer.raw()
    # The referrer is hung up; the remaining carrier is re-INVITEd with the new party's SDP
    # under our own o= session for that side (same id, next version).
    bye = await pbx.expect(request_of("BYE"))
    ok_to(pbx, bye, port)
    reinvite = (await eventually(lambda: [r for r in far.peer.requests("INVITE") if r.to.tag]))[0]
    first, second = parse_sdp(b_invite.body).origin, parse_sdp(reinvite.body).origin
    assert second.session_id == first.session_id and second.session_version == first.session_version + 1
    assert parse_sdp(reinvite.body).media[0].port == 50000  # where carrier-b receives

    # The remaining carrier hangs up: the BYE reaches the new party.
    far.peer.send(in_dialog_from(far, b_invite, port), (HOST, port))
    await eventually(lambda: far2.peer.requests("BYE"))
    await eventually(lambda: not sbc.calls)
    rec = (await sbc.storage.records.query())[0]
    assert rec.extra["transferred_to"] == ["carrier-b"] and rec.hangup_by == "callee"
    assert await sbc.channels("carrier-b") == 0 and await sbc.channels("pbx1") == 0


def in_dialog_from(far: Carrier, b_invite: Request, port: int) -> bytes:
    return (
        f"BYE sip:sbc@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{far.port};branch=z9hG4bKfarbye\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {b_invite.headers.get('To')};tag={far.tag}\r\n"
        f"To: {b_invite.headers.get('From')}\r\n"
        f"Call-ID: {b_invite.call_id}\r\n"
        "CSeq: 10 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.timeout(30)
async def test_terminate_through_the_relay_needs_no_reinvite(peers: Any, run_sbc: Any) -> None:
    pbx, far, far2, sbc, port = await setup(peers, run_sbc, media="relay", rtp_ports=(21400, 21499))
    ok = await answered_call(pbx, port)
    pbx_side_port = parse_sdp(ok.body).media[0].port
    pbx.send(refer(pbx, ok, port, 2, "sip:040555@10.0.0.5"), (HOST, port))
    while True:
        notify = await pbx.expect(request_of("NOTIFY"))
        ok_to(pbx, notify, port)
        assert isinstance(notify, Request)
        if parse_sipfrag(notify.body)[0] >= 200:
            break
    c_invite = next(iter(far2.invites.values()))
    # The new party is offered the relay pair that faced the PBX: the carrier keeps sending
    # to the same relay port and never notices.
    assert parse_sdp(c_invite.body).media[0].port == pbx_side_port
    bye = await pbx.expect(request_of("BYE"))
    ok_to(pbx, bye, port)
    assert not [r for r in far.peer.requests("INVITE") if r.to.tag]
    assert sbc.relay.in_use == 2


@pytest.mark.timeout(30)
async def test_terminate_refuses_destinations_and_reports_it(peers: Any, run_sbc: Any) -> None:
    pbx, far, far2, sbc, port = await setup(peers, run_sbc, media="off")
    ok = await answered_call(pbx, port)
    pbx.send(refer(pbx, ok, port, 2, "sip:050555@10.0.0.5"), (HOST, port))  # not allowed for pbx1
    await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "REFER")
    final = None
    while final is None:
        notify = await pbx.expect(request_of("NOTIFY"))
        ok_to(pbx, notify, port)
        assert isinstance(notify, Request)
        status = parse_sipfrag(notify.body)[0]
        final = status if status >= 200 else None
    assert final == 403 and not far2.invites
    assert len(sbc.calls) == 1  # the original call goes on


@pytest.mark.timeout(30)
async def test_pass_relays_a_rewritten_refer_and_its_notify(peers: Any, run_sbc: Any) -> None:
    pbx, far, far2, sbc, port = await setup(peers, run_sbc, refer="pass", media="off")
    ok = await answered_call(pbx, port)
    b_invite = next(iter(far.invites.values()))
    pbx.send(refer(pbx, ok, port, 2, "sip:040555@10.0.0.5;user=phone?Replaces=abc%3Bto-tag%3Dx%3Bfrom-tag%3Dy"),
             (HOST, port))
    relayed = await eventually(lambda: far.peer.requests("REFER"))
    got = relayed[0]
    assert got.call_id == b_invite.call_id
    assert got.headers.get("Refer-To") == f"<sip:+4940555@{HOST}:{port}>"
    assert got.headers.get("Referred-By") == f"<sip:201@{HOST}>"
    for leak in (b"10.0.0.5", b"Replaces", str(pbx.port).encode()):
        assert leak not in far.peer.raw()
    answer = await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "REFER")
    assert isinstance(answer, Response) and answer.status == 202

    # The carrier's progress NOTIFY comes back with its sipfrag cut to the status line.
    body = b"SIP/2.0 200 OK\r\nContact: <sip:secret@198.51.100.77>\r\n"
    notify = (
        f"NOTIFY sip:sbc@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{far.port};branch=z9hG4bKfarnotify\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {b_invite.headers.get('To')};tag={far.tag}\r\n"
        f"To: {b_invite.headers.get('From')}\r\n"
        f"Call-ID: {b_invite.call_id}\r\n"
        "CSeq: 11 NOTIFY\r\nEvent: refer\r\nSubscription-State: terminated;reason=noresource\r\n"
        f"Content-Type: message/sipfrag;version=2.0\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    far.peer.send(notify, (HOST, port))
    got_notify = await pbx.expect(request_of("NOTIFY"))
    assert isinstance(got_notify, Request) and got_notify.call_id == "pbx-call-1"
    assert got_notify.body == b"SIP/2.0 200 OK\r\n"
    assert (got_notify.headers.get("Subscription-State") or "").startswith("terminated")
    ok_to(pbx, got_notify, port)
    # (the carrier's own task reads its queue: look at what it received instead)
    notify_ok = await eventually(lambda: [m for _, m in far.peer.received
                                          if isinstance(m, Response) and m.cseq.method == "NOTIFY"])
    assert notify_ok[0].status == 200


@pytest.mark.timeout(30)
async def test_reject_policy_is_403(peers: Any, run_sbc: Any) -> None:
    pbx, far, far2, sbc, port = await setup(peers, run_sbc, refer="reject", media="off")
    ok = await answered_call(pbx, port)
    pbx.send(refer(pbx, ok, port, 2, "sip:040555@10.0.0.5"), (HOST, port))
    answer = await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "REFER")
    assert isinstance(answer, Response) and answer.status == 403
    assert not far.peer.requests("REFER") and not far2.invites
