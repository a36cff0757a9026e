"""``workers = N``: the Call-IDs the SBC originates hash to the worker that makes them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipline.roles.b2bua.owned_ids import OwnedIdSource, owned_ids
from sipline.roles.b2bua.sbc import Sbc
from sipline.runtime import dispatch
from sipline.runtime.ids import SecureIdSource
from sipline.sip.b2bua.routing import RouteTable
from sipline.sip.b2bua.trunk import CarrierHost, CarrierTrunk, DigestAccount, TrunkSet
from sipline.sip.ids import CountingIdSource

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import HOST, sbc_options  # noqa: E402


def _owner(call_id: str, count: int) -> int | None:
    """The owner as the dispatcher sees it: from a message on the wire."""
    message = (f"BYE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: {call_id}\r\n"
               "CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode()
    return dispatch.owner_of(message, count)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_call_ids_hash_to_their_worker(count: int) -> None:
    for index in range(count):
        ids = OwnedIdSource(SecureIdSource(), index, count)
        made = [ids.call_id() for _ in range(200)]
        assert len(set(made)) == 200
        assert {_owner(call_id, count) for call_id in made} == {index}


def test_other_identifiers_pass_through() -> None:
    ids = OwnedIdSource(CountingIdSource(), 1, 2)
    assert ids.tag() == "tagid1" and ids.branch() == "z9hG4bKid2" and ids.token() == "id3"
    call_id = ids.call_id()
    assert call_id.startswith("callid") and dispatch.call_id_owner(call_id, 2) == 1


def test_single_process_keeps_the_source_and_bad_index_is_refused() -> None:
    inner = SecureIdSource()
    assert owned_ids(inner, 0, 1) is inner
    with pytest.raises(ValueError):
        OwnedIdSource(inner, 2, 2)


class _Stuck:
    """A source that always returns the same Call-ID (a broken one)."""

    def token(self, nbytes: int = 8) -> str:
        return "t"

    def branch(self) -> str:
        return "z9hG4bKb"

    def tag(self) -> str:
        return "g"

    def call_id(self) -> str:
        return "same"


def test_a_source_that_never_fits_fails_instead_of_hanging() -> None:
    wrong = 1 - dispatch.call_id_owner("same", 2)
    with pytest.raises(RuntimeError):
        OwnedIdSource(_Stuck(), wrong, 2).call_id()


@pytest.fixture
def worker_one_of_two() -> Iterator[dispatch.WorkerGroup]:
    inboxes, outboxes = dispatch.make_inboxes(2)
    group = dispatch.WorkerGroup(1, 2, inboxes, outboxes)
    dispatch.set_current(group)
    try:
        yield group
    finally:
        dispatch.set_current(None)
        for sock in inboxes + outboxes:
            sock.close()


def _register_trunks() -> TrunkSet:
    trunk = CarrierTrunk("carrier-a", hosts=(CarrierHost(HOST, 9),), options_interval=0,
                         auth=DigestAccount("acct", "secret", register=True, register_expires=60))
    return TrunkSet(carriers=(trunk,))


def test_sbc_in_a_worker_originates_owned_call_ids(worker_one_of_two: dispatch.WorkerGroup) -> None:
    sbc = Sbc(sbc_options(_register_trunks(), RouteTable()))
    assert sbc.worker == (1, 2)
    assert {dispatch.call_id_owner(sbc.ids.call_id(), 2) for _ in range(50)} == {1}


async def test_only_worker_zero_registers_to_carriers(worker_one_of_two: dispatch.WorkerGroup) -> None:
    sbc = Sbc(sbc_options(_register_trunks(), RouteTable(), health_checks=False))
    await sbc.start()
    try:
        assert sbc.registrations is None
    finally:
        await sbc.stop()


async def test_single_process_sbc_registers() -> None:
    sbc = Sbc(sbc_options(_register_trunks(), RouteTable(), health_checks=False))
    assert sbc.worker == (0, 1)
    await sbc.start()
    try:
        assert sbc.registrations is not None
    finally:
        await sbc.stop()
