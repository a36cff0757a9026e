"""Channel and CPS caps: 503 with Retry-After and a Reason naming the limit, and channels
released on every path (answered, CANCEL, carrier error, no answer)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import pytest

from sipline.sip.b2bua.numbers import NumberPlan
from sipline.sip.b2bua.routing import Route, RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, CustomerTrunk, TrunkSet
from sipline.sip.message import Response

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import (  # noqa: E402
    HOST,
    Carrier,
    RawPeer,
    Script,
    cancel_for_raw,
    eventually,
    final,
    is_status,
    pbx_invite,
    sbc_options,
)

DE = NumberPlan(region="DE")
ANY = (ipaddress.ip_network("127.0.0.0/8"),)


async def setup(peers: Any, run_sbc: Any, script: Script, *, customer: dict[str, Any] | None = None,
                carrier: dict[str, Any] | None = None, **opts: Any) -> tuple[RawPeer, Carrier, Any, int]:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"), script=script)
    far.start()
    trunks = TrunkSet(
        carriers=(CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, far.port),), plan=DE, options_interval=0,
                               **(carrier or {})),),
        customers=(CustomerTrunk("pbx1", acl=ANY, plan=DE, **(customer or {})),),
    )
    sbc = await run_sbc(sbc_options(trunks, RouteTable([Route("+49", "carrier-a")]), **opts))
    return pbx, far, sbc, sbc.listening[0].port


def invite(pbx: RawPeer, port: int, n: int) -> bytes:
    return pbx_invite(pbx, port, "030123", call_id=f"c{n}", branch=f"z9hG4bKb{n}")


def for_call(n: int, status: int) -> Any:
    return lambda m: isinstance(m, Response) and m.call_id == f"c{n}" and m.status == status


@pytest.mark.timeout(30)
async def test_channel_cap_and_release_on_cancel(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(statuses=(180,)), customer={"max_channels": 2},
                                      retry_after=7)
    sent = [invite(pbx, port, n) for n in range(3)]
    for n in range(2):
        pbx.send(sent[n], (HOST, port))
        await pbx.expect(for_call(n, 180))
    pbx.send(sent[2], (HOST, port))
    refused = await pbx.expect(lambda m: isinstance(m, Response) and m.call_id == "c2" and m.status >= 200)
    assert isinstance(refused, Response) and refused.status == 503
    assert refused.headers.get("Retry-After") == "7"
    assert "channel limit reached on trunk pbx1" in (refused.headers.get("Reason") or "")
    assert await sbc.channels("pbx1") == 2 and len(far.invites) == 2

    for n in range(2):
        pbx.send(cancel_for_raw(sent[n]), (HOST, port))
        await pbx.expect(for_call(n, 487))
    await eventually(lambda: len(far.peer.requests("CANCEL")) == 2)
    await eventually(lambda: not sbc.calls)
    assert await sbc.channels("pbx1") == 0 and await sbc.channels("carrier-a") == 0
    statuses = sorted(r.status for r in await sbc.storage.records.query())
    assert statuses == ["487", "487", "503"]


@pytest.mark.timeout(30)
async def test_carrier_channel_cap(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(statuses=(180,)), carrier={"max_channels": 1})
    pbx.send(invite(pbx, port, 0), (HOST, port))
    await pbx.expect(for_call(0, 180))
    pbx.send(invite(pbx, port, 1), (HOST, port))
    refused = await pbx.expect(lambda m: isinstance(m, Response) and m.call_id == "c1" and m.status >= 200)
    assert isinstance(refused, Response) and refused.status == 503 and refused.headers.get("Retry-After")
    assert "trunk carrier-a" in (refused.headers.get("Reason") or "")
    await eventually(lambda: len(sbc.calls) == 1)
    assert await sbc.channels("pbx1") == 1


@pytest.mark.timeout(30)
async def test_cps_cap(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(statuses=(486,)), customer={"max_cps": 1.0})
    pbx.send(invite(pbx, port, 0), (HOST, port))
    pbx.send(invite(pbx, port, 1), (HOST, port))
    first = await pbx.expect(lambda m: isinstance(m, Response) and m.call_id == "c0" and m.status >= 200)
    second = await pbx.expect(lambda m: isinstance(m, Response) and m.call_id == "c1" and m.status >= 200)
    assert isinstance(first, Response) and first.status == 486
    assert isinstance(second, Response) and second.status == 503
    assert "CPS limit reached on trunk pbx1" in (second.headers.get("Reason") or "")
    await eventually(lambda: not sbc.calls)
    assert await sbc.channels("pbx1") == 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize("statuses", [(500,), (404,), (180, 603)])
async def test_no_leak_after_failed_calls(peers: Any, run_sbc: Any, statuses: tuple[int, ...]) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(statuses=statuses), customer={"max_channels": 3})
    for n in range(6):
        pbx.send(invite(pbx, port, n), (HOST, port))
        got = await pbx.expect(lambda m, n=n: isinstance(m, Response) and m.call_id == f"c{n}" and m.status >= 200)
        assert isinstance(got, Response) and got.status == statuses[-1]
    await eventually(lambda: not sbc.calls)
    assert await sbc.channels("pbx1") == 0 and await sbc.channels("carrier-a") == 0


@pytest.mark.timeout(30)
async def test_no_answer_times_out_and_releases(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(statuses=(180,)), ring_timeout=0.5)
    pbx.send(invite(pbx, port, 0), (HOST, port))
    got = await pbx.expect(final)
    assert isinstance(got, Response) and got.status == 408
    await eventually(lambda: far.peer.requests("CANCEL"))
    await eventually(lambda: not sbc.calls)
    assert await sbc.channels("pbx1") == 0 and await sbc.channels("carrier-a") == 0
    rec = (await sbc.storage.records.query())[0]
    assert rec.status == "408" and rec.hangup_by == "sbc" and rec.ring is not None


@pytest.mark.timeout(30)
async def test_destination_not_allowed_and_bad_number(peers: Any, run_sbc: Any) -> None:
    pbx, far, sbc, port = await setup(peers, run_sbc, Script(), customer={"allowed_destinations": ("+4989",)})
    pbx.send(invite(pbx, port, 0), (HOST, port))
    got = await pbx.expect(final)
    assert isinstance(got, Response) and got.status == 403
    pbx.send(pbx_invite(pbx, port, "alice", call_id="c1", branch="z9hG4bKx1"), (HOST, port))
    got = await pbx.expect(lambda m: isinstance(m, Response) and m.call_id == "c1" and m.status >= 200)
    assert isinstance(got, Response) and got.status == 484
    assert not far.invites
