"""Immutable SDP model (RFC 8866) with typed views over the attributes SIP cares about.

Why the model looks like this:

* Every line of a parsed description is kept, in order, unknown attributes included, so a
  proxy or B2BUA that only rewrites ``c=`` and a port re-emits everything else byte for byte.
  Typed data (rtpmap, fmtp, ptime, direction) is *derived* on demand from the kept attribute
  lines rather than stored twice, so the two can never disagree.
* Values validate themselves in ``__post_init__``: an SDP value that cannot be written
  correctly cannot be built.  Local misuse raises :class:`UsageError`; the parser turns the
  same complaint into a :class:`ParseError` that names the offending line.
* Updates are functional (``with_port``, ``with_direction`` ...): hold/resume and media relay
  produce new descriptions and leave the one a dialog remembers untouched.
* Typed views are deliberately lenient: a broken ``a=rtpmap:31 LPC`` (seen in RFC 4475 test
  messages) does not make a whole session unusable; the view simply ignores it and the static
  payload table stands in.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .serializer import render_media, render_session

__all__ = [
    "Direction",
    "Origin",
    "Connection",
    "Bandwidth",
    "Timing",
    "Attribute",
    "RtpMap",
    "STATIC_PAYLOAD_TYPES",
    "MediaDescription",
    "SessionDescription",
]

# token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
# token      = 1*(token-char)                                   (RFC 8866 §9)
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_TOKEN_RE = re.compile(_TOKEN)
# proto = token *("/" token)
_PROTO_RE = re.compile(rf"{_TOKEN}(?:/{_TOKEN})*")
# non-ws-string = 1*(VCHAR / %x80-FF)
_NON_WS_RE = re.compile(r"[\x21-\x7e\x80-\U0010ffff]+")
# FQDN = 4*(alpha-numeric / "-" / ".") -- we accept any host-ish name (no length floor:
# "localhost"-style names are common in lab SDP).
_FQDN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?")
# typed-time = 1*DIGIT [fixed-len-time-unit]; fixed-len-time-unit = "d" / "h" / "m" / "s"
_TYPED_TIME = r"[0-9]+[dhms]?"
# repeat-fields = %s"r" "=" repeat-interval SP typed-time 1*(SP typed-time)
_REPEAT_RE = re.compile(rf"[1-9][0-9]*[dhms]?(?: {_TYPED_TIME}){{2,}}")
# zone-adjustments = %s"z" "=" time SP ["-"] typed-time *(SP time SP ["-"] typed-time)
_ZONE_RE = re.compile(rf"[0-9]+ -?{_TYPED_TIME}(?: [0-9]+ -?{_TYPED_TIME})*")
_FORBIDDEN_TEXT = re.compile(r"[\x00\r\n]")


def _check_token(what: str, value: str) -> None:
    if not _TOKEN_RE.fullmatch(value):
        raise UsageError(f"bad {what}")


def _check_text(what: str, value: str, *, allow_empty: bool = True) -> None:
    if (not value and not allow_empty) or _FORBIDDEN_TEXT.search(value):
        raise UsageError(f"bad {what}")


def _check_uint(what: str, value: int, maximum: int | None = None) -> None:
    if value < 0 or (maximum is not None and value > maximum):
        raise UsageError(f"bad {what}")


class Direction(str, enum.Enum):
    """Media direction attribute (RFC 8866 §6.7, RFC 3264 §5.1), as seen by the SDP's author."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> Direction:
        if sends and receives:
            return cls.SENDRECV
        if sends:
            return cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reversed(self) -> Direction:
        """The same stream seen from the other end (sendonly <-> recvonly)."""
        return Direction.from_flags(self.receives, self.sends)

    def intersect(self, other: Direction) -> Direction:
        """Keep only the capabilities both directions allow."""
        return Direction.from_flags(self.sends and other.sends, self.receives and other.receives)


_DIRECTION_NAMES = frozenset(d.value for d in Direction)


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=`` line (RFC 8866 §5.2): who created the session and which revision this is.

    ``session_id`` stays a digit string: it is opaque, often wider than 64 bits, and only ever
    compared.  ``session_version`` is an int because RFC 3264 §8 makes us increment it.
    """

    username: str
    session_id: str
    session_version: int
    address: str
    net_type: str = "IN"
    addr_type: str = "IP4"

    def __post_init__(self) -> None:
        if not _NON_WS_RE.fullmatch(self.username):
            raise UsageError("bad username")
        if not (self.session_id.isascii() and self.session_id.isdigit()):
            raise UsageError("bad session id")
        _check_uint("session version", self.session_version)
        _check_token("network type", self.net_type)
        _check_token("address type", self.addr_type)
        if not _NON_WS_RE.fullmatch(self.address):
            raise UsageError("bad address")

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.net_type} {self.addr_type} {self.address}"
        )

    def bumped(self) -> Origin:
        """The same origin one revision later (RFC 3264 §8: a changed re-offer)."""
        return dataclasses.replace(self, session_version=self.session_version + 1)


def _valid_host(addr_type: str, address: str) -> bool:
    if addr_type == "IP4":
        if address.replace(".", "").isdigit():
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                return False
            return True
        return _FQDN_RE.fullmatch(address) is not None
    if addr_type == "IP6":
        if ":" in address:
            try:
                ipaddress.IPv6Address(address)
            except ValueError:
                return False
            return True
        return _FQDN_RE.fullmatch(address) is not None
    # extn-addrtype: the address is an opaque non-whitespace string
    return "/" not in address and _NON_WS_RE.fullmatch(address) is not None


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=`` line (RFC 8866 §5.7): where media goes.

    ``ttl`` only exists for IP4 multicast; ``count`` is the number of consecutive multicast
    groups (``/<n>``).  Hosts may be IPv4/IPv6 literals or domain names.
    """

    address: str
    addr_type: str = "IP4"
    net_type: str = "IN"
    ttl: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        _check_token("network type", self.net_type)
        _check_token("address type", self.addr_type)
        if not _valid_host(self.addr_type, self.address):
            raise UsageError("bad address")
        if self.ttl is not None and (self.addr_type != "IP4" or not 0 <= self.ttl <= 255):
            raise UsageError("bad ttl")
        if self.count is not None:
            if self.count < 1 or (self.addr_type == "IP4" and self.ttl is None):
                raise UsageError("bad address count")

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """Unicast connection with the address type inferred (``:`` means IPv6)."""
        return cls(address=address, addr_type="IP6" if ":" in address else "IP4")

    @property
    def is_null(self) -> bool:
        """RFC 2543 style hold: ``c=IN IP4 0.0.0.0`` (RFC 3264 §8.4)."""
        return self.addr_type == "IP4" and self.address == "0.0.0.0"

    def __str__(self) -> str:
        text = f"{self.net_type} {self.addr_type} {self.address}"
        if self.ttl is not None:
            text += f"/{self.ttl}"
        if self.count is not None:
            text += f"/{self.count}"
        return text


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (RFC 8866 §5.8), e.g. ``AS:64`` or ``TIAS:64000``."""

    type: str
    value: int

    def __post_init__(self) -> None:
        _check_token("bandwidth type", self.type)
        _check_uint("bandwidth", self.value)

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=`` line plus its ``r=`` repeat lines (kept verbatim, syntax checked)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_uint("start time", self.start)
        _check_uint("stop time", self.stop)
        for repeat in self.repeats:
            if not _REPEAT_RE.fullmatch(repeat):
                raise UsageError("bad repeat time")

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` (property) or ``a=<name>:<value>`` (value may be empty)."""

    name: str
    value: str | None = None

    def __post_init__(self) -> None:
        _check_token("attribute name", self.name)
        if self.value is not None:
            _check_text("attribute value", self.value)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """An RTP payload format: ``a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`` (RFC 8866 §6.6).

    ``channels`` is None when the line omits it (meaning one channel for audio); keeping the
    distinction is what lets ``str()`` reproduce the line exactly.
    """

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise UsageError("bad payload type")
        if not self.encoding or "/" in self.encoding or not _TOKEN_RE.fullmatch(self.encoding):
            raise UsageError("bad encoding name")
        if self.clock_rate <= 0 or (self.channels is not None and self.channels <= 0):
            raise UsageError("bad clock rate or channels")

    @classmethod
    def parse(cls, value: str) -> RtpMap | None:
        """Parse an rtpmap attribute value; None when it is not well formed."""
        match = _RTPMAP_RE.fullmatch(value)
        if match is None:
            return None
        pt, enc, rate, ch = match.groups()
        try:
            return cls(int(pt), enc, int(rate), None if ch is None else int(ch))
        except UsageError:
            return None

    @property
    def key(self) -> tuple[str, int, int]:
        """What identifies a codec across PT numbers: name (case-insensitive), rate, channels."""
        return (self.encoding.lower(), self.clock_rate, self.channels or 1)

    def with_payload_type(self, payload_type: int) -> RtpMap:
        return dataclasses.replace(self, payload_type=payload_type)

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


# rtpmap-value = payload-type SP encoding-name "/" clock-rate [ "/" encoding-params ]
_RTPMAP_RE = re.compile(r"([0-9]{1,3}) ([^/ ]+)/([0-9]{1,10})(?:/([0-9]{1,3}))?")

# RFC 3551 §6, Tables 4 and 5: payload types usable without an rtpmap line.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    rtp.payload_type: rtp
    for rtp in (
        RtpMap(0, "PCMU", 8000),
        RtpMap(3, "GSM", 8000),
        RtpMap(4, "G723", 8000),
        RtpMap(5, "DVI4", 8000),
        RtpMap(6, "DVI4", 16000),
        RtpMap(7, "LPC", 8000),
        RtpMap(8, "PCMA", 8000),
        RtpMap(9, "G722", 8000),
        RtpMap(10, "L16", 44100, 2),
        RtpMap(11, "L16", 44100),
        RtpMap(12, "QCELP", 8000),
        RtpMap(13, "CN", 8000),
        RtpMap(14, "MPA", 90000),
        RtpMap(15, "G728", 8000),
        RtpMap(16, "DVI4", 11025),
        RtpMap(17, "DVI4", 22050),
        RtpMap(18, "G729", 8000),
        RtpMap(25, "CelB", 90000),
        RtpMap(26, "JPEG", 90000),
        RtpMap(28, "nv", 90000),
        RtpMap(31, "H261", 90000),
        RtpMap(32, "MPV", 90000),
        RtpMap(33, "MP2T", 90000),
        RtpMap(34, "H263", 90000),
    )
}


def _is_rtp(proto: str) -> bool:
    return "RTP/" in proto.upper()


def _int_attr(attributes: tuple[Attribute, ...], name: str) -> int | None:
    for attr in attributes:
        if attr.name == name and attr.value is not None:
            text = attr.value.strip()
            if text.isascii() and text.isdigit() and len(text) <= 9:
                return int(text)
            return None
    return None


def _direction_of(attributes: tuple[Attribute, ...]) -> Direction | None:
    for attr in attributes:
        if attr.value is None and attr.name in _DIRECTION_NAMES:
            return Direction(attr.name)
    return None


def _with_direction(attributes: tuple[Attribute, ...], direction: Direction) -> tuple[Attribute, ...]:
    """Replace direction attributes in place (first position kept), or append one."""
    out: list[Attribute] = []
    placed = False
    for attr in attributes:
        if attr.value is None and attr.name in _DIRECTION_NAMES:
            if not placed:
                out.append(Attribute(direction.value))
                placed = True
            continue
        out.append(attr)
    if not placed:
        out.append(Attribute(direction.value))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One ``m=`` section (RFC 8866 §5.14) and the lines that follow it.

    ``connections`` is a tuple because multicast layered coding allows several ``c=`` lines
    per stream; SIP unicast uses at most one, reachable as :attr:`connection`.
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        _check_token("media type", self.media)
        _check_uint("port", self.port, 65535)
        if self.port_count is not None and self.port_count < 1:
            raise UsageError("bad port count")
        if not _PROTO_RE.fullmatch(self.proto):
            raise UsageError("bad transport protocol")
        if not self.formats:
            raise UsageError("missing format")
        for fmt in self.formats:
            _check_token("format", fmt)
            if _is_rtp(self.proto) and not (fmt.isdigit() and len(fmt) <= 3 and int(fmt) <= 127):
                raise UsageError("bad payload type")
        if self.information is not None:
            _check_text("information", self.information)
        if self.key is not None:
            _check_text("key", self.key)

    # -- typed views -------------------------------------------------------------------

    @property
    def connection(self) -> Connection | None:
        return self.connections[0] if self.connections else None

    @property
    def is_rejected(self) -> bool:
        """Port zero: the stream is refused or disabled (RFC 3264 §6, §8.2)."""
        return self.port == 0

    @property
    def direction_attribute(self) -> Direction | None:
        """The media-level direction attribute, if any."""
        return _direction_of(self.attributes)

    @property
    def direction(self) -> Direction:
        """Media-level direction, sendrecv when absent.  Use
        :meth:`SessionDescription.effective_direction` to honour a session-level default."""
        return self.direction_attribute or Direction.SENDRECV

    @property
    def payload_types(self) -> tuple[int, ...]:
        """Formats as RTP payload type numbers (empty for non-RTP protocols)."""
        return tuple(int(f) for f in self.formats) if _is_rtp(self.proto) else ()

    @property
    def rtpmaps(self) -> tuple[RtpMap, ...]:
        """The payload formats in m-line order: explicit rtpmap lines, else the static table.

        Dynamic types without a (well-formed) rtpmap are unknown and left out.
        """
        explicit: dict[int, RtpMap] = {}
        for attr in self.attributes:
            if attr.name == "rtpmap" and attr.value is not None:
                rtp = RtpMap.parse(attr.value)
                if rtp is not None and rtp.payload_type not in explicit:
                    explicit[rtp.payload_type] = rtp
        out = []
        for pt in self.payload_types:
            rtp = explicit.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if rtp is not None:
                out.append(rtp)
        return tuple(out)

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        for rtp in self.rtpmaps:
            if rtp.payload_type == payload_type:
                return rtp
        return None

    def fmtp(self, payload_type: int | str) -> str | None:
        """Format parameters of ``a=fmtp:<pt> <params>`` for one format, or None."""
        prefix = f"{payload_type} "
        for attr in self.attributes:
            if attr.name == "fmtp" and attr.value is not None and attr.value.startswith(prefix):
                return attr.value[len(prefix):]
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (RFC 8866 §6.4); None when absent or malformed."""
        return _int_attr(self.attributes, "ptime")

    @property
    def maxptime(self) -> int | None:
        return _int_attr(self.attributes, "maxptime")

    def attribute(self, name: str) -> Attribute | None:
        for attr in self.attributes:
            if attr.name == name:
                return attr
        return None

    def attributes_named(self, name: str) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if a.name == name)

    # -- functional updates ----------------------------------------------------------------

    def replace(self, **changes: Any) -> MediaDescription:
        return dataclasses.replace(self, **changes)

    def with_port(self, port: int) -> MediaDescription:
        return dataclasses.replace(self, port=port)

    def with_connection(self, connection: Connection | None) -> MediaDescription:
        """Set (or with None, drop) the media-level ``c=`` line."""
        return dataclasses.replace(self, connections=() if connection is None else (connection,))

    def with_direction(self, direction: Direction) -> MediaDescription:
        return dataclasses.replace(self, attributes=_with_direction(self.attributes, direction))

    def with_attribute(self, attribute: Attribute) -> MediaDescription:
        return dataclasses.replace(self, attributes=(*self.attributes, attribute))

    def without_attributes(self, *names: str) -> MediaDescription:
        kept = tuple(a for a in self.attributes if a.name not in names)
        return dataclasses.replace(self, attributes=kept)

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in render_media(self))


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole session description (RFC 8866 §5): session part, then media sections."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    times: tuple[Timing, ...] = (Timing(),)
    time_zones: str | None = None
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()

    def __post_init__(self) -> None:
        if self.version != 0:
            raise UsageError("unsupported version")
        _check_text("session name", self.session_name)
        for what, text in (("information", self.information), ("uri", self.uri), ("key", self.key)):
            if text is not None:
                _check_text(what, text)
        for item in (*self.emails, *self.phones):
            _check_text("email or phone", item, allow_empty=False)
        if self.time_zones is not None and not _ZONE_RE.fullmatch(self.time_zones):
            raise UsageError("bad time zone adjustment")

    # -- typed views -------------------------------------------------------------------

    @property
    def direction_attribute(self) -> Direction | None:
        """The session-level direction attribute, if any (default for every stream)."""
        return _direction_of(self.attributes)

    def effective_direction(self, media: MediaDescription) -> Direction:
        """Media-level direction, else session-level, else sendrecv (RFC 8866 §6.7)."""
        return media.direction_attribute or self.direction_attribute or Direction.SENDRECV

    def effective_connection(self, media: MediaDescription) -> Connection | None:
        """Media-level ``c=`` overrides the session-level one (RFC 8866 §5.7)."""
        return media.connection or self.connection

    def attribute(self, name: str) -> Attribute | None:
        for attr in self.attributes:
            if attr.name == name:
                return attr
        return None

    # -- functional updates ----------------------------------------------------------------

    def replace(self, **changes: Any) -> SessionDescription:
        return dataclasses.replace(self, **changes)

    def with_media(self, index: int, media: MediaDescription) -> SessionDescription:
        streams = list(self.media)
        streams[index] = media
        return dataclasses.replace(self, media=tuple(streams))

    def with_connection(self, connection: Connection) -> SessionDescription:
        """Point every stream at ``connection``: session-level ``c=``, media-level ones dropped.

        This is the media-relay rewrite a B2BUA performs on each leg.
        """
        streams = tuple(m.with_connection(None) if m.connections else m for m in self.media)
        return dataclasses.replace(self, connection=connection, media=streams)

    def with_direction(self, direction: Direction) -> SessionDescription:
        """Set ``direction`` on every stream (media level) and drop any session-level one."""
        attrs = tuple(a for a in self.attributes if not (a.value is None and a.name in _DIRECTION_NAMES))
        streams = tuple(m.with_direction(direction) for m in self.media)
        return dataclasses.replace(self, attributes=attrs, media=streams)

    def with_origin(self, origin: Origin) -> SessionDescription:
        return dataclasses.replace(self, origin=origin)

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in render_session(self))
