"""Our own SDP o= line per side: nothing of the sender's origin crosses, one session id per
side, the version moves exactly when the description changes (RFC 3264 §8)."""

from __future__ import annotations

from sipline.sip.b2bua.topology import OriginWriter, scrub_sdp
from sipline.sip.sdp import parse_sdp

SDP = (
    "v=0\r\no=CarrierSBC 998877 41 IN IP4 198.51.100.9\r\ns=CarrierSBC\r\n"
    "c=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 50000 RTP/AVP 0\r\n"
)


def test_fresh_origin_hides_the_sender() -> None:
    writer = OriginWriter("tok-1")
    out = scrub_sdp(SDP.encode(), "192.0.2.1", origin=writer)
    origin = parse_sdp(out).origin
    assert (origin.username, origin.address, origin.session_version) == ("-", "192.0.2.1", 1)
    assert origin.session_id == writer.session_id and origin.session_id != "998877"
    for leak in (b"CarrierSBC", b"998877", b"198.51.100.9"):
        assert leak not in out
    assert b"s=-\r\n" in out


def test_version_moves_only_on_change_and_sides_differ() -> None:
    writer = OriginWriter("tok-1")
    first = parse_sdp(scrub_sdp(SDP.encode(), "192.0.2.1", origin=writer)).origin
    # The same description again (the sender bumped its own version): ours stays.
    again = parse_sdp(scrub_sdp(SDP.replace(" 41 ", " 42 ").encode(), "192.0.2.1", origin=writer)).origin
    assert again.session_version == first.session_version == 1
    held = SDP + "a=sendonly\r\n"
    changed = parse_sdp(scrub_sdp(held.encode(), "192.0.2.1", origin=writer)).origin
    assert changed.session_version == 2 and changed.session_id == first.session_id
    other = OriginWriter("tok-2")
    assert other.session_id != writer.session_id


def test_without_writer_the_ids_are_kept_and_garbage_passes() -> None:
    origin = parse_sdp(scrub_sdp(SDP.encode(), "192.0.2.1")).origin
    assert (origin.session_id, origin.session_version, origin.address) == ("998877", 41, "192.0.2.1")
    assert scrub_sdp(b"not sdp", "192.0.2.1", origin=OriginWriter("x")) == b"not sdp"
