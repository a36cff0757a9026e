"""INVITE usage: offer/answer states, glare (§14), hold/resume offers."""

from __future__ import annotations

import pytest

from sipline.sip.dialog import InviteUsage, OfferState, glare_retry_delay, glare_retry_range
from sipline.sip.errors import ProtocolError, UsageError
from sipline.sip.sdp import Codec, Direction, LocalSession, MediaCapabilities, build_answer, build_offer, is_hold

PCMU = Codec("PCMU", 8000)


def local(port: int, version: int = 1) -> LocalSession:
    return LocalSession("127.0.0.1", "42", version, (MediaCapabilities(port, (PCMU,)),))


def usage(owner: bool = True, draws: list[int] | None = None) -> InviteUsage:
    seen = draws if draws is not None else []

    def draw(n: int) -> int:
        seen.append(n)
        return n - 1

    return InviteUsage(owner=owner, draw=draw)


def test_offer_then_answer() -> None:
    u = usage()
    offer = build_offer(local(4000))
    assert u.pending_offer is None and not u.negotiated
    u.send_offer(offer)
    assert u.offer_state is OfferState.LOCAL_OFFER and u.pending_offer == offer
    ans = build_answer(offer, local(5000))
    u.receive_answer(ans)
    assert u.offer_state is OfferState.STABLE and u.negotiated
    assert u.local_sdp == offer and u.remote_sdp == ans


def test_remote_offer_then_our_answer() -> None:
    u = usage()
    offer = build_offer(local(4000))
    u.receive_offer(offer)
    assert u.offer_state is OfferState.REMOTE_OFFER and u.pending_offer == offer
    ans = build_answer(offer, local(5000))
    u.send_answer(ans)
    assert u.local_sdp == ans and u.remote_sdp == offer


def test_offer_answer_misuse() -> None:
    u = usage()
    offer = build_offer(local(4000))
    with pytest.raises(ProtocolError) as err:
        u.receive_answer(offer)
    assert err.value.status == 488
    with pytest.raises(UsageError):
        u.send_answer(offer)
    u.send_offer(offer)
    with pytest.raises(UsageError):
        u.send_offer(offer)
    with pytest.raises(ProtocolError) as err:
        u.receive_offer(offer)
    assert err.value.status == 491
    u.rollback()
    assert u.offer_state is OfferState.STABLE and u.local_sdp is None


def test_glare_ranges() -> None:
    assert glare_retry_range(True) == (2.1, 4.0)
    assert glare_retry_range(False) == (0.0, 2.0)
    assert glare_retry_delay(True, lambda n: 0) == pytest.approx(2.1)
    assert glare_retry_delay(True, lambda n: n - 1) == pytest.approx(4.0)
    assert glare_retry_delay(False, lambda n: n - 1) == pytest.approx(2.0)
    assert glare_retry_delay(False, lambda n: 150) == pytest.approx(1.5)


def test_client_reinvite_and_491_backoff() -> None:
    draws: list[int] = []
    u = usage(owner=False, draws=draws)
    assert u.can_reinvite(0.0)
    u.begin_client_invite(0.0)
    assert not u.can_reinvite(0.0)
    with pytest.raises(UsageError):
        u.begin_client_invite(0.0)
    u.send_offer(build_offer(local(4000)))
    u.end_client_invite(491, 10.0)
    assert draws == [201]
    assert u.retry_at == pytest.approx(12.0) and u.next_deadline() == u.retry_at
    assert u.offer_state is OfferState.STABLE
    assert not u.can_reinvite(11.0)
    assert not u.handle_timer(11.0)
    assert u.can_reinvite(12.0)
    assert u.handle_timer(12.5) and u.retry_at is None
    u.begin_client_invite(13.0)
    u.end_client_invite(200, 13.1)
    assert u.retry_at is None and not u.client_pending
    u.begin_client_invite(14.0)
    u.end_client_invite(500, 14.1)  # other failures: no back-off
    assert u.retry_at is None


def test_server_side_glare() -> None:
    u = usage()
    assert u.check_server_invite() is None
    u.begin_server_invite()
    rej = u.check_server_invite()
    assert rej is not None and rej.status == 500 and rej.headers == (("Retry-After", "10"),)
    with pytest.raises(ProtocolError) as err:
        u.begin_server_invite()
    assert err.value.status == 500
    assert not u.can_reinvite(0.0)
    u.receive_offer(build_offer(local(4000)))
    u.end_server_invite(488)
    assert u.offer_state is OfferState.STABLE and not u.server_pending
    u.begin_client_invite(0.0)
    rej = u.check_server_invite()
    assert rej is not None and rej.status == 491 and rej.reason == "Request Pending"


def test_offer_pending_blocks_reinvite() -> None:
    u = usage()
    u.send_offer(build_offer(local(4000)))
    assert not u.can_reinvite(0.0)
    assert u.check_server_invite() is not None


def test_end_server_invite_success_keeps_answer() -> None:
    u = usage()
    u.begin_server_invite()
    offer = build_offer(local(4000))
    u.receive_offer(offer)
    u.send_answer(build_answer(offer, local(5000)))
    u.end_server_invite(200)
    assert u.negotiated and u.remote_sdp == offer


def test_hold_and_resume_offers() -> None:
    u = usage()
    with pytest.raises(UsageError):
        u.hold_offer()
    with pytest.raises(UsageError):
        u.resume_offer()
    assert not u.local_hold and not u.remote_hold
    offer = build_offer(local(4000))
    u.send_offer(offer)
    u.receive_answer(build_answer(offer, local(5000)))
    held = u.hold_offer()
    assert is_hold(held) and held.origin.session_version == offer.origin.session_version + 1
    assert held.effective_direction(held.media[0]) is Direction.SENDONLY
    inactive = u.hold_offer(inactive=True)
    assert inactive.effective_direction(inactive.media[0]) is Direction.INACTIVE
    u.send_offer(held)
    remote_answer = build_answer(held, local(5000))
    u.receive_answer(remote_answer)
    assert u.local_hold and not u.remote_hold
    resumed = u.resume_offer()
    assert not is_hold(resumed)
    assert resumed.effective_direction(resumed.media[0]) is Direction.SENDRECV
