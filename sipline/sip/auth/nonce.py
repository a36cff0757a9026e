"""Stateless server nonces and bounded nonce-count replay tracking (RFC 7616 §5.4-§5.5).

Theory of operation: a server that remembered every nonce it handed out would need shared
state between cluster nodes and would grow with every unauthenticated request -- an easy
memory attack.  Instead the nonce *is* its own record: it carries the time it was issued
(and an optional salt) plus an HMAC over that time, the realm and an optional client binding
(such as the source address).  Any node holding the secret can check authenticity and age
with no lookup.

Stateless nonces cannot by themselves stop a captured request from being replayed within
their lifetime; that is what the nonce-count is for.  :class:`ReplayGuard` remembers, for the
most recently used nonces only, the highest nc seen and a sliding bitmap below it.  When it
must forget a nonce to stay within its bound, it raises a *horizon*: every nonce issued at
or before the forgotten one's timestamp is from then on reported as forgotten, so the server
answers ``stale=true`` and the client simply takes a fresh nonce.  Memory stays bounded and
an evicted nonce can never be replayed.

Wire format: ``base64url(timestamp_ms:int64 || salt || mac[:16])`` without padding.
"""

from __future__ import annotations

import base64
import enum
import hmac
import re
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sipline.sip.errors import UsageError

__all__ = [
    "NonceStatus",
    "NonceCheck",
    "NonceFactory",
    "ReplayVerdict",
    "ReplayGuard",
]

_STAMP = struct.Struct(">q")
_MAC_LEN = 16
_MAX_SALT = 64
_MAX_NONCE_CHARS = 4 * (_STAMP.size + _MAX_SALT + _MAC_LEN) // 3 + 4
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_DOMAIN = b"sipline digest nonce v1\x00"


class NonceStatus(enum.Enum):
    """What :meth:`NonceFactory.verify` concluded about a nonce."""

    VALID = "valid"
    STALE = "stale"  # ours, but outside its lifetime: answer with stale=true
    INVALID = "invalid"  # not ours (tampered, foreign secret, other realm/binding)


@dataclass(frozen=True, slots=True)
class NonceCheck:
    """Result of verifying a nonce; ``issued_at`` is known only for authentic nonces."""

    status: NonceStatus
    issued_at: float | None = None


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _lp(data: bytes) -> bytes:
    # Length-prefix every field so ("ab", "c") and ("a", "bc") can never share a MAC.
    return struct.pack(">I", len(data)) + data


class NonceFactory:
    """Issues and verifies HMAC-authenticated nonces; holds no per-nonce state.

    ``secret`` keys the HMAC (at least 16 bytes; share it across cluster nodes).
    ``lifetime`` is how long, in seconds of the caller's clock, a nonce stays valid.
    ``make_salt`` (optional) is an injected id source whose output makes two nonces issued in
    the same millisecond differ.  ``clock_skew`` tolerates nonces issued slightly "in the
    future" by a peer node whose clock runs ahead.
    """

    __slots__ = ("_secret", "_lifetime", "_make_salt", "_skew")

    def __init__(
        self,
        secret: bytes,
        lifetime: float,
        *,
        make_salt: Callable[[], str] | None = None,
        clock_skew: float = 2.0,
    ) -> None:
        if len(secret) < 16:
            raise UsageError("nonce secret must be at least 16 bytes")
        if lifetime <= 0 or clock_skew < 0:
            raise UsageError("nonce lifetime must be positive and clock_skew non-negative")
        self._secret = secret
        self._lifetime = lifetime
        self._make_salt = make_salt
        self._skew = clock_skew

    @property
    def lifetime(self) -> float:
        return self._lifetime

    def _mac(self, payload: bytes, realm: str, binding: str) -> bytes:
        message = _DOMAIN + _lp(payload) + _lp(realm.encode("utf-8")) + _lp(binding.encode("utf-8"))
        # hmac.digest: OpenSSL's one-shot HMAC, without building an HMAC object per nonce.
        return hmac.digest(self._secret, message, "sha256")[:_MAC_LEN]

    def issue(self, now: float, *, realm: str, binding: str = "") -> str:
        """A fresh nonce for ``realm``, optionally bound to a client (e.g. its address)."""
        salt = self._make_salt().encode("utf-8") if self._make_salt is not None else b""
        if len(salt) > _MAX_SALT:
            raise UsageError(f"nonce salt longer than {_MAX_SALT} bytes")
        millis = round(now * 1000)
        if not -(2**63) <= millis < 2**63:
            raise UsageError(f"time {now!r} cannot be encoded in a nonce")
        payload = _STAMP.pack(millis) + salt
        return _b64encode(payload + self._mac(payload, realm, binding))

    def verify(self, nonce: str, now: float, *, realm: str, binding: str = "") -> NonceCheck:
        """Check authenticity first, then age; never raises on peer input."""
        invalid = NonceCheck(NonceStatus.INVALID)
        if len(nonce) > _MAX_NONCE_CHARS or not _B64URL.fullmatch(nonce):
            return invalid
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:  # impossible length (4n+1 characters)
            return invalid
        # Re-encoding must give back the same text: otherwise unused trailing bits would let
        # one nonce be spelled several ways and dodge the per-nonce replay bookkeeping.
        if len(raw) < _STAMP.size + _MAC_LEN or _b64encode(raw) != nonce:
            return invalid
        payload, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(payload, realm, binding)):
            return invalid
        issued_at = _STAMP.unpack_from(payload)[0] / 1000
        age = now - issued_at
        if -self._skew <= age <= self._lifetime:
            return NonceCheck(NonceStatus.VALID, issued_at)
        # Expired, or from a clock far ahead (e.g. before a restart reset the monotonic
        # origin): authentic either way, so the client only needs a fresh nonce.
        return NonceCheck(NonceStatus.STALE, issued_at)


class ReplayVerdict(enum.Enum):
    """What :meth:`ReplayGuard.check` concluded about a (nonce, nc) pair."""

    FRESH = "fresh"  # first use; now recorded
    REPLAYED = "replayed"  # seen before, or too far below the highest nc to tell
    FORGOTTEN = "forgotten"  # the nonce may have been evicted: ask for a new one (stale)


class _Window:
    __slots__ = ("highest", "bitmap")

    def __init__(self, nc: int) -> None:
        self.highest = nc
        self.bitmap = 1  # bit i set <=> nc == highest - i was used


class ReplayGuard:
    """Bounded memory of used nonce-counts, LRU-evicted beyond ``max_entries`` nonces.

    ``window`` is how far below the highest nc an out-of-order request (UDP reordering,
    parallel transactions) may still arrive and be accepted once.
    """

    __slots__ = ("_max", "_window", "_mask", "_entries", "_horizon")

    def __init__(self, max_entries: int = 10_000, *, window: int = 64) -> None:
        if max_entries < 1 or window < 1:
            raise UsageError("ReplayGuard needs max_entries >= 1 and window >= 1")
        self._max = max_entries
        self._window = window
        self._mask = (1 << window) - 1
        self._entries: OrderedDict[str, tuple[float, _Window]] = OrderedDict()
        self._horizon = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, nonce: str, issued_at: float, nc: int) -> ReplayVerdict:
        """Accept and record ``nc`` for ``nonce`` unless it was (or may have been) used."""
        if nc < 1:
            return ReplayVerdict.REPLAYED
        entry = self._entries.get(nonce)
        if entry is None:
            if issued_at <= self._horizon:
                return ReplayVerdict.FORGOTTEN
            self._entries[nonce] = (issued_at, _Window(nc))
            while len(self._entries) > self._max:
                _, (evicted_at, _) = self._entries.popitem(last=False)
                self._horizon = max(self._horizon, evicted_at)
            return ReplayVerdict.FRESH
        self._entries.move_to_end(nonce)
        win = entry[1]
        if nc > win.highest:
            jump = nc - win.highest
            # Cap the shift: nc is peer-controlled and a 2**32-bit shift would eat memory.
            win.bitmap = ((win.bitmap << jump) | 1) & self._mask if jump < self._window else 1
            win.highest = nc
            return ReplayVerdict.FRESH
        offset = win.highest - nc
        if offset >= self._window or (win.bitmap >> offset) & 1:
            return ReplayVerdict.REPLAYED
        win.bitmap |= 1 << offset
        return ReplayVerdict.FRESH
