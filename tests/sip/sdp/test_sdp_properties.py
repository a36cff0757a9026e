"""Property tests: generated valid SDP round-trips byte-exactly; mutated SDP fails cleanly."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipline.sip.errors import MessageTooLarge, ParseError
from sipline.sip.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
    parse_sdp,
)

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.sdp"))
TOKEN_CHARS = "!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz{|}~"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=8)
non_ws = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
texts = st.text(st.characters(codec="utf-8", blacklist_characters="\x00\r\n"), max_size=20)
non_empty_texts = texts.filter(bool)
digits = st.integers(min_value=0, max_value=2**64 - 1)
hostnames = st.from_regex(r"[a-z]([a-z0-9\-]{0,8}[a-z0-9])?(\.[a-z0-9]{1,6}){0,2}", fullmatch=True)


@st.composite
def connections(draw: st.DrawFn) -> Connection:
    kind = draw(st.sampled_from(["ip4", "ip4-multicast", "ip6", "ip6-multicast", "host"]))
    if kind == "ip4":
        return Connection(str(draw(st.ip_addresses(v=4))))
    if kind == "ip4-multicast":
        count = draw(st.none() | st.integers(1, 9))
        return Connection(str(draw(st.ip_addresses(v=4))), ttl=draw(st.integers(0, 255)), count=count)
    if kind == "ip6":
        return Connection(str(draw(st.ip_addresses(v=6))), "IP6")
    if kind == "ip6-multicast":
        return Connection(str(draw(st.ip_addresses(v=6))), "IP6", count=draw(st.integers(1, 9)))
    return Connection(draw(hostnames), draw(st.sampled_from(["IP4", "IP6"])))


attributes = st.builds(Attribute, tokens, st.none() | texts)
bandwidths = st.builds(Bandwidth, tokens, st.integers(0, 10**9))
repeats = st.sampled_from(["7d 1h 0 25h", "604800 3600 0 90000", "1h 10m 0 5m 30m"])
timings = st.builds(Timing, digits, digits, st.lists(repeats, max_size=2).map(tuple))
origins = st.builds(Origin, non_ws, digits.map(str), digits, non_ws, tokens, tokens)


@st.composite
def media_sections(draw: st.DrawFn, need_connection: bool) -> MediaDescription:
    if draw(st.booleans()):
        proto = draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "RTP/AVPF"]))
        formats = draw(st.lists(st.integers(0, 127).map(str), min_size=1, max_size=8))
    else:
        proto = draw(st.sampled_from(["udptl", "TCP/MSRP", "UDP/DTLS/SCTP", "TCP/BFCP"]))
        formats = draw(st.lists(tokens, min_size=1, max_size=3))
    port = draw(st.integers(0, 65535))
    conns = draw(st.lists(connections(), min_size=1 if need_connection and port else 0, max_size=2))
    return MediaDescription(
        media=draw(tokens),
        port=port,
        proto=proto,
        formats=tuple(formats),
        port_count=draw(st.none() | st.integers(1, 4)),
        information=draw(st.none() | texts),
        connections=tuple(conns),
        bandwidths=tuple(draw(st.lists(bandwidths, max_size=2))),
        key=draw(st.none() | non_empty_texts),
        attributes=tuple(draw(st.lists(attributes, max_size=6))),
    )


@st.composite
def sessions(draw: st.DrawFn) -> SessionDescription:
    connection = draw(st.none() | connections())
    return SessionDescription(
        origin=draw(origins),
        session_name=draw(texts),
        information=draw(st.none() | texts),
        uri=draw(st.none() | non_empty_texts),
        emails=tuple(draw(st.lists(non_empty_texts, max_size=2))),
        phones=tuple(draw(st.lists(non_empty_texts, max_size=2))),
        connection=connection,
        bandwidths=tuple(draw(st.lists(bandwidths, max_size=2))),
        times=tuple(draw(st.lists(timings, max_size=3))),
        time_zones=draw(st.none() | st.sampled_from(["2882844526 -1h 2898848070 0", "0 1d"])),
        key=draw(st.none() | st.sampled_from(["prompt", "clear:pw", "uri:https://k.example/"])),
        attributes=tuple(draw(st.lists(attributes, max_size=5))),
        media=tuple(draw(st.lists(media_sections(need_connection=connection is None), max_size=4))),
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(sessions())
def test_generated_sdp_round_trips(sdp: SessionDescription) -> None:
    wire = bytes(sdp)
    parsed = parse_sdp(wire)
    assert parsed == sdp
    assert bytes(parsed) == wire


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        byte = draw(st.sampled_from(b" \r\n:/=0a\x00\xff\x80-.") | st.integers(0, 255))
        if action == "insert":
            data.insert(position, byte)
        elif action == "truncate":
            del data[position:]
        elif position < len(data):
            if action == "delete":
                del data[position]
            else:
                data[position] = byte
    return bytes(data)


@settings(max_examples=300)
@given(mutated())
def test_mutations_raise_only_parse_errors(data: bytes) -> None:
    try:
        parsed = parse_sdp(data)
    except (ParseError, MessageTooLarge):
        return
    # Whatever was accepted must be writable and stable under a second round.
    assert parse_sdp(bytes(parsed)) == parsed


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_parse_errors(data: bytes) -> None:
    try:
        parse_sdp(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n" + data)
    except ParseError:
        pass
