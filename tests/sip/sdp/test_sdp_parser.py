"""Parser tests: byte-exact round trips over a realistic corpus, typed views, strictness."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipline.sip.errors import MessageTooLarge, ParseError
from sipline.sip.sdp import (
    Bandwidth,
    Connection,
    Direction,
    RtpMap,
    Timing,
    parse_sdp,
    serialize,
)

CORPUS = Path(__file__).parent / "corpus"
TORTURE = Path("/work/shared/sip-torture")
TORTURE_WITH_SDP = ["ipv6-in-sdp", "mult-ip-in-sdp", "ipv4-mapped-ipv6", "sdp01", "wsinv", "inv2543"]


def corpus(name: str) -> bytes:
    return (CORPUS / f"{name}.sdp").read_bytes()


def torture_body(name: str) -> bytes:
    message = (TORTURE / f"{name}.sip").read_bytes()
    return message[message.index(b"\r\n\r\n") + 4:]


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.sdp")), ids=lambda p: p.stem)
def test_corpus_round_trip_is_byte_exact(path: Path) -> None:
    data = path.read_bytes()
    parsed = parse_sdp(data)
    assert bytes(parsed) == data
    assert serialize(parsed) == data
    assert parse_sdp(bytes(parsed)) == parsed


@pytest.mark.parametrize("name", TORTURE_WITH_SDP)
def test_torture_bodies_round_trip(name: str) -> None:
    if not TORTURE.exists():  # pragma: no cover - shared fixtures live outside the repo
        pytest.skip("sip-torture fixtures not available")
    body = torture_body(name)
    assert bytes(parse_sdp(body)) == body


def test_rfc5118_ipv6_connections() -> None:
    if not TORTURE.exists():  # pragma: no cover
        pytest.skip("sip-torture fixtures not available")
    sdp = parse_sdp(torture_body("ipv6-in-sdp"))
    assert sdp.origin.addr_type == "IP6" and sdp.origin.address == "2001:db8::20"
    assert sdp.connection == Connection("2001:db8::20", "IP6")
    assert [sdp.effective_connection(m) for m in sdp.media] == [sdp.connection] * 2
    mixed = parse_sdp(torture_body("mult-ip-in-sdp"))
    assert mixed.connection is None and mixed.session_name == ""
    assert [str(mixed.effective_connection(m)) for m in mixed.media] == [
        "IN IP4 192.0.2.1",
        "IN IP6 2001:db8::1",
    ]
    assert mixed.media[1].rtpmaps == (RtpMap(107, "H263-1998", 90000),)


def test_broken_rtpmap_is_kept_but_ignored_by_view() -> None:
    if not TORTURE.exists():  # pragma: no cover
        pytest.skip("sip-torture fixtures not available")
    video = parse_sdp(torture_body("sdp01")).media[1]
    assert video.attributes[0].value == "31 LPC"
    assert video.rtpmaps == (RtpMap(31, "H261", 90000),)  # static table stands in


def test_desk_phone_views() -> None:
    sdp = parse_sdp(corpus("desk_phone"))
    audio = sdp.media[0]
    assert audio.payload_types == (9, 0, 8, 18, 101)
    assert [(r.encoding, r.clock_rate) for r in audio.rtpmaps] == [
        ("G722", 8000), ("PCMU", 8000), ("PCMA", 8000), ("G729", 8000), ("telephone-event", 8000),
    ]
    assert audio.fmtp(18) == "annexb=no"
    assert audio.fmtp("101") == "0-15"
    assert audio.fmtp(0) is None
    assert audio.ptime == 20 and audio.maxptime is None
    assert audio.direction is Direction.SENDRECV
    assert sdp.origin.session_version == 20017 and sdp.origin.username == "-"


def test_carrier_bandwidth_and_session_fields() -> None:
    sdp = parse_sdp(corpus("carrier"))
    assert sdp.information == "Carrier interconnect"
    assert sdp.uri == "http://www.example.com/sdp.html"
    assert sdp.emails == ("noc@example.com (NOC)",)
    assert sdp.phones == ("+1 617 555-6011",)
    assert sdp.bandwidths == (Bandwidth("CT", 1000),)
    audio = sdp.media[0]
    assert audio.bandwidths == (Bandwidth("AS", 64), Bandwidth("TIAS", 64000))
    assert len(audio.rtpmaps) == 10
    assert audio.rtpmap(96) == RtpMap(96, "AMR", 8000)
    assert audio.fmtp(96) == "mode-set=0,2,4,7;octet-align=1"
    assert audio.maxptime == 40
    assert audio.attribute("silenceSupp") is not None
    assert audio.attribute("silenceSupp").value == "off - - - -"  # type: ignore[union-attr]


def test_multicast_times_zones_and_keys() -> None:
    sdp = parse_sdp(corpus("multicast_full"))
    assert sdp.connection == Connection("233.252.0.10", "IP4", ttl=127)
    assert sdp.times == (
        Timing(3034423619, 3042462419, ("7d 1h 0 25h", "604800 3600 0 90000")),
        Timing(3042462419, 3050000000),
    )
    assert sdp.time_zones == "2882844526 -1h 2898848070 0"
    assert sdp.key == "prompt"
    assert sdp.direction_attribute is Direction.RECVONLY
    audio, video, text = sdp.media
    assert (audio.port, audio.port_count) == (49170, 2)
    assert sdp.effective_direction(audio) is Direction.RECVONLY
    assert audio.direction is Direction.SENDRECV  # media-level view alone
    assert video.connection == Connection("233.252.0.11", "IP4", ttl=127, count=3)
    assert text.connection == Connection("FF15::101", "IP6", count=3)
    assert text.information == "Captions" and text.key == "clear:secret"


def test_non_rtp_media_has_no_payload_types() -> None:
    sdp = parse_sdp(corpus("t38_fax"))
    image, audio = sdp.media
    assert image.formats == ("t38",) and image.payload_types == () and image.rtpmaps == ()
    assert image.attribute("T38FaxFillBitRemoval") is not None
    assert audio.is_rejected and not image.is_rejected
    assert sdp.connection == Connection("gw.example.net")


def test_bare_lf_accepted_and_written_as_crlf() -> None:
    lf = corpus("asterisk").replace(b"\r\n", b"\n")
    assert bytes(parse_sdp(lf)) == corpus("asterisk")


def test_str_input_and_missing_final_newline() -> None:
    text = corpus("freeswitch").decode()
    assert bytes(parse_sdp(text)) == corpus("freeswitch")
    assert bytes(parse_sdp(corpus("freeswitch")[:-2])) == corpus("freeswitch")


def test_trailing_blank_lines_tolerated() -> None:
    assert bytes(parse_sdp(corpus("asterisk") + b"\r\n\r\n")) == corpus("asterisk")


def test_non_utf8_text_survives_round_trip() -> None:
    data = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Caf\xe9\r\nt=0 0\r\n"
    sdp = parse_sdp(data)
    assert bytes(sdp) == data


def test_rejected_stream_needs_no_connection() -> None:
    sdp = parse_sdp(crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 0 RTP/AVP 0\n"))
    assert sdp.media[0].is_rejected and sdp.times == (Timing(),)


def test_missing_timing_is_tolerated() -> None:
    sdp = parse_sdp(crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 0\n"))
    assert sdp.times == ()


HEAD = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\n"
GOOD = HEAD + "c=IN IP4 192.0.2.1\nt=0 0\n"

MALFORMED = [
    ("", "SDP is empty"),
    ("\n", "SDP is empty"),
    ("v=1\no=- 1 1 IN IP4 192.0.2.1\ns=-\n", "SDP line 1 (v=): unsupported version"),
    ("o=- 1 1 IN IP4 192.0.2.1\n", "SDP line 1 (o=): expected v= line"),
    ("v=0\n", "SDP line 2: expected o= line"),
    ("v=0\no=- 1 1 IN IP4 192.0.2.1\n", "SDP line 3: expected s= line"),
    ("v=0\ns=-\n", "SDP line 2 (s=): expected o= line"),
    ("v=0\no=- 1 1 IN IP4\ns=-\n", "SDP line 2 (o=): bad origin"),
    ("v=0\no=-  1 1 IN IP4 192.0.2.1\ns=-\n", "SDP line 2 (o=): bad origin"),
    ("v=0\no=- x1 1 IN IP4 192.0.2.1\ns=-\n", "SDP line 2 (o=): bad session id"),
    ("v=0\no=- 1 +1 IN IP4 192.0.2.1\ns=-\n", "SDP line 2 (o=): bad session version"),
    ("v=0\no=- 1 1 I\"N IP4 192.0.2.1\ns=-\n", "SDP line 2 (o=): bad network type"),
    (HEAD + "c=IN IP4 999.1.1.1\n", "SDP line 4 (c=): bad address"),
    (HEAD + "c=IN IP4 2001:db8::1\n", "SDP line 4 (c=): bad address"),
    (HEAD + "c=IN IP6 2001:db8::g\n", "SDP line 4 (c=): bad address"),
    (HEAD + "c=IN IP6 -bad-\n", "SDP line 4 (c=): bad address"),
    (HEAD + "c=IN IP6 ff15::1/3/2\n", "SDP line 4 (c=): bad connection address"),
    (HEAD + "c=IN IP4 224.2.1.1/1/2/3\n", "SDP line 4 (c=): bad connection address"),
    (HEAD + "c=IN IP4 224.2.1.1/300\n", "SDP line 4 (c=): bad ttl"),
    (HEAD + "c=IN IP4 224.2.1.1/x\n", "SDP line 4 (c=): bad ttl"),
    (HEAD + "c=IN IP4 224.2.1.1/1/0\n", "SDP line 4 (c=): bad address count"),
    (HEAD + "c=IN IP4\n", "SDP line 4 (c=): bad connection"),
    (HEAD + "c=IN X25 a/b\n", "SDP line 4 (c=): bad address"),
    (GOOD + "m=audio 70000 RTP/AVP 0\n", "SDP line 6 (m=): bad port"),
    (GOOD + "m=audio abc RTP/AVP 0\n", "SDP line 6 (m=): bad port"),
    (GOOD + "m=audio 4000/0 RTP/AVP 0\n", "SDP line 6 (m=): bad port count"),
    (GOOD + "m=audio 4000/ RTP/AVP 0\n", "SDP line 6 (m=): bad port count"),
    (GOOD + "m=audio 4000 RTP/AVP\n", "SDP line 6 (m=): bad media line"),
    (GOOD + "m=audio 4000 RTP/AVP 0  8\n", "SDP line 6 (m=): bad media line"),
    (GOOD + "m=audio 4000 RTP/AVP 128\n", "SDP line 6 (m=): bad payload type"),
    (GOOD + "m=audio 4000 RTP/AVP PCMU\n", "SDP line 6 (m=): bad payload type"),
    (GOOD + "m=audio 4000 RT@P 0\n", "SDP line 6 (m=): bad transport protocol"),
    (GOOD + "m=au:dio 4000 RTP/AVP 0\n", "SDP line 6 (m=): bad media type"),
    (GOOD + "m=image 4000 udptl t:38\n", "SDP line 6 (m=): bad format"),
    (HEAD + "b=AS\n", "SDP line 4 (b=): bad bandwidth"),
    (HEAD + "b=AS:x\n", "SDP line 4 (b=): bad bandwidth"),
    (HEAD + "b=A/S:1\n", "SDP line 4 (b=): bad bandwidth type"),
    (HEAD + "t=0\n", "SDP line 4 (t=): bad timing"),
    (HEAD + "t=a 0\n", "SDP line 4 (t=): bad start time"),
    (HEAD + "t=0 b\n", "SDP line 4 (t=): bad stop time"),
    (HEAD + "t=123456789012345678901 0\n", "SDP line 4 (t=): bad start time"),
    (HEAD + "t=0 0\nr=7d 1h\n", "SDP line 5 (r=): bad repeat time"),
    (HEAD + "c=IN IP4 192.0.2.1\nr=7d 1h 0 25h\n", "SDP line 5 (r=): repeat time without t= line"),
    (GOOD + "a=x\nr=7d 1h 0 25h\n", "SDP line 7 (r=): repeat time without t= line"),
    (GOOD + "z=bad\n", "SDP line 6 (z=): bad time zone adjustment"),
    (GOOD + "a=:x\n", "SDP line 6 (a=): bad attribute name"),
    (GOOD + "a=rtp map\n", "SDP line 6 (a=): bad attribute name"),
    (GOOD + "a=\n", "SDP line 6 (a=): bad attribute name"),
    (GOOD + "x=1\n", "SDP line 6 (x=): unknown line type"),
    (GOOD + "foo\n", "SDP line 6: not a <type>=<value> line"),
    (GOOD + "a = b\n", "SDP line 6: not a <type>=<value> line"),
    (GOOD + "A=b\n", "SDP line 6: not a <type>=<value> line"),
    (GOOD + "\na=x\n", "SDP line 6: not a <type>=<value> line"),
    (GOOD + "a\n", "SDP line 6: not a <type>=<value> line"),
    (GOOD + "a=x\ry\n", "SDP line 6 (a=): control character in value"),
    (GOOD + "a=x\x00\n", "SDP line 6 (a=): control character in value"),
    (HEAD + "t=0 0\nc=IN IP4 192.0.2.1\n", "SDP line 5 (c=): out of order or repeated"),
    (GOOD + "c=IN IP4 192.0.2.1\n", "SDP line 6 (c=): out of order or repeated"),
    (HEAD + "i=a\ni=b\n", "SDP line 5 (i=): out of order or repeated"),
    (GOOD + "z=0 0\nz=0 0\n", "SDP line 7 (z=): out of order or repeated"),
    (GOOD + "m=audio 4000 RTP/AVP 0\na=x\nc=IN IP4 192.0.2.1\n", "SDP line 8 (c=): out of order or repeated"),
    (GOOD + "m=audio 4000 RTP/AVP 0\ni=a\ni=b\n", "SDP line 8 (i=): out of order or repeated"),
    (GOOD + "m=audio 4000 RTP/AVP 0\nk=prompt\nk=prompt\n", "SDP line 8 (k=): out of order or repeated"),
    (GOOD + "m=audio 4000 RTP/AVP 0\nt=0 0\n", "SDP line 7 (t=): not allowed here"),
    (GOOD + "v=0\n", "SDP line 6 (v=): not allowed here"),
    (GOOD + "o=- 1 1 IN IP4 192.0.2.1\n", "SDP line 6 (o=): not allowed here"),
    (GOOD + "s=-\n", "SDP line 6 (s=): not allowed here"),
    (HEAD + "t=0 0\nm=audio 4000 RTP/AVP 0\n", "SDP line 5 (m=): no connection address for stream"),
    (HEAD + "u=\n", "SDP line 4 (u=): empty value"),
    (HEAD + "e=\n", "SDP line 4 (e=): empty value"),
    (HEAD + "p=\n", "SDP line 4 (p=): empty value"),
    (GOOD + "k=\n", "SDP line 6 (k=): empty value"),
    (GOOD + "m=audio 4000 RTP/AVP 0\nk=\n", "SDP line 7 (k=): empty value"),
    (GOOD + "m=audio 4000 RTP/AVP 0\nb=AS:x\n", "SDP line 7 (b=): bad bandwidth"),
    (GOOD + "m=audio 4000 RTP/AVP 0\nc=IN IP4 1.2.3\n", "SDP line 7 (c=): bad address"),
]


@pytest.mark.parametrize(("text", "reason"), MALFORMED)
def test_malformed_raises_parse_error_naming_the_line(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_sdp(crlf(text))
    assert info.value.reason == reason
    assert info.value.status == 400


def test_size_limit() -> None:
    data = corpus("carrier")
    assert parse_sdp(data, max_size=len(data))
    with pytest.raises(MessageTooLarge) as info:
        parse_sdp(data, max_size=len(data) - 1)
    assert info.value.status == 413


def test_line_limit() -> None:
    data = corpus("asterisk")
    lines = data.count(b"\r\n")
    assert parse_sdp(data, max_lines=lines)
    with pytest.raises(MessageTooLarge):
        parse_sdp(data, max_lines=lines - 1)
