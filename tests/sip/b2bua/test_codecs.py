"""Trimming an offer to a trunk's allowed codecs."""

from __future__ import annotations

from sipline.sip.b2bua.codecs import filter_codecs
from sipline.sip.sdp import parse_sdp

OFFER = (
    "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 9 101\r\n"
    "a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    "m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
).encode()


def test_keeps_allowed_codecs_and_events_in_order() -> None:
    out = filter_codecs(OFFER, ["pcma", "G722"])
    assert out is not None
    sdp = parse_sdp(out)
    assert sdp.media[0].formats == ("8", "9", "101")
    assert "a=fmtp:101 0-16" in out.decode()
    assert sdp.media[1].port == 0  # no allowed video codec: stream rejected


def test_nothing_left_is_none() -> None:
    assert filter_codecs(OFFER, ["G729"]) is None


def test_empty_policy_and_non_sdp_pass() -> None:
    assert filter_codecs(OFFER, []) == OFFER
    assert filter_codecs(b"garbage", ["PCMU"]) == b"garbage"
    assert filter_codecs(b"", ["PCMU"]) == b""


def test_unchanged_stream_is_kept_as_is() -> None:
    out = filter_codecs(OFFER, ["PCMU", "PCMA", "G722", "H264"])
    assert out is not None and parse_sdp(out).media == parse_sdp(OFFER).media
