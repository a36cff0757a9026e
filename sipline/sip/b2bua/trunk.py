"""Trunks as declared objects: who may send us calls, where calls go, and each one's limits.

A trunk is the unit an operator thinks in ("the PBX of customer X may have 30 channels",
"carrier A gets at most 10 new calls a second"), so it is one frozen value with every policy
that applies to it, instead of rules spread over routing scripts.  Two kinds:

* :class:`CarrierTrunk` -- outbound towards a carrier: host(s) with port and transport,
  authentication by source IP (nothing to send) or digest username/password (optionally
  with REGISTER), caller-ID policy, number plan and format, codecs, channel and CPS caps,
  OPTIONS keepalive settings.
* :class:`CustomerTrunk` -- a PBX, dialer or voice agent connecting to us, identified by
  source address (ACL of networks) or by digest user, with its own caps and the destinations
  (E.164 prefixes) it may call.

Inbound numbers (:class:`Did`) say where calls from carriers go.  :class:`TrunkSet` holds all
of it and answers the classification questions of the SBC.  ``from_toml`` parsers take the
plain mappings :mod:`tomllib` produces, so the configuration layer only has to hand over
``[[trunks]]`` and ``[[dids]]``.  Every field carries help text in its metadata.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ..errors import UsageError
from .numbers import NumberFormat, NumberPlan, dial_digits
from .topology import HeaderPolicy

__all__ = [
    "TrunkConfigError",
    "CarrierHost",
    "DigestAccount",
    "CallerIdPolicy",
    "CarrierTrunk",
    "CustomerTrunk",
    "Did",
    "TrunkSet",
    "help_text",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_TRANSPORTS = ("udp", "tcp", "tls")


class TrunkConfigError(UsageError):
    """A trunk declaration is malformed; ``key`` names it (``trunks[2].hosts``)."""

    def __init__(self, problem: str, *, key: str = "") -> None:
        self.problem = problem
        self.key = key
        super().__init__(f"{key}: {problem}" if key else problem)


def _opt(default: Any = None, *, help: str, factory: Any = None) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def help_text(cls: type, name: str) -> str:
    """The help text of field ``name`` of a trunk dataclass (for docs and ``dump_toml``)."""
    for f in fields(cls):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    raise KeyError(name)


@dataclass(frozen=True, slots=True)
class CarrierHost:
    """One signalling address of a carrier."""

    host: str = _opt(help="IP address or host name of the carrier's SIP server.")
    port: int = _opt(5060, help="Port (5061 is usual for TLS).")
    transport: str = _opt("udp", help="udp, tcp or tls.")

    def __post_init__(self) -> None:
        if not self.host:
            raise TrunkConfigError("empty host")
        if self.transport not in _TRANSPORTS:
            raise TrunkConfigError(f"transport must be one of {_TRANSPORTS}, not {self.transport!r}")
        if not 0 < self.port < 65536:
            raise TrunkConfigError(f"port {self.port} out of range")

    @classmethod
    def parse(cls, text: str) -> CarrierHost:
        """``[transport:]host[:port]``, e.g. ``tcp:198.51.100.7:5080`` or ``[2001:db8::1]:5060``."""
        transport = "udp"
        head, sep, rest = text.partition(":")
        if sep and head.lower() in _TRANSPORTS:
            transport, text = head.lower(), rest
        port: int | None = None
        if text.startswith("["):
            end = text.find("]")
            if end < 0:
                raise TrunkConfigError(f"unclosed '[' in {text!r}")
            host, tail = text[1:end], text[end + 1:]
            if tail:
                port = _port(tail.removeprefix(":"), text)
        elif text.count(":") == 1:
            host, _, p = text.partition(":")
            port = _port(p, text)
        else:
            host = text
        return cls(host, port if port is not None else (5061 if transport == "tls" else 5060), transport)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def _port(text: str, whole: str) -> int:
    if not text.isdigit():
        raise TrunkConfigError(f"bad port in {whole!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class DigestAccount:
    """Digest credentials: ours towards a carrier, or a customer's towards us."""

    username: str = _opt(help="Digest user name.")
    password: str = _opt(help="Digest password.")
    realm: str | None = _opt(None, help="Only answer challenges of this realm (carrier); "
                             "our realm for the customer (default: the SBC's).")
    register: bool = _opt(False, help="Carrier only: REGISTER to the carrier with these "
                          "credentials and keep the registration refreshed.")
    register_expires: int = _opt(3600, help="Requested registration lifetime in seconds.")

    def __repr__(self) -> str:  # never print the password
        return f"DigestAccount(username={self.username!r}, realm={self.realm!r}, register={self.register})"


CallerIdMode = Literal["pass", "fixed", "pai"]
#: What a REFER (call transfer, RFC 3515) from a trunk's side does.
ReferPolicy = Literal["terminate", "pass", "reject"]
_REFER_POLICIES = ("terminate", "pass", "reject")
_REFER_HELP = ("REFER (call transfer) from this trunk: terminate (sipline performs the transfer: "
               "202, NOTIFY progress, a new call to the Refer-To target through routing, the "
               "other party bridged to it), pass (relayed to the other leg with Refer-To and "
               "Referred-By rewritten to our address) or reject (403).")
PrivacyMode = Literal["pass", "none", "id"]


@dataclass(frozen=True, slots=True)
class CallerIdPolicy:
    """What the far side is told about the caller."""

    mode: CallerIdMode = _opt("pass", help="pass: the caller's number (normalized); fixed: "
                              "always `number`; pai: the incoming P-Asserted-Identity, else From.")
    number: str = _opt("", help="E.164 caller ID for mode fixed, and the fallback when the "
                       "caller's number is missing or invalid.")
    send_pai: bool = _opt(True, help="Add P-Asserted-Identity with the caller ID (RFC 3325).")
    privacy: PrivacyMode = _opt("pass", help="pass: honour the caller's Privacy header; "
                                "none: never anonymize; id: always anonymize From (RFC 3323).")
    diversion: Literal["pass", "strip"] = _opt("pass", help="Relay Diversion (RFC 5806) "
                                               "numbers, normalized, or drop them.")

    def __post_init__(self) -> None:
        if self.mode not in ("pass", "fixed", "pai"):
            raise TrunkConfigError(f"caller_id mode must be pass, fixed or pai, not {self.mode!r}")
        if self.privacy not in ("pass", "none", "id"):
            raise TrunkConfigError(f"privacy must be pass, none or id, not {self.privacy!r}")
        if self.diversion not in ("pass", "strip"):
            raise TrunkConfigError(f"diversion must be pass or strip, not {self.diversion!r}")
        if self.mode == "fixed" and not self.number.startswith("+"):
            raise TrunkConfigError("caller_id mode fixed needs an E.164 number (+...)")


@dataclass(frozen=True, slots=True)
class CarrierTrunk:
    """A carrier we send calls to (and receive DID calls from)."""

    name: str = _opt(help="Unique trunk name (call records, counters, `sipline trunks`).")
    hosts: tuple[CarrierHost, ...] = _opt((), help="Carrier addresses, tried in order "
                                          "(transport:host:port).")
    domain: str = _opt("", help="Host part of the Request-URI and To (default: first host).")
    auth: DigestAccount | None = _opt(None, help="Digest credentials; none means the carrier "
                                      "authenticates us by source IP.")
    caller_id: CallerIdPolicy = _opt(help="Caller-ID policy.", factory=CallerIdPolicy)
    plan: NumberPlan = _opt(help="How the carrier writes numbers it sends us.", factory=NumberPlan)
    format: NumberFormat = _opt(help="How numbers are written towards the carrier.",
                                factory=NumberFormat)
    codecs: tuple[str, ...] = _opt((), help="Codecs allowed towards the carrier, by encoding "
                                   "name (PCMU, PCMA, G722...); empty allows all.")
    max_channels: int = _opt(0, help="Concurrent calls (both directions); 0 = unlimited.")
    max_cps: float = _opt(0.0, help="New calls per second; 0 = unlimited.")
    cps_burst: float = _opt(0.0, help="Token bucket depth for max_cps (default: max_cps, at least 1).")
    options_interval: float = _opt(30.0, help="Seconds between OPTIONS keepalives per host; 0 disables.")
    options_timeout: float = _opt(5.0, help="Seconds to wait for an OPTIONS answer.")
    up_threshold: int = _opt(2, help="Answered OPTIONS in a row that bring a host back up.")
    down_threshold: int = _opt(3, help="Unanswered OPTIONS in a row that mark a host down.")
    headers: HeaderPolicy = _opt(help="Header policy towards this carrier.", factory=HeaderPolicy)
    media_bypass: bool = _opt(False, help="Leave media out of the relay: SDP addresses pass "
                              "unchanged (the carrier reaches the caller directly).")
    refer: ReferPolicy = _opt("terminate", help=_REFER_HELP)

    def __post_init__(self) -> None:
        _check_common(self.name, self.max_channels, self.max_cps, self.cps_burst, self.refer)
        if not self.hosts:
            raise TrunkConfigError("a carrier trunk needs at least one host", key=self.name)
        if self.up_threshold < 1 or self.down_threshold < 1:
            raise TrunkConfigError("up/down thresholds must be at least 1", key=self.name)

    @property
    def request_domain(self) -> str:
        return self.domain or self.hosts[0].host

    def allows_codec(self, name: str) -> bool:
        return not self.codecs or name.upper() in (c.upper() for c in self.codecs)

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], *, key: str = "") -> CarrierTrunk:
        _known_keys(table, _CARRIER_KEYS, key)
        try:
            hosts = tuple(_host(h) for h in _seq(table.get("hosts", ()), "hosts"))
            return cls(
                name=str(table["name"]),
                hosts=hosts,
                domain=str(table.get("domain", "")),
                auth=_account(table),
                caller_id=CallerIdPolicy(**dict(table.get("caller_id", {}))),
                plan=NumberPlan.from_toml(table.get("numbers", {})),
                format=NumberFormat.from_toml(table.get("format", {})),
                codecs=tuple(str(c) for c in _seq(table.get("codecs", ()), "codecs")),
                max_channels=int(table.get("max_channels", 0)),
                max_cps=float(table.get("max_cps", 0.0)),
                cps_burst=float(table.get("cps_burst", 0.0)),
                options_interval=float(table.get("options_interval", 30.0)),
                options_timeout=float(table.get("options_timeout", 5.0)),
                up_threshold=int(table.get("up_threshold", 2)),
                down_threshold=int(table.get("down_threshold", 3)),
                headers=HeaderPolicy.from_toml(table.get("headers", {})),
                media_bypass=_flag(table.get("media_bypass", False), "media_bypass"),
                refer=str(table.get("refer", "terminate")),  # type: ignore[arg-type]  # checked
            )
        except TrunkConfigError as exc:
            raise TrunkConfigError(exc.problem, key=_join(key, _field_key(exc, table))) from None
        except (KeyError, TypeError, ValueError, UsageError) as exc:
            raise TrunkConfigError(_problem(exc), key=key) from None


@dataclass(frozen=True, slots=True)
class CustomerTrunk:
    """A customer system sending calls to us."""

    name: str = _opt(help="Unique trunk name.")
    acl: tuple[Network, ...] = _opt((), help="Source networks (CIDR) identifying the trunk.")
    auth: DigestAccount | None = _opt(None, help="Digest user identifying the trunk; with an "
                                      "ACL as well, both must match.")
    plan: NumberPlan = _opt(help="How the customer dials (national prefix, outside line...).",
                            factory=NumberPlan)
    format: NumberFormat = _opt(help="How numbers are written towards the customer (DID calls).",
                                factory=NumberFormat)
    max_channels: int = _opt(0, help="Concurrent calls (both directions); 0 = unlimited.")
    max_cps: float = _opt(0.0, help="New calls per second; 0 = unlimited.")
    cps_burst: float = _opt(0.0, help="Token bucket depth for max_cps (default: max_cps, at least 1).")
    allowed_destinations: tuple[str, ...] = _opt((), help="E.164 prefixes the trunk may call "
                                                 "(+49, +1800); empty allows all.")
    contact: str = _opt("", help="SIP URI DID calls are sent to (sip:pbx.example.net:5060); "
                        "needed to receive calls.")
    headers: HeaderPolicy = _opt(help="Header policy towards this customer.", factory=HeaderPolicy)
    media_bypass: bool = _opt(False, help="Leave media out of the relay for calls of this "
                              "trunk: SDP addresses pass unchanged.")
    refer: ReferPolicy = _opt("terminate", help=_REFER_HELP)

    def __post_init__(self) -> None:
        _check_common(self.name, self.max_channels, self.max_cps, self.cps_burst, self.refer)
        if not self.acl and self.auth is None:
            raise TrunkConfigError("a customer trunk needs an acl or a digest user", key=self.name)

    def admits(self, address: str) -> bool:
        """Whether a request from ``address`` passes the ACL (True when there is none)."""
        if not self.acl:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.acl)

    def may_call(self, e164: str) -> bool:
        return not self.allowed_destinations or any(e164.startswith(p) for p in self.allowed_destinations)

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], *, key: str = "") -> CustomerTrunk:
        _known_keys(table, _CUSTOMER_KEYS, key)
        try:
            acl = tuple(ipaddress.ip_network(str(n), strict=False) for n in _seq(table.get("acl", ()), "acl"))
            return cls(
                name=str(table["name"]),
                acl=acl,
                auth=_account(table),
                plan=NumberPlan.from_toml(table.get("numbers", {})),
                format=NumberFormat.from_toml(table.get("format", {})),
                max_channels=int(table.get("max_channels", 0)),
                max_cps=float(table.get("max_cps", 0.0)),
                cps_burst=float(table.get("cps_burst", 0.0)),
                allowed_destinations=tuple(dial_digits(str(p)) for p in _seq(
                    table.get("allowed_destinations", ()), "allowed_destinations")),
                contact=str(table.get("contact", "")),
                headers=HeaderPolicy.from_toml(table.get("headers", {})),
                media_bypass=_flag(table.get("media_bypass", False), "media_bypass"),
                refer=str(table.get("refer", "terminate")),  # type: ignore[arg-type]  # checked
            )
        except TrunkConfigError as exc:
            raise TrunkConfigError(exc.problem, key=_join(key, _field_key(exc, table))) from None
        except (KeyError, TypeError, ValueError, UsageError) as exc:
            raise TrunkConfigError(_problem(exc), key=key) from None


DidKind = Literal["user", "trunk", "uri"]


@dataclass(frozen=True, slots=True)
class Did:
    """An inbound number and where its calls go."""

    number: str = _opt(help="E.164 number (+4930123456) or prefix ending in * (+4930123*).")
    kind: DidKind = _opt("trunk", help="user (a registered user), trunk (a customer trunk) or uri.")
    target: str = _opt("", help="User name, customer trunk name or SIP URI.")

    def __post_init__(self) -> None:
        if not self.number.startswith("+"):
            raise TrunkConfigError(f"DID {self.number!r} must be E.164 (+...)")
        if self.kind not in ("user", "trunk", "uri"):
            raise TrunkConfigError(f"DID target kind must be user, trunk or uri, not {self.kind!r}")
        if not self.target:
            raise TrunkConfigError(f"DID {self.number} has no target")

    def matches(self, e164: str) -> bool:
        if self.number.endswith("*"):
            return e164.startswith(self.number[:-1])
        return e164 == self.number

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], *, key: str = "") -> Did:
        """``{number = "+4930123", target = "trunk:pbx1"}`` (or ``user:alice``, ``uri:sip:...``)."""
        try:
            kind, sep, target = str(table["target"]).partition(":")
            if not sep:
                raise TrunkConfigError("target must be trunk:NAME, user:NAME or uri:SIP-URI")
            return cls(dial_digits(str(table["number"])), kind, target)  # type: ignore[arg-type]
        except TrunkConfigError as exc:
            raise TrunkConfigError(exc.problem, key=key) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise TrunkConfigError(_problem(exc), key=key) from None


@dataclass(frozen=True, slots=True)
class TrunkSet:
    """Every trunk and DID, with the lookups the SBC needs."""

    carriers: tuple[CarrierTrunk, ...] = ()
    customers: tuple[CustomerTrunk, ...] = ()
    dids: tuple[Did, ...] = ()

    def __post_init__(self) -> None:
        names = [t.name for t in self.carriers] + [t.name for t in self.customers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TrunkConfigError(f"duplicate trunk names {dupes}")
        known = {c.name for c in self.customers}
        for did in self.dids:
            if did.kind == "trunk" and did.target not in known:
                raise TrunkConfigError(f"DID {did.number} names unknown customer trunk {did.target!r}")

    def carrier(self, name: str) -> CarrierTrunk | None:
        return next((t for t in self.carriers if t.name == name), None)

    def customer(self, name: str) -> CustomerTrunk | None:
        return next((t for t in self.customers if t.name == name), None)

    def carrier_for_source(self, address: str, port: int | None = None) -> CarrierTrunk | None:
        """The carrier one of whose hosts is ``address`` (and ``port``, when given)."""
        for trunk in self.carriers:
            for host in trunk.hosts:
                if host.host == address and (port is None or host.port == port):
                    return trunk
        return None

    def customers_for_source(self, address: str) -> list[CustomerTrunk]:
        """Customer trunks whose ACL admits ``address``, most specific network first; trunks
        identified only by digest user follow (they need credentials to be chosen)."""
        scored: list[tuple[int, CustomerTrunk]] = []
        for trunk in self.customers:
            if trunk.acl:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    continue
                best = max((n.prefixlen for n in trunk.acl if ip in n), default=-1)
                if best >= 0:
                    scored.append((best, trunk))
        ordered = [t for _, t in sorted(scored, key=lambda x: -x[0])]
        return ordered + [t for t in self.customers if not t.acl]

    def customer_for_user(self, username: str) -> CustomerTrunk | None:
        return next((t for t in self.customers if t.auth is not None and t.auth.username == username), None)

    def did_for(self, e164: str) -> Did | None:
        """The exact DID, else the longest matching DID prefix."""
        exact = next((d for d in self.dids if not d.number.endswith("*") and d.number == e164), None)
        if exact is not None:
            return exact
        ranges = [d for d in self.dids if d.number.endswith("*") and d.matches(e164)]
        return max(ranges, key=lambda d: len(d.number), default=None)

    @classmethod
    def from_toml(cls, trunks: Iterable[Mapping[str, Any]] = (), dids: Iterable[Mapping[str, Any]] = ()) -> TrunkSet:
        """Parse ``[[trunks]]`` (each with ``kind = "carrier"`` or ``"customer"``) and ``[[dids]]``."""
        carriers: list[CarrierTrunk] = []
        customers: list[CustomerTrunk] = []
        for i, table in enumerate(trunks):
            key = f"trunks[{i}]"
            kind = table.get("kind", "carrier")
            if kind == "carrier":
                carriers.append(CarrierTrunk.from_toml(table, key=key))
            elif kind == "customer":
                customers.append(CustomerTrunk.from_toml(table, key=key))
            else:
                raise TrunkConfigError(f"kind must be carrier or customer, not {kind!r}", key=key)
        parsed = [Did.from_toml(t, key=f"dids[{i}]") for i, t in enumerate(dids)]
        return cls(tuple(carriers), tuple(customers), tuple(parsed))


def _check_common(name: str, channels: int, cps: float, burst: float, refer: str) -> None:
    if not name or any(c.isspace() for c in name):
        raise TrunkConfigError(f"bad trunk name {name!r}")
    if refer not in _REFER_POLICIES:
        raise TrunkConfigError(f"refer must be terminate, pass or reject, not {refer!r}", key="refer")
    if channels < 0 or cps < 0 or burst < 0:
        raise TrunkConfigError("max_channels, max_cps and cps_burst must not be negative", key=name)


def _seq(value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TrunkConfigError(f"{what} must be a list", key=what)
    return value


def _host(value: Any) -> CarrierHost:
    if isinstance(value, str):
        return CarrierHost.parse(value)
    if isinstance(value, Mapping):
        return CarrierHost(str(value["host"]), int(value.get("port", 5060)), str(value.get("transport", "udp")))
    raise TrunkConfigError(f"bad host {value!r}", key="hosts")


def _account(table: Mapping[str, Any]) -> DigestAccount | None:
    if "username" not in table:
        return None
    return DigestAccount(
        username=str(table["username"]),
        password=str(table.get("password", "")),
        realm=table.get("realm"),
        register=bool(table.get("register", False)),
        register_expires=int(table.get("register_expires", 3600)),
    )


_COMMON_KEYS = frozenset({"name", "kind", "username", "password", "realm", "numbers", "format",
                          "max_channels", "max_cps", "cps_burst", "headers", "media_bypass", "refer"})
_CARRIER_KEYS = _COMMON_KEYS | {"hosts", "domain", "register", "register_expires", "caller_id", "codecs",
                                "options_interval", "options_timeout", "up_threshold", "down_threshold"}
_CUSTOMER_KEYS = _COMMON_KEYS | {"acl", "allowed_destinations", "contact"}


def _known_keys(table: Mapping[str, Any], known: frozenset[str], key: str) -> None:
    """Unknown keys are errors: a misspelt ``max_channel`` must not silently mean "no cap"."""
    if not isinstance(table, Mapping):
        raise TrunkConfigError(f"expected a table, got {type(table).__name__}", key=key)
    for name in table:
        if name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise TrunkConfigError(f"unknown key{hint}", key=_join(key, str(name)))


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise TrunkConfigError(f"expected true or false, got {value!r}", key=what)
    return value


def _field_key(exc: TrunkConfigError, table: Mapping[str, Any]) -> str:
    """The failing field's key; validation of the whole trunk names it by trunk name."""
    return "" if exc.key == str(table.get("name", "")) else exc.key


def _join(outer: str, inner: str) -> str:
    return f"{outer}.{inner}" if outer and inner else outer or inner


def _problem(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    return str(exc)
