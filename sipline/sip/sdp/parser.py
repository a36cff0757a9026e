"""Strict, bounded SDP parser (RFC 8866 §5, §9).

Strategy: split into lines, then walk them with a small table of allowed positions.  Each
line type has a *rank* (its place in the §5 order) and a flag saying whether it may repeat;
a line whose rank goes backwards is out of order.  Because nothing is allowed out of order,
the serializer can write fields back in canonical order and be byte-exact.

Every failure is a :class:`ParseError` whose reason names the line number and type
("SDP line 4 (m=): bad port"); size and line-count limits raise :class:`MessageTooLarge`.
Numbers are read as integers, so a port or version written with leading zeros comes back
without them; apart from line endings (bare LF, a missing final newline, trailing blank
lines), that is the only place where writing differs from the input.
Text is decoded as UTF-8 with ``surrogateescape`` so odd bytes in free-text fields (``s=``,
``i=``, attribute values written in another charset) survive a round trip unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import MessageTooLarge, ParseError, UsageError
from .model import (
    _ZONE_RE,
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)

__all__ = ["parse_sdp", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_LINES"]

DEFAULT_MAX_SIZE = 64 * 1024
DEFAULT_MAX_LINES = 2048

# Longest integer we accept: 20 digits holds any 64-bit value (NTP times, versions) and
# keeps int() far from Python's digit-count limit.
_MAX_DIGITS = 20

# (rank, may repeat) per line type.  "v", "o" and "s" are handled positionally.
_SESSION_ORDER: dict[str, tuple[int, bool]] = {
    "i": (3, False),
    "u": (4, False),
    "e": (5, True),
    "p": (6, True),
    "c": (7, False),
    "b": (8, True),
    "t": (9, True),
    "r": (10, True),
    "z": (11, False),
    "k": (12, False),
    "a": (13, True),
}
_MEDIA_ORDER: dict[str, tuple[int, bool]] = {
    "i": (1, False),
    "c": (2, True),
    "b": (3, True),
    "k": (4, False),
    "a": (5, True),
}
_KNOWN_TYPES = frozenset("vosiuepcbtrzkam")


class _Bad(Exception):
    """Internal: a line-level fault; the loop adds the line number."""


def _uint(text: str, what: str) -> int:
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        raise _Bad(f"bad {what}")
    return int(text)


def _fields(value: str, count: int, what: str) -> list[str]:
    parts = value.split(" ")
    if len(parts) != count or "" in parts:
        raise _Bad(f"bad {what}")
    return parts


def _parse_origin(value: str) -> Origin:
    user, sess_id, version, net, addr_type, address = _fields(value, 6, "origin")
    _uint(sess_id, "session id")
    return Origin(user, sess_id, _uint(version, "session version"), address, net, addr_type)


def _parse_connection(value: str) -> Connection:
    net, addr_type, address = _fields(value, 3, "connection")
    ttl: int | None = None
    count: int | None = None
    if addr_type in ("IP4", "IP6") and "/" in address:
        address, *extra = address.split("/")
        if addr_type == "IP4" and len(extra) in (1, 2):
            ttl = _uint(extra[0], "ttl")
            count = _uint(extra[1], "address count") if len(extra) == 2 else None
        elif addr_type == "IP6" and len(extra) == 1:
            count = _uint(extra[0], "address count")
        else:
            raise _Bad("bad connection address")
    return Connection(address, addr_type, net, ttl, count)


def _parse_bandwidth(value: str) -> Bandwidth:
    kind, sep, amount = value.partition(":")
    if not sep:
        raise _Bad("bad bandwidth")
    return Bandwidth(kind, _uint(amount, "bandwidth"))


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return Attribute(name, rest if sep else None)


def _parse_media(value: str) -> MediaDescription:
    parts = value.split(" ")
    if len(parts) < 4 or "" in parts:
        raise _Bad("bad media line")
    media, port_text, proto, *formats = parts
    port_text, sep, count_text = port_text.partition("/")
    port = _uint(port_text, "port")
    count = _uint(count_text, "port count") if sep else None
    return MediaDescription(media, port, proto, tuple(formats), port_count=count)


def _text(value: str, *, allow_empty: bool = True) -> str:
    if not value and not allow_empty:
        raise _Bad("empty value")
    return value


@dataclass
class _MediaBuilder:
    """Mutable accumulator for one m= section; frozen into a MediaDescription at the end."""

    head: MediaDescription
    line: int
    information: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    def build(self) -> MediaDescription:
        return replace(
            self.head,
            information=self.information,
            connections=tuple(self.connections),
            bandwidths=tuple(self.bandwidths),
            key=self.key,
            attributes=tuple(self.attributes),
        )


@dataclass
class _SessionBuilder:
    origin: Origin | None = None
    session_name: str = ""
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    times: list[Timing] = field(default_factory=list)
    time_zones: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[_MediaBuilder] = field(default_factory=list)

    def session_line(self, kind: str, value: str) -> None:
        if kind == "i":
            self.information = _text(value)
        elif kind == "u":
            self.uri = _text(value, allow_empty=False)
        elif kind == "e":
            self.emails.append(_text(value, allow_empty=False))
        elif kind == "p":
            self.phones.append(_text(value, allow_empty=False))
        elif kind == "c":
            self.connection = _parse_connection(value)
        elif kind == "b":
            self.bandwidths.append(_parse_bandwidth(value))
        elif kind == "t":
            start, stop = _fields(value, 2, "timing")
            self.times.append(Timing(_uint(start, "start time"), _uint(stop, "stop time")))
        elif kind == "r":
            last = self.times[-1]
            self.times[-1] = replace(last, repeats=(*last.repeats, value))
        elif kind == "z":
            if not _ZONE_RE.fullmatch(value):
                raise _Bad("bad time zone adjustment")
            self.time_zones = value
        elif kind == "k":
            self.key = _text(value, allow_empty=False)
        else:  # "a"
            self.attributes.append(_parse_attribute(value))

    def media_line(self, section: _MediaBuilder, kind: str, value: str) -> None:
        if kind == "i":
            section.information = _text(value)
        elif kind == "c":
            section.connections.append(_parse_connection(value))
        elif kind == "b":
            section.bandwidths.append(_parse_bandwidth(value))
        elif kind == "k":
            section.key = _text(value, allow_empty=False)
        else:  # "a"
            section.attributes.append(_parse_attribute(value))

    def build(self) -> SessionDescription:
        assert self.origin is not None
        media = tuple(m.build() for m in self.media)
        for section, built in zip(self.media, media):
            if built.port != 0 and self.connection is None and not built.connections:
                raise ParseError(f"SDP line {section.line} (m=): no connection address for stream")
        return SessionDescription(
            origin=self.origin,
            session_name=self.session_name,
            information=self.information,
            uri=self.uri,
            emails=tuple(self.emails),
            phones=tuple(self.phones),
            connection=self.connection,
            bandwidths=tuple(self.bandwidths),
            times=tuple(self.times),
            time_zones=self.time_zones,
            key=self.key,
            attributes=tuple(self.attributes),
            media=media,
        )


def _split_lines(data: bytes | str, max_size: int, max_lines: int) -> list[str]:
    if len(data) > max_size:
        raise MessageTooLarge(f"SDP larger than {max_size} bytes")
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    lines = text.split("\n")
    # A final line terminator leaves one empty piece; further trailing empty lines are a
    # common sloppiness we tolerate (they carry nothing).
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    if len(lines) > max_lines:
        raise MessageTooLarge(f"SDP has more than {max_lines} lines")
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_sdp(
    data: bytes | str,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_lines: int = DEFAULT_MAX_LINES,
) -> SessionDescription:
    """Parse a session description; CRLF or bare LF line ends.

    Raises :class:`ParseError` for malformed input and :class:`MessageTooLarge` when
    ``max_size`` (bytes/characters) or ``max_lines`` is exceeded.
    """
    lines = _split_lines(data, max_size, max_lines)
    if not lines:
        raise ParseError("SDP is empty")
    builder = _SessionBuilder()
    rank, last_kind = -1, ""
    section: _MediaBuilder | None = None
    for number, line in enumerate(lines, start=1):
        kind, value = line[:1], line[2:]
        if len(line) < 2 or line[1] != "=" or not ("a" <= kind <= "z"):
            raise ParseError(f"SDP line {number}: not a <type>=<value> line")
        where = f"SDP line {number} ({kind}=)"
        if kind not in _KNOWN_TYPES:
            raise ParseError(f"{where}: unknown line type")
        if "\r" in value or "\x00" in value:
            raise ParseError(f"{where}: control character in value")
        expected = "vos"[number - 1] if number <= 3 else None
        if expected is not None and kind != expected:
            raise ParseError(f"{where}: expected {expected}= line")
        try:
            if number == 1:
                if value != "0":
                    raise _Bad("unsupported version")
            elif number == 2:
                builder.origin = _parse_origin(value)
            elif number == 3:
                builder.session_name = value
            elif kind == "m":
                if section is not None:
                    builder.media.append(section)
                section = _MediaBuilder(_parse_media(value), number)
                rank, last_kind = 0, "m"
            else:
                order = _MEDIA_ORDER if section is not None else _SESSION_ORDER
                if kind not in order:
                    raise _Bad("not allowed here")
                new_rank, repeatable = order[kind]
                after_repeat = kind == "t" and last_kind == "r"
                if kind == "r" and last_kind not in ("t", "r"):
                    raise _Bad("repeat time without t= line")
                if new_rank < rank and not after_repeat or (new_rank == rank and not repeatable):
                    raise _Bad("out of order or repeated")
                rank, last_kind = new_rank, kind
                if section is None:
                    builder.session_line(kind, value)
                else:
                    builder.media_line(section, kind, value)
        except (_Bad, UsageError) as exc:
            raise ParseError(f"{where}: {exc}") from None
    if len(lines) < 3:
        raise ParseError(f"SDP line {len(lines) + 1}: expected {'vos'[len(lines)]}= line")
    if section is not None:
        builder.media.append(section)
    return builder.build()
