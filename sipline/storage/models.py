"""Values the stores keep: bindings, subscribers and call records.

They are frozen, slotted dataclasses that check themselves on construction, so a backend
never has to wonder whether a row it is about to write makes sense, and a value read back
from any backend compares equal to the one written.  Times are plain floats chosen by the
caller: the stores never read a clock.  When several sipline nodes share one store (Redis),
the callers must agree on the origin, which in practice means Unix time.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sipline.sip.errors import UsageError

__all__ = [
    "Source",
    "Binding",
    "BindingSet",
    "BindingChanges",
    "Subscriber",
    "DIGEST_ALGORITHMS",
    "canonical_algorithm",
    "compute_ha1",
    "make_subscriber",
    "CallRecord",
]


def _check_time(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value!r}")


# ---------------------------------------------------------------------------------------
# Location service (RFC 3261 §10, RFC 5626)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a REGISTER came from: the flow a request to this contact must reuse.

    Rendered as ``transport:host:port`` (IPv6 hosts in brackets) because that text is
    what operators grep for in logs and what the CLI prints.
    """

    transport: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if not self.transport or ":" in self.transport:
            raise UsageError(f"bad transport {self.transport!r}")
        if not self.host:
            raise UsageError("empty host")
        if not 0 < self.port < 65536:
            raise UsageError(f"port out of range: {self.port}")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Source:
        """Inverse of ``str()``; raises UsageError on anything else."""
        transport, sep, rest = text.partition(":")
        host, sep2, port = rest.rpartition(":")
        if not sep or not sep2 or not port.isdigit():
            raise UsageError(f"bad source {text!r}, want transport:host:port")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(transport.lower(), host, int(port))


@dataclass(frozen=True, slots=True)
class Binding:
    """One Contact registered for an address-of-record (RFC 3261 §10.2.1).

    ``contact`` is the Contact URI exactly as the UA sent it and is the binding's identity
    within its AOR: the registrar decides URI equivalence (§19.1.4) and passes the stored
    string back when it replaces or removes a binding.
    """

    aor: str
    contact: str
    #: Absolute time after which the binding is dead (§10.2.1.1 Expires, made absolute).
    expires_at: float
    #: Contact "q" preference, 0..1 (§20.10).
    q: float = 1.0
    #: Call-ID and CSeq of the REGISTER that last refreshed it; §10.3 step 7 compares them.
    call_id: str = ""
    cseq: int = 0
    #: Path header values to prepend as Route when reaching the contact (RFC 3327).
    path: tuple[str, ...] = ()
    #: +sip.instance and reg-id (RFC 5626 §4.2); reg_id is meaningless without an instance.
    instance_id: str | None = None
    reg_id: int | None = None
    #: Transport source of the REGISTER (RFC 5626 flow, RFC 3581 received/rport).
    received: Source | None = None
    #: The TCP/TLS/WS connection holding the flow, and the node that owns that connection.
    connection_id: str | None = None
    node_id: str | None = None
    user_agent: str = ""
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.aor or not self.contact:
            raise UsageError("binding needs an aor and a contact")
        _check_time("expires_at", self.expires_at)
        _check_time("updated_at", self.updated_at)
        if not 0.0 <= self.q <= 1.0:
            raise UsageError(f"q must be within 0..1, got {self.q}")
        if self.cseq < 0 or self.cseq >= 2**31:
            raise UsageError(f"CSeq out of range: {self.cseq}")
        if self.reg_id is not None and self.instance_id is None:
            raise UsageError("reg_id without instance_id (RFC 5626 §4.2)")
        if not isinstance(self.path, tuple):
            object.__setattr__(self, "path", tuple(self.path))

    def alive(self, now: float) -> bool:
        """True while the binding has not expired at ``now``."""
        return self.expires_at > now

    def expires_in(self, now: float) -> int:
        """Whole seconds left, as a 200 OK to REGISTER reports them (never negative)."""
        return max(0, math.ceil(self.expires_at - now))


@dataclass(frozen=True, slots=True)
class BindingSet:
    """A consistent snapshot of one AOR: its live bindings plus a version for CAS.

    ``version`` is 0 when the AOR has no stored bindings and otherwise changes on every
    modification without ever coming back to an earlier value, so "same version" means
    "same bindings".
    """

    aor: str
    bindings: tuple[Binding, ...]
    version: int

    def find(self, contact: str) -> Binding | None:
        for binding in self.bindings:
            if binding.contact == contact:
                return binding
        return None


@dataclass(frozen=True, slots=True)
class BindingChanges:
    """What one REGISTER does to an AOR, computed by the registrar's pure decision.

    Applied in this order: drop everything (``remove_all``, the ``Contact: *`` case),
    remove the listed contacts, then upsert.  An upsert whose ``expires_at`` is not after
    ``now`` removes the contact instead (``Expires: 0``).  When ``expected_version`` is set
    the store refuses the change with StaleBindingSet unless the AOR still has that version.
    """

    upsert: tuple[Binding, ...] = ()
    remove: tuple[str, ...] = ()
    remove_all: bool = False
    expected_version: int | None = None


# ---------------------------------------------------------------------------------------
# Subscribers and digest credentials (RFC 7616, RFC 8760)

#: Digest algorithm name (without "-sess") -> hashlib name.
DIGEST_ALGORITHMS: Mapping[str, str] = MappingProxyType(
    {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
)


def canonical_algorithm(algorithm: str) -> str:
    """Upper-case digest name without "-sess"; UsageError for algorithms we do not hash."""
    name = algorithm.upper()
    if name.endswith("-SESS"):
        # The session variant derives its HA1 from the plain one at challenge time.
        name = name[: -len("-SESS")]
    if name not in DIGEST_ALGORITHMS:
        raise UsageError(f"unsupported digest algorithm {algorithm!r}")
    return name


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str | None:
    """H(username:realm:password) as lowercase hex, or None if hashlib lacks the hash."""
    name = DIGEST_ALGORITHMS[canonical_algorithm(algorithm)]
    try:
        digest = hashlib.new(name)
    except ValueError:  # pragma: no cover - OpenSSL builds without SHA-512/256
        return None
    digest.update(f"{username}:{realm}:{password}".encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A user allowed to register and call; only password hashes are kept.

    ``realm`` is the digest realm the HA1 values were computed for.  It usually equals
    the domain but is kept separately because changing it invalidates every HA1.
    """

    username: str
    domain: str
    ha1_md5: str
    ha1_sha256: str
    ha1_sha512_256: str | None = None
    enabled: bool = True
    created_at: float = 0.0
    display_name: str = ""
    realm: str = ""

    def __post_init__(self) -> None:
        if not self.username or not self.domain:
            raise UsageError("subscriber needs a username and a domain")
        if not self.realm:
            object.__setattr__(self, "realm", self.domain)
        _check_time("created_at", self.created_at)

    def ha1(self, algorithm: str) -> str | None:
        """Stored HA1 for a digest algorithm name as it appears in a challenge."""
        name = canonical_algorithm(algorithm)
        if name == "MD5":
            return self.ha1_md5
        if name == "SHA-256":
            return self.ha1_sha256
        return self.ha1_sha512_256


def make_subscriber(
    username: str,
    domain: str,
    password: str,
    realm: str | None = None,
    *,
    display_name: str = "",
    enabled: bool = True,
    created_at: float | None = None,
) -> Subscriber:
    """Build a subscriber from a clear-text password, which is hashed and forgotten.

    ``realm`` defaults to the domain.  ``created_at`` defaults to the wall clock: this is
    an operator helper (CLI, provisioning), not part of any protocol path.
    """
    realm = realm or domain
    md5 = compute_ha1(username, realm, password, "MD5")
    sha256 = compute_ha1(username, realm, password, "SHA-256")
    assert md5 is not None and sha256 is not None  # always in hashlib
    return Subscriber(
        username=username,
        domain=domain,
        ha1_md5=md5,
        ha1_sha256=sha256,
        ha1_sha512_256=compute_ha1(username, realm, password, "SHA-512-256"),
        enabled=enabled,
        created_at=time.time() if created_at is None else created_at,
        display_name=display_name,
        realm=realm,
    )


# ---------------------------------------------------------------------------------------
# Call detail records


def _frozen_extra(extra: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        # Round-trip through JSON: proves every backend can store it, and detaches the
        # record from a dict the caller may keep mutating.
        copied = json.loads(json.dumps(dict(extra), sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"call record extra must be JSON-serialisable: {exc}") from exc
    return MappingProxyType(copied)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as billed and reported: who, when, through which trunks, how it ended.

    Times are Unix epoch seconds (CDRs are compared across machines and exported).
    ``ring``/``answer``/``end`` stay None when the call never reached that point;
    ``duration`` is answered time (answer..end) and ``pdd`` post-dial delay (start..ring).
    ``media_stats`` is opaque JSON text produced by the media layer.
    """

    id: str
    call_id: str
    start: float
    caller: str
    callee: str
    status: str
    ring: float | None = None
    answer: float | None = None
    end: float | None = None
    callee_normalized: str = ""
    from_trunk: str | None = None
    to_trunk: str | None = None
    reason: str = ""
    hangup_by: str = ""
    duration: float = 0.0
    pdd: float | None = None
    media_stats: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise UsageError("call record needs an id")
        for name in ("start", "ring", "answer", "end", "duration", "pdd"):
            _check_time(name, getattr(self, name))
        if self.duration < 0:
            raise UsageError(f"negative duration {self.duration}")
        if self.media_stats is not None:
            try:
                json.loads(self.media_stats)
            except ValueError as exc:
                raise UsageError(f"media_stats is not JSON: {exc}") from exc
        object.__setattr__(self, "extra", _frozen_extra(self.extra))
