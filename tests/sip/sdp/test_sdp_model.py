"""Model tests: value validation, typed views, functional updates used by hold and relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipline.sip.errors import UsageError
from sipline.sip.sdp import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    Timing,
    parse_sdp,
)

CORPUS = Path(__file__).parent / "corpus"
S, R, I, SR = Direction.SENDONLY, Direction.RECVONLY, Direction.INACTIVE, Direction.SENDRECV


def corpus(name: str) -> SessionDescription:
    return parse_sdp((CORPUS / f"{name}.sdp").read_bytes())


def audio(*attrs: Attribute, formats: tuple[str, ...] = ("0", "8", "101")) -> MediaDescription:
    return MediaDescription("audio", 4000, "RTP/AVP", formats, attributes=attrs)


@pytest.mark.parametrize(
    ("direction", "sends", "receives", "reversed_"),
    [(SR, True, True, SR), (S, True, False, R), (R, False, True, S), (I, False, False, I)],
)
def test_direction_flags(direction: Direction, sends: bool, receives: bool, reversed_: Direction) -> None:
    assert (direction.sends, direction.receives) == (sends, receives)
    assert direction.reversed() is reversed_
    assert Direction.from_flags(sends, receives) is direction


@pytest.mark.parametrize(
    ("a", "b", "result"),
    [(SR, SR, SR), (SR, S, S), (S, R, I), (R, SR, R), (I, SR, I), (S, S, S)],
)
def test_direction_intersect(a: Direction, b: Direction, result: Direction) -> None:
    assert a.intersect(b) is result and b.intersect(a) is result


def test_origin_render_and_bump() -> None:
    origin = Origin("alice", "2890844526", 7, "2001:db8::1", addr_type="IP6")
    assert str(origin) == "alice 2890844526 7 IN IP6 2001:db8::1"
    assert origin.bumped() == Origin("alice", "2890844526", 8, "2001:db8::1", addr_type="IP6")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"username": "a b"}, "bad username"),
        ({"session_id": "12a"}, "bad session id"),
        ({"session_version": -1}, "bad session version"),
        ({"net_type": ""}, "bad network type"),
        ({"addr_type": "IP/4"}, "bad address type"),
        ({"address": ""}, "bad address"),
    ],
)
def test_origin_validation(kwargs: dict[str, object], reason: str) -> None:
    fields: dict[str, object] = {"username": "-", "session_id": "1", "session_version": 1, "address": "h"}
    fields.update(kwargs)
    with pytest.raises(UsageError, match=reason):
        Origin(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("connection", "text"),
    [
        (Connection("192.0.2.1"), "IN IP4 192.0.2.1"),
        (Connection("233.252.0.1", ttl=64), "IN IP4 233.252.0.1/64"),
        (Connection("233.252.0.1", ttl=64, count=2), "IN IP4 233.252.0.1/64/2"),
        (Connection("ff15::101", "IP6", count=3), "IN IP6 ff15::101/3"),
        (Connection("media.example.com", "IP6"), "IN IP6 media.example.com"),
        (Connection("x25:1234", "X25", "ATM"), "ATM X25 x25:1234"),
        (Connection.for_address("2001:db8::7"), "IN IP6 2001:db8::7"),
        (Connection.for_address("198.51.100.3"), "IN IP4 198.51.100.3"),
    ],
)
def test_connection_render(connection: Connection, text: str) -> None:
    assert str(connection) == text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": "300.1.1.1"},
        {"address": "::1"},
        {"address": "::g", "addr_type": "IP6"},
        {"address": "bad_host"},
        {"address": "a/b", "addr_type": "X"},
        {"address": "233.252.0.1", "ttl": 256},
        {"address": "ff15::1", "addr_type": "IP6", "ttl": 1},
        {"address": "233.252.0.1", "count": 2},
        {"address": "233.252.0.1", "ttl": 1, "count": 0},
        {"address": "h", "net_type": "I N"},
    ],
)
def test_connection_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        Connection(**kwargs)  # type: ignore[arg-type]


def test_connection_null_is_ipv4_zero_only() -> None:
    assert Connection("0.0.0.0").is_null
    assert not Connection("::", "IP6").is_null
    assert not Connection("192.0.2.1").is_null


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Bandwidth("A S", 1), "bad bandwidth type"),
        (lambda: Bandwidth("AS", -1), "bad bandwidth"),
        (lambda: Timing(-1, 0), "bad start time"),
        (lambda: Timing(0, -1), "bad stop time"),
        (lambda: Timing(0, 0, ("1d",)), "bad repeat time"),
        (lambda: Attribute("a:b"), "bad attribute name"),
        (lambda: Attribute("a", "x\ny"), "bad attribute value"),
        (lambda: RtpMap(128, "X", 8000), "bad payload type"),
        (lambda: RtpMap(96, "X/Y", 8000), "bad encoding name"),
        (lambda: RtpMap(96, "X", 0), "bad clock rate"),
        (lambda: RtpMap(96, "X", 8000, 0), "bad clock rate"),
        (lambda: MediaDescription("audio", 65536, "RTP/AVP", ("0",)), "bad port"),
        (lambda: MediaDescription("audio", 1, "RTP/AVP", ("0",), port_count=0), "bad port count"),
        (lambda: MediaDescription("audio", 1, "RTP/AVP", ()), "missing format"),
        (lambda: MediaDescription("audio", 1, "RTP/AVP", ("0",), information="a\rb"), "bad information"),
        (lambda: MediaDescription("audio", 1, "RTP/AVP", ("0",), key="\x00"), "bad key"),
        (lambda: SessionDescription(Origin("-", "1", 1, "h"), version=1), "unsupported version"),
        (lambda: SessionDescription(Origin("-", "1", 1, "h"), session_name="a\nb"), "bad session name"),
        (lambda: SessionDescription(Origin("-", "1", 1, "h"), uri="\r"), "bad uri"),
        (lambda: SessionDescription(Origin("-", "1", 1, "h"), emails=("",)), "bad email"),
        (lambda: SessionDescription(Origin("-", "1", 1, "h"), time_zones="x"), "bad time zone"),
    ],
)
def test_value_validation(build: object, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0 PCMU/8000", RtpMap(0, "PCMU", 8000)),
        ("111 opus/48000/2", RtpMap(111, "opus", 48000, 2)),
        ("101 telephone-event/8000", RtpMap(101, "telephone-event", 8000)),
        ("31 LPC", None),
        ("200 X/8000", None),
        ("96 X/0", None),
        ("96  X/8000", None),
        ("x PCMU/8000", None),
    ],
)
def test_rtpmap_parse(value: str, expected: RtpMap | None) -> None:
    assert RtpMap.parse(value) == expected
    if expected is not None:
        assert str(expected) == value


def test_rtpmap_key_and_renumber() -> None:
    assert RtpMap(96, "OPUS", 48000, 2).key == ("opus", 48000, 2)
    assert RtpMap(0, "PCMU", 8000).key == RtpMap(97, "pcmu", 8000, 1).key
    assert RtpMap(96, "AMR", 8000).with_payload_type(100) == RtpMap(100, "AMR", 8000)


def test_static_table() -> None:
    assert STATIC_PAYLOAD_TYPES[0] == RtpMap(0, "PCMU", 8000)
    assert STATIC_PAYLOAD_TYPES[8] == RtpMap(8, "PCMA", 8000)
    assert STATIC_PAYLOAD_TYPES[9] == RtpMap(9, "G722", 8000)
    assert STATIC_PAYLOAD_TYPES[18] == RtpMap(18, "G729", 8000)
    assert STATIC_PAYLOAD_TYPES[3] == RtpMap(3, "GSM", 8000)
    assert all(pt == rtp.payload_type for pt, rtp in STATIC_PAYLOAD_TYPES.items())


def test_rtpmaps_static_implied_dynamic_needs_rtpmap() -> None:
    media = audio(
        Attribute("rtpmap", "8 PCMA/8000"),  # redundant static rtpmap wins over the table
        Attribute("rtpmap", "101 telephone-event/8000"),
        Attribute("rtpmap", "101 ignored/1"),  # duplicate: first one counts
        Attribute("rtpmap"),  # no value: ignored
        formats=("0", "8", "101", "102", "2"),
    )
    assert media.rtpmaps == (
        RtpMap(0, "PCMU", 8000),
        RtpMap(8, "PCMA", 8000),
        RtpMap(101, "telephone-event", 8000),
    )
    assert media.rtpmap(102) is None and media.rtpmap(0) == RtpMap(0, "PCMU", 8000)


@pytest.mark.parametrize(
    ("attrs", "ptime", "maxptime"),
    [
        ((Attribute("ptime", "20"),), 20, None),
        ((Attribute("ptime", " 30"), Attribute("maxptime", "60")), 30, 60),
        ((Attribute("ptime", "20.5"),), None, None),
        ((Attribute("ptime"), Attribute("ptime", "10")), 10, None),
        ((Attribute("maxptime", "x"),), None, None),
        ((), None, None),
    ],
)
def test_ptime_views(attrs: tuple[Attribute, ...], ptime: int | None, maxptime: int | None) -> None:
    media = audio(*attrs)
    assert (media.ptime, media.maxptime) == (ptime, maxptime)


def test_fmtp_needs_exact_payload_type() -> None:
    media = audio(Attribute("fmtp", "1010 x"), Attribute("fmtp", "101 0-16"), Attribute("fmtp"))
    assert media.fmtp(101) == "0-16"
    assert media.fmtp(10) is None


@pytest.mark.parametrize(
    ("attrs", "expected_attrs"),
    [
        ((), ("sendonly",)),
        (("x", "sendrecv", "y"), ("x", "sendonly", "y")),
        (("recvonly", "x", "inactive"), ("sendonly", "x")),
    ],
)
def test_with_direction_replaces_in_place(attrs: tuple[str, ...], expected_attrs: tuple[str, ...]) -> None:
    media = audio(*(Attribute(a) for a in attrs)).with_direction(Direction.SENDONLY)
    assert tuple(a.name for a in media.attributes) == expected_attrs
    assert media.direction is Direction.SENDONLY


def test_direction_value_form_is_not_a_direction() -> None:
    assert audio(Attribute("sendonly", "x")).direction_attribute is None


def test_media_updates() -> None:
    media = audio(Attribute("rtpmap", "0 PCMU/8000"), Attribute("ice-ufrag", "x"))
    moved = media.with_port(5000).with_connection(Connection("203.0.113.1"))
    assert moved.port == 5000 and moved.connection == Connection("203.0.113.1")
    assert moved.with_connection(None).connections == ()
    assert media.port == 4000  # original untouched
    trimmed = media.without_attributes("ice-ufrag").with_attribute(Attribute("ptime", "20"))
    assert [str(a) for a in trimmed.attributes] == ["rtpmap:0 PCMU/8000", "ptime:20"]
    assert media.attributes_named("rtpmap") == (Attribute("rtpmap", "0 PCMU/8000"),)
    assert media.attribute("nope") is None
    assert media.replace(proto="RTP/SAVP").proto == "RTP/SAVP"
    assert str(media.replace(port_count=2)).startswith("m=audio 4000/2 RTP/AVP 0 8 101\r\n")


def test_session_effective_values_and_updates() -> None:
    sdp = corpus("multicast_full")
    audio_m, video_m, _ = sdp.media
    assert sdp.effective_connection(audio_m) == sdp.connection
    assert sdp.effective_connection(video_m) == video_m.connection
    relay = Connection("198.51.100.9")
    relayed = sdp.with_connection(relay)
    assert relayed.connection == relay
    assert all(relayed.effective_connection(m) == relay for m in relayed.media)
    assert relayed.media[0] is sdp.media[0]  # untouched stream kept as is
    held = sdp.with_direction(Direction.INACTIVE)
    assert held.direction_attribute is None
    assert [held.effective_direction(m) for m in held.media] == [Direction.INACTIVE] * 3
    assert held.attribute("tool") == Attribute("tool", "sipline-test")
    assert held.attribute("nope") is None
    swapped = sdp.with_media(1, video_m.with_port(0))
    assert swapped.media[1].is_rejected and not sdp.media[1].is_rejected
    assert sdp.replace(session_name="x").session_name == "x"
    assert sdp.with_origin(sdp.origin.bumped()).origin.session_version == 2890842808


def test_relay_rewrite_round_trip_keeps_other_lines() -> None:
    data = (CORPUS / "softphone.sdp").read_bytes()
    sdp = parse_sdp(data)
    out = bytes(sdp.with_connection(Connection("192.0.2.99")).with_media(0, sdp.media[0].with_port(30000)))
    expected = data.replace(b"c=IN IP4 10.0.0.23", b"c=IN IP4 192.0.2.99").replace(
        b"m=audio 7078", b"m=audio 30000")
    assert out == expected


def test_minimal_session_renders() -> None:
    sdp = SessionDescription(Origin("-", "1", 1, "192.0.2.1"), media=(audio(),),
                             connection=Connection("192.0.2.1"))
    assert bytes(sdp) == (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0 8 101\r\n"
    )
    assert parse_sdp(bytes(sdp)) == sdp
