"""The INVITE usage of a dialog: offer/answer state, glare, hold and resume (§13-§14).

Two pieces of bookkeeping decide whether a UA may send or accept a (re-)INVITE, and both
are easy to get subtly wrong when they live as flags in call-control code:

* **Offer/answer** (RFC 3264, RFC 3261 §13.2.1): at most one offer is outstanding; an
  offer received while ours is unanswered is a protocol error; a failed re-INVITE rolls the
  session back to the last agreed descriptions.
* **INVITE transactions in progress** (§14.1, §14.2): a UA must not start a re-INVITE
  while another INVITE transaction is in progress in either direction.  A re-INVITE
  arriving while ours is pending is *glare* and gets 491; one arriving while we have not
  answered the previous incoming INVITE gets 500 with Retry-After.  After a 491 the
  retry waits a random time whose range depends on who owns the Call-ID.

Timers are deadlines (``now`` in, ``next_deadline()`` out); randomness is injected as
``draw(n) -> int in [0, n)`` so tests are exact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ProtocolError, UsageError
from ..sdp import Direction, SessionDescription, hold, is_hold, resume

__all__ = [
    "OfferState",
    "InviteUsage",
    "Rejection",
    "glare_retry_range",
    "glare_retry_delay",
]


class OfferState(str, enum.Enum):
    """Where the offer/answer exchange stands (RFC 6337 §2 names)."""

    #: No offer outstanding; ``local_sdp``/``remote_sdp`` hold the agreed session (if any).
    STABLE = "stable"
    #: We sent an offer and wait for the answer.
    LOCAL_OFFER = "local-offer"
    #: We received an offer and owe the answer.
    REMOTE_OFFER = "remote-offer"


@dataclass(frozen=True, slots=True)
class Rejection:
    """How to refuse an incoming re-INVITE (§14.2): status and extra headers."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def glare_retry_range(owner: bool) -> tuple[float, float]:
    """§14.1: after a 491 the Call-ID owner waits 2.1-4 s, the other side 0-2 s."""
    return (2.1, 4.0) if owner else (0.0, 2.0)


def glare_retry_delay(owner: bool, draw: Callable[[int], int]) -> float:
    """A random retry delay in the §14.1 range, in units of 10 ms as the RFC says."""
    low, high = glare_retry_range(owner)
    steps = round((high - low) * 100)
    return low + draw(steps + 1) / 100.0


class InviteUsage:
    """Offer/answer and INVITE-transaction bookkeeping of one dialog.

    ``owner`` is True when we generated the Call-ID (we sent the initial INVITE); it picks
    the glare retry range.  ``draw(n)`` returns a uniformly random int in ``[0, n)``.
    """

    __slots__ = (
        "owner",
        "_draw",
        "offer_state",
        "local_sdp",
        "remote_sdp",
        "_pending_local",
        "_pending_remote",
        "client_pending",
        "server_pending",
        "retry_at",
        "_agreed",
    )

    def __init__(self, *, owner: bool, draw: Callable[[int], int]) -> None:
        self.owner = owner
        self._draw = draw
        self.offer_state = OfferState.STABLE
        #: The last agreed descriptions (ours and the peer's).
        self.local_sdp: SessionDescription | None = None
        self.remote_sdp: SessionDescription | None = None
        self._pending_local: SessionDescription | None = None
        self._pending_remote: SessionDescription | None = None
        #: An INVITE we sent has not had its final response yet.
        self.client_pending = False
        #: An INVITE we received has not been answered with a final response yet.
        self.server_pending = False
        #: When a re-INVITE refused with 491 may be retried; None otherwise.
        self.retry_at: float | None = None
        self._agreed = False

    # -- offer/answer -----------------------------------------------------------------

    @property
    def negotiated(self) -> bool:
        """True once at least one offer/answer exchange completed."""
        return self._agreed

    @property
    def pending_offer(self) -> SessionDescription | None:
        """The outstanding offer (ours in LOCAL_OFFER, the peer's in REMOTE_OFFER)."""
        if self.offer_state is OfferState.LOCAL_OFFER:
            return self._pending_local
        if self.offer_state is OfferState.REMOTE_OFFER:
            return self._pending_remote
        return None

    def send_offer(self, offer: SessionDescription) -> None:
        """We put an offer in a request or a response.  Raises UsageError if one is open."""
        if self.offer_state is not OfferState.STABLE:
            raise UsageError(f"cannot offer in state {self.offer_state.value}")
        self._pending_local = offer
        self.offer_state = OfferState.LOCAL_OFFER

    def receive_offer(self, offer: SessionDescription) -> None:
        """The peer offered.  An offer crossing ours is a protocol error (RFC 3264 §4)."""
        if self.offer_state is not OfferState.STABLE:
            raise ProtocolError(f"offer received in state {self.offer_state.value}", status=491)
        self._pending_remote = offer
        self.offer_state = OfferState.REMOTE_OFFER

    def receive_answer(self, answer: SessionDescription) -> None:
        """The answer to our offer arrived: the exchange is complete."""
        if self.offer_state is not OfferState.LOCAL_OFFER:
            raise ProtocolError(f"answer received in state {self.offer_state.value}", status=488)
        self.local_sdp, self.remote_sdp = self._pending_local, answer
        self._complete()

    def send_answer(self, answer: SessionDescription) -> None:
        """We answered the peer's offer: the exchange is complete."""
        if self.offer_state is not OfferState.REMOTE_OFFER:
            raise UsageError(f"no offer to answer in state {self.offer_state.value}")
        self.local_sdp, self.remote_sdp = answer, self._pending_remote
        self._complete()

    def rollback(self) -> None:
        """The (re-)INVITE carrying the offer failed: the previous session stays (§14.1)."""
        self._pending_local = self._pending_remote = None
        self.offer_state = OfferState.STABLE

    def _complete(self) -> None:
        self._pending_local = self._pending_remote = None
        self.offer_state = OfferState.STABLE
        self._agreed = True

    # -- INVITE transactions and glare ---------------------------------------------------

    def can_reinvite(self, now: float) -> bool:
        """§14.1: no INVITE in progress either way, offer/answer stable, no 491 back-off."""
        if self.client_pending or self.server_pending:
            return False
        if self.offer_state is not OfferState.STABLE:
            return False
        return self.retry_at is None or now >= self.retry_at

    def begin_client_invite(self, now: float) -> None:
        """We are sending a re-INVITE.  Raises UsageError when §14.1 forbids it now."""
        if not self.can_reinvite(now):
            raise UsageError("another INVITE transaction or offer is in progress")
        self.retry_at = None
        self.client_pending = True

    def end_client_invite(self, status: int, now: float) -> None:
        """Final response to our (re-)INVITE.  A failure rolls back; 491 arms the retry."""
        self.client_pending = False
        if status >= 300:
            self.rollback()
            if status == 491:
                self.retry_at = now + glare_retry_delay(self.owner, self._draw)

    def check_server_invite(self) -> Rejection | None:
        """How to refuse an incoming re-INVITE now, or None to accept it (§14.2).

        Ours pending: glare, 491.  Theirs still unanswered: 500 with a Retry-After drawn
        between 0 and 10 seconds.
        """
        if self.client_pending or self.offer_state is OfferState.LOCAL_OFFER:
            return Rejection(491, "Request Pending")
        if self.server_pending:
            return Rejection(500, "Server Internal Error", (("Retry-After", str(self._draw(11))),))
        return None

    def begin_server_invite(self) -> None:
        """We accepted an incoming (re-)INVITE for processing."""
        rejection = self.check_server_invite()
        if rejection is not None:
            raise ProtocolError(rejection.reason, status=rejection.status)
        self.server_pending = True

    def end_server_invite(self, status: int) -> None:
        """We sent the final response to the incoming (re-)INVITE."""
        self.server_pending = False
        if status >= 300 and self.offer_state is OfferState.REMOTE_OFFER:
            self.rollback()

    def next_deadline(self) -> float | None:
        return self.retry_at

    def handle_timer(self, now: float) -> bool:
        """True when the 491 back-off has expired and the re-INVITE may be retried."""
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            return True
        return False

    # -- hold and resume ----------------------------------------------------------------

    @property
    def remote_hold(self) -> bool:
        """The peer's last agreed description puts us on hold (sendonly/inactive/0.0.0.0)."""
        return self.remote_sdp is not None and is_hold(self.remote_sdp)

    @property
    def local_hold(self) -> bool:
        """Our last agreed description puts the peer on hold."""
        return self.local_sdp is not None and is_hold(self.local_sdp)

    def hold_offer(self, *, inactive: bool = False) -> SessionDescription:
        """The re-offer putting the peer on hold (sendonly, or inactive)."""
        if self.local_sdp is None:
            raise UsageError("nothing to hold: no session negotiated yet")
        return hold(self.local_sdp, inactive=inactive)

    def resume_offer(self, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        """The re-offer taking the peer off hold."""
        if self.local_sdp is None:
            raise UsageError("nothing to resume: no session negotiated yet")
        return resume(self.local_sdp, direction)
