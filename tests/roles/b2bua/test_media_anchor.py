"""Media anchoring and codec policy in a real call: SDP on both legs points at the relay,
ports come back at the end, a carrier without a common codec gets no INVITE (488), a full
port pool refuses with 503, and per-trunk final-response counters are kept."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from sipline.sip.b2bua.numbers import NumberPlan
from sipline.sip.b2bua.routing import Route, RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, CustomerTrunk, TrunkSet
from sipline.sip.message import Response
from sipline.sip.sdp import parse_sdp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import HOST, Carrier, RawPeer, eventually, final, in_dialog, is_status, pbx_invite, sbc_options  # noqa: E402

DE = NumberPlan(region="DE")
ANY = (ipaddress.ip_network("127.0.0.0/8"),)


async def setup(peers: Any, run_sbc: Any, *, codecs: tuple[str, ...] = (), ports: tuple[int, int] = (21000, 21099),
                bypass: bool = False) -> tuple[RawPeer, Carrier, Any, int]:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"))
    far.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, far.port),), plan=DE, options_interval=0,
                               codecs=codecs, media_bypass=bypass),),
        customers=(CustomerTrunk("pbx1", acl=ANY, plan=DE),),
    )
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")]), media="relay", rtp_ports=ports))
    return pbx, far, sbc, sbc.listening[0].port


@pytest.mark.timeout(30)
async def test_sdp_points_at_the_relay_on_both_legs(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc)
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response)
    b_invite = next(iter(far.invites.values()))
    offer, answer = parse_sdp(b_invite.body), parse_sdp(ok.body)
    for sdp in (offer, answer):
        assert sdp.connection is not None and sdp.connection.address == HOST
        assert 21000 <= sdp.media[0].port <= 21099
    assert offer.media[0].port != answer.media[0].port
    assert b"40000" not in b_invite.body and b"50000" not in ok.body
    assert sbc.relay.in_use == 2

    pbx.send(in_dialog(pbx, ok, "BYE", port, 2, "z9hG4bKbye"), (HOST, port))
    await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "BYE")
    await eventually(lambda: sbc.relay.in_use == 0)
    await eventually(lambda: not sbc.calls)
    records = await sbc.storage.records.query()
    assert json.loads(records[0].media_stats)["streams"] == 1
    rows = {row["name"]: row for row in await sbc.trunk_rows()}
    assert rows["carrier-a"]["finals"] == {"200": 1} and rows["pbx1"]["finals"] == {"200": 1}
    assert rows["carrier-a"]["channels"] == 0 and rows["carrier-a"]["hosts"][0]["state"] == "unchecked"


@pytest.mark.timeout(30)
async def test_media_bypass_keeps_sdp_addresses(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, bypass=True)
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    ok = await pbx.expect(is_status(200))
    b_invite = next(iter(far.invites.values()))
    assert parse_sdp(b_invite.body).media[0].port == 40000
    assert isinstance(ok, Response) and parse_sdp(ok.body).media[0].port == 50000
    assert sbc.relay.in_use == 0


@pytest.mark.timeout(30)
async def test_no_common_codec_is_488(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, codecs=("G729",))
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    refused = await pbx.expect(final)
    assert isinstance(refused, Response) and refused.status == 488
    assert not far.invites
    await eventually(lambda: not sbc.calls)
    assert await sbc.channels("pbx1") == 0


@pytest.mark.timeout(30)
async def test_allowed_codecs_trim_the_offer(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, codecs=("PCMA",))
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    await pbx.expect(is_status(200))
    b_invite = next(iter(far.invites.values()))
    assert parse_sdp(b_invite.body).media[0].formats == ("8",)


@pytest.mark.timeout(30)
async def test_exhausted_port_pool_is_503(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, ports=(21200, 21203))  # one call's worth
    pbx.send(pbx_invite(pbx, port, "030123", call_id="c1", branch="z9hG4bKm1"), (HOST, port))
    await pbx.expect(lambda m: isinstance(m, Response) and m.call_id == "c1" and m.status == 200)
    pbx.send(pbx_invite(pbx, port, "030123", call_id="c2", branch="z9hG4bKm2"), (HOST, port))
    refused = await pbx.expect(lambda m: isinstance(m, Response) and m.call_id == "c2" and m.status >= 200)
    assert isinstance(refused, Response) and refused.status == 503 and refused.headers.get("Retry-After")
    await eventually(lambda: len(sbc.calls) == 1)
    assert await sbc.channels("pbx1") == 1
