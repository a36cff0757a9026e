"""Failover between carriers (5xx, timeouts, health) and digest auth towards a carrier."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import pytest

from sipline.sip.b2bua.numbers import NumberPlan
from sipline.sip.b2bua.routing import Route, RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, CustomerTrunk, DigestAccount, TrunkSet
from sipline.sip.message import Response

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import (  # noqa: E402
    HOST,
    Carrier,
    RawPeer,
    Script,
    eventually,
    final,
    pbx_invite,
    sbc_options,
)

DE = NumberPlan(region="DE")
ANY = (ipaddress.ip_network("127.0.0.0/8"),)


async def two_carriers(peers: Any, run_sbc: Any, script_a: Script, *, health: bool = False,
                       a_extra: dict[str, Any] | None = None, **opts: Any) -> tuple[RawPeer, Carrier, Carrier, Any, int]:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    a = Carrier(peers("a"), script=script_a, tag="tag-a")
    b = Carrier(peers("b"), script=Script(statuses=(180, 200)), tag="tag-b")
    a.start()
    b.start()
    ping = {"options_interval": 0.2, "options_timeout": 0.15, "up_threshold": 1, "down_threshold": 2} if health \
        else {"options_interval": 0.0}
    trunks = TrunkSet(
        carriers=(
            CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, a.port),), plan=DE, **ping, **(a_extra or {})),
            CarrierTrunk("carrier-b", hosts=(CarrierHost(HOST, b.port),), plan=DE, **ping),
        ),
        customers=(CustomerTrunk("pbx1", acl=ANY, plan=DE),),
    )
    routes = RouteTable([Route("+49", "carrier-a", priority=1), Route("+49", "carrier-b", priority=2)])
    sbc = await run_sbc(sbc_options(trunks, routes, health_checks=health, **opts))
    return pbx, a, b, sbc, sbc.listening[0].port


def answered(m: Any, call_id: str = "pbx-call-1") -> bool:
    return isinstance(m, Response) and m.call_id == call_id and m.status >= 200


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("status", "reason", "fails_over"), [
    (503, None, True),
    (500, None, True),
    (502, "Q.850;cause=34", True),
    (486, None, False),
    (404, None, False),
    (603, None, False),
    (503, "Q.850;cause=17;text=\"User busy\"", False),
])
async def test_failover_rules(peers: Any, run_sbc: Any, status: int, reason: str | None, fails_over: bool) -> None:
    pbx, a, b, sbc, port = await two_carriers(peers, run_sbc, Script(statuses=(status,), reason=reason))
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    got = await pbx.expect(answered)
    assert isinstance(got, Response)
    assert len(a.invites) == 1
    if fails_over:
        assert got.status == 200 and len(b.invites) == 1
    else:
        assert got.status == status and not b.invites
    await eventually(lambda: not sbc.calls or got.status == 200)
    if got.status != 200:
        assert await sbc.channels("carrier-a") == 0 and await sbc.channels("carrier-b") == 0


@pytest.mark.timeout(30)
async def test_unanswered_carrier_times_out_to_next(peers: Any, run_sbc: Any) -> None:
    pbx, a, b, sbc, port = await two_carriers(peers, run_sbc, Script(statuses=()))
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    got = await pbx.expect(answered, timeout=10)
    assert isinstance(got, Response) and got.status == 200
    assert len(a.peer.requests("INVITE")) >= 1 and len(b.invites) == 1
    assert await sbc.channels("carrier-a") == 0 and await sbc.channels("carrier-b") == 1
    rec_trunk = sbc.calls[next(iter(sbc.calls))].to_trunk
    assert rec_trunk == "carrier-b"


@pytest.mark.timeout(30)
async def test_carrier_down_by_options_and_back(peers: Any, run_sbc: Any) -> None:
    pbx, a, b, sbc, port = await two_carriers(peers, run_sbc, Script(statuses=(180, 200)), health=True)
    a.answer_options = False
    key_a = ("carrier-a", f"udp:{HOST}:{a.port}")
    await eventually(lambda: not sbc.health.is_up(key_a), timeout=5)
    assert sbc.health.is_up(("carrier-b", f"udp:{HOST}:{b.port}"))
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    got = await pbx.expect(answered)
    assert isinstance(got, Response) and got.status == 200
    assert not a.invites and len(b.invites) == 1

    a.answer_options = True
    await eventually(lambda: sbc.health.is_up(key_a), timeout=5)
    pbx.send(pbx_invite(pbx, port, "030123", call_id="second", branch="z9hG4bKsecond"), (HOST, port))
    got = await pbx.expect(lambda m: answered(m, "second"))
    assert isinstance(got, Response) and got.status == 200
    assert len(a.invites) == 1 and len(b.invites) == 1


@pytest.mark.timeout(30)
async def test_digest_auth_towards_carrier(peers: Any, run_sbc: Any) -> None:
    account = DigestAccount("acct", "secret")
    pbx, a, b, sbc, port = await two_carriers(peers, run_sbc, Script(statuses=(180, 200), challenge=True),
                                              a_extra={"auth": account})
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    got = await pbx.expect(answered)
    assert isinstance(got, Response) and got.status == 200
    invites = a.peer.requests("INVITE")
    assert len(invites) == 2 and len(a.invites) == 1
    first, second = invites
    assert "Proxy-Authorization" not in first.headers
    assert 'username="acct"' in (second.headers.get("Proxy-Authorization") or "")
    assert second.call_id == first.call_id and second.cseq.seq == first.cseq.seq + 1
    assert second.via.branch != first.via.branch
    assert not b.invites
    # The PBX never sees the carrier's challenge.
    assert b"Proxy-Authenticate" not in pbx.raw() and b"carrier.example" not in pbx.raw()


@pytest.mark.timeout(30)
async def test_wrong_credentials_fail_over(peers: Any, run_sbc: Any) -> None:
    pbx, a, b, sbc, port = await two_carriers(peers, run_sbc, Script(statuses=(180, 200), challenge=True),
                                              a_extra={"auth": DigestAccount("acct", "wrong")})
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    got = await pbx.expect(answered)
    assert isinstance(got, Response) and got.status == 200 and len(b.invites) == 1
    assert len(a.peer.requests("INVITE")) == 2


@pytest.mark.timeout(30)
async def test_all_carriers_fail(peers: Any, run_sbc: Any) -> None:
    pbx, a, b, sbc, port = await two_carriers(peers, run_sbc, Script(statuses=(503,)))
    b.script = Script(statuses=(500,))
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    got = await pbx.expect(final)
    assert isinstance(got, Response) and got.status == 500
    await eventually(lambda: not sbc.calls)
    rec = (await sbc.storage.records.query())[0]
    assert rec.status == "500" and rec.to_trunk == "carrier-b"
