"""The one typed configuration of a sipline node, and how it is assembled.

An operator can set the same field four ways, and each later way wins:

    built-in defaults < TOML file < environment (SIPLINE_<SECTION>_<KEY>) < command line

All four feed one loader that knows every field's type from the dataclasses below, so a
value means the same wherever it comes from and every mistake is reported the same way:
the key, the problem and, for the environment and the command line, where it came from
(``config error: [registrar] min_expires: expected an integer, got "abc"``).  Unknown keys
are errors with a did-you-mean, because a silently ignored typo is the worst kind of
misconfiguration.

Some defaults depend on the machine or on other fields (the served domains, the realm, the
SQLite file inside the data directory, TLS listening only when a certificate is set), so
fields start empty and :func:`load_config` fills them in one resolution step after merging.
The result holds no live objects: it can be printed (:func:`dump_toml`), compared and
handed to another process.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import secrets
import socket
import textwrap
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sipline.sip.b2bua.routing import RouteTable
from sipline.sip.b2bua.trunk import TrunkConfigError, TrunkSet
from sipline.sip.errors import SiplineError, UsageError
from sipline.sip.limits import Limits
from sipline.sip.timers import TimerConfig

__all__ = [
    "ConfigError",
    "ListenSpec",
    "StaticRoute",
    "TlsConfig",
    "LimitsConfig",
    "TimersConfig",
    "RegistrarConfig",
    "AuthConfig",
    "ProxyConfig",
    "LoggingConfig",
    "AdminConfig",
    "StorageConfig",
    "SbcConfig",
    "Config",
    "SECTIONS",
    "DEFAULT_DATA_DIR",
    "SECRET_FILE",
    "default_domains",
    "load_config",
    "load_secret",
    "env_var_name",
    "dump_toml",
    "iter_keys",
    "build_trunks",
    "build_routes",
]

#: Where data lives when neither the file, $SIPLINE_DATA nor --data say otherwise.
DEFAULT_DATA_DIR = Path("sipline-data")
#: File in the data directory holding the nonce secret, so restarts keep nonces valid.
SECRET_FILE = "secret"
#: Environment variables with a meaning of their own (not a config field).
_RESERVED_ENV = frozenset({"SIPLINE_CONFIG", "SIPLINE_DATA"})

Transport = Literal["udp", "tcp", "tls", "ws", "wss"]
#: One TOML table of an array of tables (``[[trunks]]``), kept as parsed: plain data.
Table = Mapping[str, Any]
#: Keys that are arrays of tables and therefore can only come from the file.
_FILE_ONLY = frozenset({("proxy", "static_routes"), (None, "trunks"), (None, "dids"), (None, "routes")})
_TRANSPORTS: tuple[str, ...] = typing.get_args(Transport)
_DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}
_DIGEST_ALGORITHMS = ("SHA-256", "MD5", "SHA-512-256")


class ConfigError(SiplineError):
    """A configuration value is missing, malformed or inconsistent.

    ``key`` names it as an operator would look for it (``[auth] realm``, ``listen``),
    ``problem`` says what is wrong and ``origin`` where the value came from when that was
    not the file (an environment variable, the command line).
    """

    def __init__(self, problem: str, *, key: str | None = None, origin: str | None = None) -> None:
        self.problem = problem
        self.key = key
        self.origin = origin
        text = f"{key}: {problem}" if key else problem
        if origin:
            text = f"{text} (from {origin})"
        super().__init__(f"config error: {text}")


def _opt(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    factory: Callable[[], Any] | None = None,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """A dataclass field carrying the help text and bounds the loader and docs use."""
    metadata = {"help": help, "min": min, "max": max}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------------------
# Value types that appear inside sections


def _split_hostport(text: str, *, what: str, whole: str | None = None) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; a bare IPv6 needs brackets.

    Messages quote ``whole`` (the full value the operator wrote) when given.
    """
    try:
        return _split_hostport_unchecked(text, what=what)
    except ValueError as exc:
        if whole is None:
            raise
        raise ValueError(str(exc).replace(repr(text), repr(whole))) from None


def _split_hostport_unchecked(text: str, *, what: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in {what} {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {what} {text!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ']' in {what} {text!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise ValueError(f"IPv6 address in {what} {text!r} must be in brackets, like [::1]:5060")
    else:
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
    if not host:
        raise ValueError(f"missing host in {what} {text!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} in {what} {text!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One listening socket: ``transport:host:port`` (IPv6 hosts in brackets).

    Port 0 asks the system for a free port (tests); the server reports the real one.
    """

    transport: Transport
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.transport not in _TRANSPORTS:
            raise ValueError(f"unknown transport {self.transport!r} (one of {', '.join(_TRANSPORTS)})")
        if not self.host:
            raise ValueError("empty listen host")
        if not 0 <= self.port < 65536:
            raise ValueError(f"listen port out of range: {self.port}")

    @classmethod
    def parse(cls, text: str) -> ListenSpec:
        """Parse ``udp:127.0.0.1:5060``, ``tcp:[::1]:5060``, ``tls:0.0.0.0`` (port 5061).

        Raises ValueError with a message fit for an operator.
        """
        transport, sep, rest = text.strip().partition(":")
        transport = transport.lower()
        if not sep or not rest:
            raise ValueError(f"bad listen address {text!r}, want PROTO:HOST:PORT like udp:0.0.0.0:5060")
        if transport not in _TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r} in {text!r} (one of {', '.join(_TRANSPORTS)})")
        host, port = _split_hostport(rest, what="listen address", whole=text.strip())
        return cls(transport, host, _DEFAULT_PORTS[transport] if port is None else port)  # type: ignore[arg-type]

    @property
    def secure(self) -> bool:
        """True for transports that need [tls] cert and key."""
        return self.transport in ("tls", "wss")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


_ROUTE_KINDS = ("prefix", "domain")


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """A request-URI match and where matching requests go.

    ``match`` is ``prefix:+1555`` (the user part starts with it, digits compared after
    dropping visual separators) or ``domain:example.net`` (the host equals it, or is a
    subdomain when written ``domain:.example.net``).
    """

    match: str
    next_hop: str
    redirect: bool = False

    def __post_init__(self) -> None:
        kind, sep, value = self.match.partition(":")
        if not sep or kind.lower() not in _ROUTE_KINDS or not value:
            raise ValueError(f"bad match {self.match!r}, want prefix:DIGITS or domain:NAME")
        from sipline.sip.errors import ProtocolError
        from sipline.sip.message.uri import SipURI, parse_uri

        try:
            uri = parse_uri(self.next_hop)
        except ProtocolError as exc:
            raise ValueError(f"bad next_hop {self.next_hop!r}: {exc}") from None
        if not isinstance(uri, SipURI):
            raise ValueError(f"next_hop {self.next_hop!r} must be a sip: or sips: URI")

    @property
    def kind(self) -> str:
        """``prefix`` or ``domain``."""
        return self.match.partition(":")[0].lower()

    @property
    def value(self) -> str:
        return self.match.partition(":")[2]

    def matches(self, user: str | None, host: str) -> bool:
        """Whether a request-URI with this user part and host takes this route."""
        if self.kind == "domain":
            want, host = self.value.lower(), host.lower()
            if want.startswith("."):
                return host == want[1:] or host.endswith(want)
            return host == want
        if user is None:
            return False
        return _dial_digits(user).startswith(_dial_digits(self.value))


def _dial_digits(text: str) -> str:
    return re.sub(r"[\s\-.()]", "", text)


# ---------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Certificate and trust for TLS and WSS listeners and outgoing TLS connections."""

    cert: Path | None = _opt(None, help="PEM certificate chain served on TLS/WSS listeners; "
                             "setting it also adds a default tls listener on port 5061.")
    key: Path | None = _opt(None, help="PEM private key for cert; leave unset when the key "
                            "is in the cert file.")
    ca_file: Path | None = _opt(None, help="PEM bundle of CAs trusted for peers; unset uses "
                                "the system store.")
    verify_peer: bool = _opt(False, help="Require and verify client certificates on "
                             "incoming TLS (mutual TLS); outgoing connections always verify.")


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Bounds on what a peer can make the server hold in memory (413 or 400 beyond)."""

    max_message_size: int = _opt(65535, help="Largest whole SIP message accepted, in bytes.",
                                 min=512)
    max_header_size: int = _opt(32768, help="Largest start line plus headers, in bytes.",
                                min=256)
    max_headers: int = _opt(256, help="Most header fields in one message.", min=8)
    max_vias: int = _opt(70, help="Most Via values in one message (loops, attacks).", min=1)
    max_body_size: int = _opt(65535, help="Largest message body, in bytes.", min=0)

    def to_limits(self) -> Limits:
        return Limits(
            max_message_size=self.max_message_size,
            max_header_size=self.max_header_size,
            max_headers=self.max_headers,
            max_vias=self.max_vias,
            max_body_size=self.max_body_size,
        )


@dataclass(frozen=True, slots=True)
class TimersConfig:
    """Protocol timers of RFC 3261 §17, in seconds; raise T1 on slow links only."""

    t1: float = _opt(0.5, help="Round-trip estimate T1; retransmissions start here and "
                     "transactions time out after 64*T1.", min=0.001)
    t2: float = _opt(4.0, help="Longest retransmit interval T2 (at least t1).", min=0.001)
    t4: float = _opt(5.0, help="Longest time a message stays in the network T4.", min=0.0)
    timer_c: float = _opt(180.0, help="Proxy INVITE timeout (timer C, RFC 3261 §16.6): "
                          "give up on a ringing branch after this long; RFC says > 180.",
                          min=0.001)
    timer_d: float = _opt(32.0, help="Wait for response retransmissions after an INVITE "
                          "failure over UDP (timer D, at least 32).", min=0.0)

    def to_timer_config(self) -> TimerConfig:
        return TimerConfig(t1=self.t1, t2=self.t2, t4=self.t4, timer_c=self.timer_c,
                           timer_d=self.timer_d)


@dataclass(frozen=True, slots=True)
class RegistrarConfig:
    """How long registrations may last (RFC 3261 §10.3)."""

    min_expires: int = _opt(60, help="Shortest registration accepted; shorter requests get "
                            "423 Interval Too Brief.", min=1)
    max_expires: int = _opt(7200, help="Longest registration granted; longer requests are "
                            "shortened to this.", min=1)
    default_expires: int = _opt(3600, help="Registration time when the REGISTER names none.",
                                min=1)
    max_contacts_per_aor: int = _opt(10, help="Most contacts one address-of-record may "
                                     "register at once.", min=1)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Digest authentication of REGISTER and of calls from local users."""

    realm: str = _opt("", help="Digest realm users authenticate in; empty means each domain "
                      "is its own realm. Changing it invalidates stored password hashes.")
    algorithms: tuple[str, ...] = _opt(("SHA-256", "MD5"), help="Digest algorithms offered, "
                                       "in order (SHA-256, MD5, SHA-512-256).")
    nonce_lifetime: int = _opt(300, help="Seconds a nonce stays valid before the client is "
                               "asked again with stale=true.", min=1)
    secret: str | None = _opt(None, help="Key for stateless nonces, shared by every node of "
                              "a cluster; unset means one generated once and kept in "
                              "<data_dir>/secret.")
    require_auth_for_local_callers: bool = _opt(True, help="Challenge requests whose From "
                                                "is one of our domains before routing them.")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Routing of requests that are not for the registrar."""

    record_route: bool = _opt(True, help="Stay in the path of dialogs (Record-Route), needed "
                              "for NAT traversal and call accounting.")
    fork_mode: Literal["parallel", "sequential"] = _opt("parallel", help="Try a user's "
                                                        "contacts all at once or one by one "
                                                        "in q order.")
    routing_module: str | None = _opt(None, help="Python module (pkg.mod) or .py file "
                                      "defining route(request, ctx) to decide routing.")
    static_routes: tuple[StaticRoute, ...] = _opt((), help="Requests whose URI matches "
                                                  "(prefix:+1555 or domain:example.net) go "
                                                  "to next_hop, or are redirected there when "
                                                  "redirect = true; first match wins.")
    redirect_domains: tuple[str, ...] = _opt((), help="Domains answered with 302 to the "
                                             "registered contacts instead of proxied.")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Where log lines go and what they look like."""

    level: Literal["trace", "debug", "info", "warning", "error"] = _opt(
        "info", help="Least severe level logged; trace adds every message on the wire.")
    file: Path | None = _opt(None, help="Append to this file instead of stderr; SIGUSR1 "
                             "reopens it after rotation.")
    format: Literal["text", "json"] = _opt("text", help="text for people, json for one "
                                           "object per line.")
    color: Literal["auto", "always", "never"] = _opt("auto", help="Colour levels: auto "
                                                     "only on a terminal (and not when "
                                                     "NO_COLOR is set).")


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The local HTTP endpoint that ``sipline registrations`` and ``sipline calls`` query."""

    enabled: bool = _opt(True, help="Serve the admin endpoint.")
    listen: str = _opt("127.0.0.1:0", help="Loopback host:port (port 0: any free port); "
                       "the bound address is written to <data_dir>/admin.port.")

    @property
    def host(self) -> str:
        return _split_hostport(self.listen, what="admin listen")[0]

    @property
    def port(self) -> int:
        return _split_hostport(self.listen, what="admin listen")[1] or 0


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where each kind of data goes when it is not ``storage_url``'s backend."""

    cdr: str = _opt("", help="Call records: postgresql://user:password@host:port/db sends them "
                    "to PostgreSQL (billing and reports read them there; the password may come "
                    "from PGPASSWORD or ~/.pgpass instead), sqlite:///path to a file of their own. "
                    "Default: storage_url's backend (with redis, memory only).")


MediaMode = Literal["relay", "rtpengine", "off"]


@dataclass(frozen=True, slots=True)
class SbcConfig:
    """The B2BUA/SBC, which runs when ``[[trunks]]`` are configured."""

    listen: tuple[ListenSpec, ...] = _opt((), help="Sockets of the SBC's own, PROTO:HOST:PORT. "
                                          "Empty: the SBC shares the server's listeners and "
                                          "gets new calls from trunk sources and to DIDs.")
    advertise: str = _opt("", help="Address written in Via, Contact and SDP towards trunks "
                          "(a public address in front of NAT). Default: the listener's.")
    realm: str = _opt("sipline", help="Digest realm in which customer trunks with a "
                      "username authenticate.")
    ring_timeout: float = _opt(120.0, help="Give up on a call that is not answered within "
                               "this many seconds (408).", min=1.0)
    retry_after: int = _opt(5, help="Retry-After seconds on calls refused by a channel or "
                            "CPS cap (503).", min=1)
    health_checks: bool = _opt(True, help="Send OPTIONS keepalives to carrier hosts "
                               "(interval per trunk, options_interval).")
    media: MediaMode = _opt("relay", help="Media anchoring: relay (built-in RTP relay), "
                            "rtpengine (drive an rtpengine over its ng protocol) or off "
                            "(SDP addresses pass unchanged).")
    media_address: str = _opt("", help="Address the relay binds and writes into SDP. "
                              "Default: advertise, else the SBC's listener address.")
    rtp_port_min: int = _opt(20000, help="First port of the relay's RTP range (even).",
                             min=1024, max=65534)
    rtp_port_max: int = _opt(29999, help="Last port of the relay's RTP range; its size "
                             "bounds concurrent relayed calls (4 ports each).", min=1025,
                             max=65535)
    rtpengine: str = _opt("127.0.0.1:2223", help="host:port of rtpengine's ng control "
                          "socket when media = rtpengine.")
    media_timeout: float = _opt(60.0, help="Built-in relay: hang up an answered call (BYE "
                                "on both legs, call record reason \"media timeout\") when no "
                                "RTP or RTCP arrives from either side for this many seconds; "
                                "0 turns it off.", min=0.0)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a node needs to start; sections mirror the TOML file."""

    listen: tuple[ListenSpec, ...] = _opt((), help="Sockets to listen on, PROTO:HOST:PORT "
                                          "(udp, tcp, tls, ws, wss). Default: udp and tcp "
                                          "on 0.0.0.0:5060, plus tls on 5061 when [tls] cert "
                                          "is set.")
    domains: tuple[str, ...] = _opt((), help="Domains this server is responsible for "
                                    "(registrar and proxy). Default: the host name, its "
                                    "FQDN and the machine's IP addresses.")
    data_dir: Path = _opt(DEFAULT_DATA_DIR, help="Directory for the database, the nonce "
                          "secret and admin.port. Default: ./sipline-data or $SIPLINE_DATA.")
    storage_url: str = _opt("", help="sqlite:///path, memory:// or redis://host:port/db. "
                            "Default: sqlite file sipline.db in data_dir.")
    workers: int = _opt(1, help="Worker processes sharing the listeners.", min=1, max=256)
    node_id: str = _opt("", help="Name of this node in a cluster (logs, shared "
                        "registrations). Default: the host name.")
    drain_timeout: float = _opt(10.0, help="On shutdown, seconds to let calls and "
                                "transactions finish before cancelling them.", min=0.0)
    route_table: Path | None = _opt(None, help="CSV file of routes (prefix, carrier, "
                                    "priority, weight, rate columns) added to [[routes]].")
    trunks: tuple[Table, ...] = _opt((), help="[[trunks]] tables: carrier and customer "
                                     "trunks of the SBC (see sipline.sip.b2bua.trunk).")
    dids: tuple[Table, ...] = _opt((), help="[[dids]] tables: inbound numbers and where "
                                   "their calls go (trunk:NAME, user:NAME, uri:SIP-URI).")
    routes: tuple[Table, ...] = _opt((), help="[[routes]] tables: prefix, carrier, priority, "
                                     "weight, rate; longest prefix wins.")
    tls: TlsConfig = _opt(help="TLS certificates.", factory=TlsConfig)
    limits: LimitsConfig = _opt(help="Message size limits.", factory=LimitsConfig)
    timers: TimersConfig = _opt(help="SIP timers.", factory=TimersConfig)
    registrar: RegistrarConfig = _opt(help="Registrar.", factory=RegistrarConfig)
    auth: AuthConfig = _opt(help="Digest authentication.", factory=AuthConfig)
    proxy: ProxyConfig = _opt(help="Proxy routing.", factory=ProxyConfig)
    logging: LoggingConfig = _opt(help="Logging.", factory=LoggingConfig)
    admin: AdminConfig = _opt(help="Admin endpoint.", factory=AdminConfig)
    storage: StorageConfig = _opt(help="Storage per kind of data.", factory=StorageConfig)
    sbc: SbcConfig = _opt(help="B2BUA/SBC.", factory=SbcConfig)


#: Section name -> section class, in the order they are documented and printed.
SECTIONS: Mapping[str, type] = {
    name: tp
    for name, tp in typing.get_type_hints(Config).items()
    if isinstance(tp, type) and dataclasses.is_dataclass(tp)
}
_TOP_KEYS = tuple(f.name for f in dataclasses.fields(Config) if f.name not in SECTIONS)


def iter_keys() -> Iterable[tuple[str | None, dataclasses.Field[Any]]]:
    """Every configurable field as ``(section or None, field)``, in documentation order."""
    for f in dataclasses.fields(Config):
        if f.name not in SECTIONS:
            yield None, f
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            yield name, f


def env_var_name(section: str | None, key: str) -> str:
    """``SIPLINE_LOGGING_LEVEL`` for ``[logging] level``, ``SIPLINE_LISTEN`` for ``listen``."""
    return "_".join(["SIPLINE", *([section] if section else []), key]).upper()


def _label(section: str | None, key: str) -> str:
    return f"[{section}] {key}" if section else key


# ---------------------------------------------------------------------------------------
# Machine defaults


def default_domains() -> tuple[str, ...]:
    """The host name, its FQDN and this machine's addresses (127.0.0.1 always included).

    Addresses come from resolving the host name and from asking the kernel which source
    address it would use towards a public destination (a UDP connect sends nothing).
    """
    names: list[str] = []

    def add(name: str) -> None:
        name = name.strip().lower().rstrip(".")
        if name and name not in names and name != "localhost":
            names.append(name)

    host = socket.gethostname()
    add(host)
    try:
        add(socket.getfqdn(host))
    except OSError:  # pragma: no cover - resolver failure
        pass
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                add(sock.getsockname()[0].split("%", 1)[0])
        except OSError:
            pass
    try:
        for info in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM):
            address = str(info[4][0]).split("%", 1)[0]
            if not ipaddress.ip_address(address).is_link_local:
                add(address)
    except (OSError, ValueError):
        pass
    add("127.0.0.1")
    return tuple(names)


def load_secret(config: Config, *, create: bool = True) -> bytes:
    """The nonce secret: ``[auth] secret`` if set, else ``<data_dir>/secret``.

    The file is created (mode 0600) with 32 random bytes the first time, so nonces
    survive restarts; with ``create=False`` a missing file raises FileNotFoundError.
    """
    if config.auth.secret:
        return config.auth.secret.encode()
    path = config.data_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        if not create:
            raise
    except ValueError:
        raise ConfigError(f"{path} is not a hex secret; delete it to get a new one") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value.hex() + "\n")
    return value


# ---------------------------------------------------------------------------------------
# Converting one raw value to its field's type


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return str(value)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _convert(value: Any, tp: Any, *, text: bool) -> Any:
    """Convert ``value`` to ``tp``; ``text`` allows strings for everything (env, CLI).

    Raises ValueError with the problem only; the caller adds key and origin.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        if value is None or (text and isinstance(value, str) and value.strip() in ("", "none")):
            return None
        return _convert(value, inner, text=text)
    if origin is Literal:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_show(value)}")
        choices = [str(a) for a in args]
        if value.lower() in choices:
            return value.lower()
        hint = difflib.get_close_matches(value.lower(), choices, n=1)
        extra = f"; did you mean \"{hint[0]}\"?" if hint else ""
        raise ValueError(f"expected one of {', '.join(choices)}, got {_show(value)}{extra}")
    if origin is tuple:
        item = args[0]
        if text and isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        if not isinstance(value, (list, tuple)):
            what = "tables" if item is StaticRoute or item is Table else "strings"
            advice = f" (write [{_show(value)}])" if isinstance(value, str) else ""
            raise ValueError(f"expected a list of {what}, got {_show(value)}{advice}")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(_convert(element, item, text=text))
            except ValueError as exc:
                raise ValueError(f"item {index + 1}: {exc}") from None
        return tuple(out)
    if tp is Table:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a table, got {_show(value)}")
        return _plain(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            if text:
                try:
                    return int(value.strip())
                except ValueError:
                    pass
            elif value.strip().lstrip("-").isdigit():
                raise ValueError(f"expected an integer, got {_show(value)} (write it without quotes)")
        raise ValueError(f"expected an integer, got {_show(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif text and isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"expected a number, got {_show(value)}") from None
        else:
            raise ValueError(f"expected a number, got {_show(value)}")
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {_show(value)}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {_show(value)}")
    if tp is Path:
        if isinstance(value, Path):
            return value
        if isinstance(value, str) and value:
            return Path(value).expanduser()
        raise ValueError(f"expected a path, got {_show(value)}")
    if tp is ListenSpec:
        if isinstance(value, ListenSpec):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a string like \"udp:0.0.0.0:5060\", got {_show(value)}")
        return ListenSpec.parse(value)
    if tp is StaticRoute:
        if isinstance(value, StaticRoute):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a table with match and next_hop, got {_show(value)}")
        return _build_route(value, text=text)
    raise TypeError(f"unsupported config type {tp!r}")  # pragma: no cover - programming error


def _plain(value: Any) -> Any:
    """A deep copy of TOML data as dicts and lists (no references into the caller's data)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build_route(table: Mapping[str, Any], *, text: bool) -> StaticRoute:
    known = {f.name: f for f in dataclasses.fields(StaticRoute)}
    hints = typing.get_type_hints(StaticRoute)
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(key, list(known), n=1)
            extra = f"; did you mean {hint[0]}?" if hint else ""
            raise ValueError(f"unknown key {key!r}{extra}")
    for key in ("match", "next_hop"):
        if key not in table:
            raise ValueError(f"missing {key}")
    values = {}
    for key, raw in table.items():
        try:
            values[key] = _convert(raw, hints[key], text=text)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return StaticRoute(**values)


# ---------------------------------------------------------------------------------------
# Layers: file, environment, command line


@dataclass(slots=True)
class _Value:
    value: Any
    origin: str | None  # None: the config file


def _suggest(word: str, choices: Iterable[str]) -> str:
    hint = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {hint[0]}?" if hint else ""


class _Merger:
    """Collects converted values per (section, key); later layers overwrite earlier."""

    def __init__(self) -> None:
        self.values: dict[tuple[str | None, str], _Value] = {}
        self._hints = {name: typing.get_type_hints(cls) for name, cls in SECTIONS.items()}
        self._hints[""] = typing.get_type_hints(Config)

    def _fields(self, section: str | None) -> dict[str, dataclasses.Field[Any]]:
        if section is None:
            return {f.name: f for f in dataclasses.fields(Config) if f.name in _TOP_KEYS}
        return {f.name: f for f in dataclasses.fields(SECTIONS[section])}

    def set(self, section: str | None, key: str, raw: Any, *, origin: str | None, text: bool) -> None:
        fields = self._fields(section)
        if key not in fields:
            elsewhere = [s for s in SECTIONS if key in self._fields(s)]
            if section is None and key in SECTIONS:
                problem = f"must be a [{key}] table, got {_show(raw)}"
            elif elsewhere:
                problem = f"unknown key; did you mean {_label(elsewhere[0], key)}?"
            else:
                problem = "unknown key" + _suggest(key, fields)
            raise ConfigError(problem, key=_label(section, key), origin=origin)
        try:
            value = _convert(raw, self._hints[section or ""][key], text=text)
            _check_bounds(fields[key], value)
        except ValueError as exc:
            raise ConfigError(str(exc), key=_label(section, key), origin=origin) from None
        self.values[(section, key)] = _Value(value, origin)

    def table(self, data: Mapping[str, Any], *, origin: str | None, text: bool) -> None:
        """Merge a TOML-shaped mapping (``{"logging": {"level": ...}, "listen": [...]}``)."""
        for key, raw in data.items():
            if "." in key and key.split(".", 1)[0] in SECTIONS:
                section, sub = key.split(".", 1)
                self.set(section, sub, raw, origin=origin, text=text)
            elif key in SECTIONS:
                if not isinstance(raw, Mapping):
                    raise ConfigError(f"expected a table, got {_show(raw)}", key=f"[{key}]",
                                      origin=origin)
                for sub, value in raw.items():
                    self.set(key, sub, value, origin=origin, text=text)
            elif isinstance(raw, Mapping) and key not in _TOP_KEYS:
                hint = difflib.get_close_matches(key, list(SECTIONS), n=1, cutoff=0.6)
                extra = f"; did you mean [{hint[0]}]?" if hint else ""
                raise ConfigError("unknown section" + extra, key=f"[{key}]", origin=origin)
            else:
                self.set(None, key, raw, origin=origin, text=text)

    def environment(self, env: Mapping[str, str]) -> None:
        names = {env_var_name(section, f.name): (section, f.name) for section, f in iter_keys()}
        file_only = {env_var_name(section, key): (section, key) for section, key in _FILE_ONLY}
        for var in file_only:
            names.pop(var)  # lists of tables: file only
        for var in sorted(env):
            if not var.startswith("SIPLINE_") or var in _RESERVED_ENV:
                continue
            if var in names:
                section, key = names[var]
                self.set(section, key, env[var], origin=var, text=True)
                continue
            if var in file_only:
                section, key = file_only[var]
                what = "static routes" if key == "static_routes" else f"[[{key}]] tables"
                raise ConfigError(f"{what} can only be set in the config file",
                                  key=_label(section, key), origin=var)
            # Ours if it names a known section or nearly matches a known variable; any
            # other SIPLINE_* variable may belong to a test harness or wrapper script.
            section_part = var[len("SIPLINE_") :].split("_", 1)[0].lower()
            hint = difflib.get_close_matches(var, list(names), n=1, cutoff=0.85)
            if section_part in SECTIONS or hint:
                extra = f"; did you mean {hint[0]}?" if hint else ""
                raise ConfigError(f"unknown environment variable {var}{extra}")


def _check_bounds(f: dataclasses.Field[Any], value: Any) -> None:
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            raise ValueError(f"must be at least {low:g}, got {value:g}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high:g}, got {value:g}")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


# ---------------------------------------------------------------------------------------
# Assembly and cross-field checks


def load_config(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    domains_provider: Callable[[], tuple[str, ...]] | None = None,
) -> Config:
    """Build the effective configuration: defaults < ``path`` < ``env`` < ``overrides``.

    ``env`` is usually ``os.environ`` (nothing is read from the process unless passed).
    ``overrides`` is TOML-shaped (``{"listen": [...], "logging": {"level": "debug"}}``)
    or uses dotted keys (``{"logging.level": "debug"}``); strings are parsed as in the
    environment.  ``domains_provider`` replaces :func:`default_domains`.
    Raises ConfigError naming the key and the problem.
    """
    merger = _Merger()
    if path is not None:
        merger.table(_read_file(Path(path)), origin=None, text=False)
    env = env or {}
    if env.get("SIPLINE_DATA"):
        merger.set(None, "data_dir", env["SIPLINE_DATA"], origin="SIPLINE_DATA", text=True)
    merger.environment(env)
    if overrides:
        merger.table(overrides, origin="the command line", text=True)
    provider = domains_provider or default_domains
    return _assemble(merger.values, provider)


def _assemble(values: Mapping[tuple[str | None, str], _Value],
              provider: Callable[[], tuple[str, ...]]) -> Config:
    def given(section: str | None, key: str) -> _Value | None:
        return values.get((section, key))

    def origin(section: str | None, key: str) -> str | None:
        found = given(section, key)
        return found.origin if found else None

    sections = {}
    for name, cls in SECTIONS.items():
        kwargs = {key: v.value for (section, key), v in values.items() if section == name}
        sections[name] = cls(**kwargs)
    top = {key: v.value for (section, key), v in values.items() if section is None}
    config = Config(**top, **sections)

    # Domains first: the realm and the banner derive from them.
    # IPv6 domains are kept without brackets, as SipURI.host holds them.
    domains = tuple(dict.fromkeys(
        d.strip().lower().removeprefix("[").removesuffix("]") for d in config.domains if d.strip()
    ))
    for domain in domains:
        if not re.fullmatch(r"[a-z0-9.\-:_]+", domain):
            raise ConfigError(f"bad domain {domain!r}", key="domains", origin=origin(None, "domains"))
    if not domains:
        domains = provider() or ("127.0.0.1",)

    data_dir = Path(os.path.abspath(config.data_dir))
    storage_url = config.storage_url or f"sqlite://{data_dir / 'sipline.db'}"
    cdr = config.storage.cdr.strip()
    scheme, sep, rest = cdr.partition("://")
    if cdr and (not sep or not rest or scheme.lower() not in ("postgresql", "postgres", "sqlite")):
        from sipline.storage._logic import redact_url

        raise ConfigError(f"expected postgresql://user:password@host:port/db or sqlite:///path, "
                          f"got \"{redact_url(cdr)}\"", key="[storage] cdr", origin=origin("storage", "cdr"))

    tls = config.tls
    for key in ("cert", "key", "ca_file"):
        file = getattr(tls, key)
        if file is not None and not Path(file).is_file():
            raise ConfigError(f"file not found: {file}", key=f"[tls] {key}", origin=origin("tls", key))
    if tls.key is not None and tls.cert is None:
        raise ConfigError("key set without cert", key="[tls] key", origin=origin("tls", "key"))

    listen = config.listen
    if not listen:
        listen = (ListenSpec("udp", "0.0.0.0", 5060), ListenSpec("tcp", "0.0.0.0", 5060))
        if tls.cert is not None:
            listen += (ListenSpec("tls", "0.0.0.0", 5061),)
    listen = tuple(dict.fromkeys(listen))
    for spec in listen:
        if spec.secure and tls.cert is None:
            raise ConfigError(f"{spec} needs a certificate: set [tls] cert", key="listen",
                              origin=origin(None, "listen"))

    timers = config.timers
    if timers.t2 < timers.t1:
        raise ConfigError(f"must not be below t1 ({timers.t1:g}), got {timers.t2:g}",
                          key="[timers] t2", origin=origin("timers", "t2"))

    reg = config.registrar
    if reg.max_expires < reg.min_expires:
        raise ConfigError(f"must not be below min_expires ({reg.min_expires}), got {reg.max_expires}",
                          key="[registrar] max_expires", origin=origin("registrar", "max_expires"))
    if not reg.min_expires <= reg.default_expires <= reg.max_expires:
        raise ConfigError(
            f"must lie within min_expires..max_expires ({reg.min_expires}..{reg.max_expires}), "
            f"got {reg.default_expires}",
            key="[registrar] default_expires", origin=origin("registrar", "default_expires"))

    auth = config.auth
    algorithms = tuple(a.upper() for a in auth.algorithms)
    for name in algorithms:
        if name not in _DIGEST_ALGORITHMS:
            raise ConfigError(f"unsupported algorithm {name!r} (use {', '.join(_DIGEST_ALGORITHMS)})",
                              key="[auth] algorithms", origin=origin("auth", "algorithms"))
    if not algorithms:
        raise ConfigError("at least one algorithm is needed", key="[auth] algorithms",
                          origin=origin("auth", "algorithms"))
    if auth.secret is not None and len(auth.secret.encode()) < 16:
        raise ConfigError("must be at least 16 bytes long", key="[auth] secret",
                          origin=origin("auth", "secret"))
    auth = dataclasses.replace(auth, realm=auth.realm,
                               algorithms=tuple(dict.fromkeys(algorithms)))

    proxy = config.proxy
    module = proxy.routing_module
    if module is not None:
        if module.endswith(".py"):
            if not Path(module).is_file():
                raise ConfigError(f"file not found: {module}", key="[proxy] routing_module",
                                  origin=origin("proxy", "routing_module"))
        elif not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module):
            raise ConfigError(f"expected a module name like pkg.routing or a .py file, got \"{module}\"",
                              key="[proxy] routing_module", origin=origin("proxy", "routing_module"))
    proxy = dataclasses.replace(
        proxy, redirect_domains=tuple(d.strip().lower() for d in proxy.redirect_domains))

    admin = config.admin
    try:
        host = admin.host
        admin.port  # noqa: B018 - validates the port
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError as exc:
        raise ConfigError(str(exc), key="[admin] listen", origin=origin("admin", "listen")) from None
    if not loopback:
        raise ConfigError(f"must be a loopback address (the endpoint has no authentication), got \"{host}\"",
                          key="[admin] listen", origin=origin("admin", "listen"))

    sbc = config.sbc
    if sbc.rtp_port_max - sbc.rtp_port_min < 3:
        raise ConfigError(f"must be at least rtp_port_min + 3 ({sbc.rtp_port_min + 3}), got {sbc.rtp_port_max}",
                          key="[sbc] rtp_port_max", origin=origin("sbc", "rtp_port_max"))
    try:
        _split_hostport(sbc.rtpengine, what="rtpengine address")
    except ValueError as exc:
        raise ConfigError(str(exc), key="[sbc] rtpengine", origin=origin("sbc", "rtpengine")) from None
    for spec in sbc.listen:
        if spec.transport not in ("udp", "tcp", "tls"):
            raise ConfigError(f"{spec}: the SBC listens on udp, tcp or tls", key="[sbc] listen",
                              origin=origin("sbc", "listen"))
        if spec.secure and tls.cert is None:
            raise ConfigError(f"{spec} needs a certificate: set [tls] cert", key="[sbc] listen",
                              origin=origin("sbc", "listen"))
    if config.route_table is not None and not Path(config.route_table).is_file():
        raise ConfigError(f"file not found: {config.route_table}", key="route_table",
                          origin=origin(None, "route_table"))
    trunks = build_trunks(config)
    routes = build_routes(config)
    known = {t.name for t in trunks.carriers}
    for index, route in enumerate(routes.routes):
        if route.carrier not in known:
            where = f"routes[{index}]" if index < len(config.routes) else "route_table"
            raise ConfigError(f"carrier {route.carrier!r} is not a carrier trunk"
                              + _suggest(route.carrier, known), key=where)

    return dataclasses.replace(
        config,
        listen=listen,
        domains=domains,
        data_dir=data_dir,
        storage_url=storage_url,
        storage=dataclasses.replace(config.storage, cdr=cdr),
        node_id=config.node_id or socket.gethostname().split(".")[0] or "sipline",
        auth=auth,
        proxy=proxy,
    )


def build_trunks(config: Config) -> TrunkSet:
    """The SBC's trunks and DIDs from ``[[trunks]]`` and ``[[dids]]``.

    Parsing is delegated to :meth:`TrunkSet.from_toml`; its errors come back as ConfigError
    naming the key (``trunks[1].max_channels``).
    """
    try:
        return TrunkSet.from_toml(config.trunks, config.dids)
    except TrunkConfigError as exc:
        key = exc.key or ("dids" if "DID" in exc.problem else "trunks")
        raise ConfigError(exc.problem, key=key) from None


def build_routes(config: Config) -> RouteTable:
    """``[[routes]]`` followed by the rows of the ``route_table`` CSV file."""
    try:
        table = RouteTable.from_toml(config.routes)
    except UsageError as exc:
        where, sep, problem = str(exc).partition(": ")
        raise ConfigError(problem if sep else str(exc), key=where if sep else "routes") from None
    if config.route_table is None:
        return table
    path = Path(config.route_table)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", key="route_table") from None
    try:
        extra = RouteTable.from_csv(text)
    except UsageError as exc:
        raise ConfigError(f"{path}: {exc}", key="route_table") from None
    return RouteTable((*table.routes, *extra.routes))


# ---------------------------------------------------------------------------------------
# Printing a configuration back as TOML


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    # JSON string escapes are valid TOML basic-string escapes, except that TOML also
    # forbids a raw DEL character.
    return json.dumps(text).replace("\x7f", "\\u007f")


def _help_lines(f: dataclasses.Field[Any]) -> list[str]:
    return ["# " + line for line in textwrap.wrap(f.metadata.get("help", ""), 86)]


def dump_toml(config: Config, *, comments: bool = False) -> str:
    """The configuration as TOML that :func:`load_config` reads back to the same value, less credentials.

    Credentials are never printed: ``[auth] secret``, trunk passwords and the password
    inside a storage URL appear as a commented-out line saying they are set, because
    ``config show`` output ends up in tickets and chat.  Unset optional keys appear
    commented out.
    """
    lines: list[str] = []

    def emit(f: dataclasses.Field[Any], value: Any) -> None:
        if comments:
            lines.extend(_help_lines(f))
        if value is None:
            lines.append(f"# {f.name} =")
        else:
            lines.append(_key_line(f.name, value))

    arrays: list[tuple[dataclasses.Field[Any], tuple[Table, ...]]] = []
    for section, f in iter_keys():
        if section is None:
            if (None, f.name) in _FILE_ONLY:
                arrays.append((f, getattr(config, f.name)))
                continue
            emit(f, getattr(config, f.name))
    for name in SECTIONS:
        section_value = getattr(config, name)
        lines.append("")
        lines.append(f"[{name}]")
        routes: tuple[StaticRoute, ...] = ()
        for f in dataclasses.fields(section_value):
            value = getattr(section_value, f.name)
            if f.name == "static_routes":
                routes = value
                if comments:
                    lines.extend(_help_lines(f))
                if not routes:
                    lines.append("# static_routes: none; add [[proxy.static_routes]] tables")
                continue
            emit(f, value)
        for route in routes:
            lines.append("")
            lines.append(f"[[{name}.static_routes]]")
            lines.append(f"match = {_toml_value(route.match)}")
            lines.append(f"next_hop = {_toml_value(route.next_hop)}")
            lines.append(f"redirect = {_toml_value(route.redirect)}")
    # Arrays of tables last: after a [section] header, [[name]] starts a top-level array.
    for f, tables in arrays:
        if comments:
            lines.append("")
            lines.extend(_help_lines(f))
        for table in tables:
            lines.append("")
            lines.append(f"[[{f.name}]]")
            lines.extend(_key_line(k, v) for k, v in table.items())
    return "\n".join(lines).lstrip("\n") + "\n"


def _key_line(name: str, value: Any) -> str:
    """One ``key = value`` line of :func:`dump_toml`, with credentials left out."""
    from sipline.storage._logic import redact_url

    if name in ("secret", "password") and value:
        return f"# {_toml_key(name)} = (set; not shown)"
    if isinstance(value, str) and "://" in value and redact_url(value) != value:
        return f"# {_toml_key(name)} = {_toml_value(redact_url(value))} (password not shown)"
    return f"{_toml_key(name)} = {_toml_value(value)}"
