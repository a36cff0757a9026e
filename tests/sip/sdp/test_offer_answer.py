"""RFC 3264 offer/answer: offers, answers, negotiation outcome, hold and resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipline.sip.errors import ProtocolError, UsageError
from sipline.sip.sdp import (
    Attribute,
    Codec,
    CodecOrder,
    Connection,
    Direction,
    LocalSession,
    MediaCapabilities,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    build_answer,
    build_offer,
    hold,
    is_hold,
    negotiate,
    next_version,
    parse_sdp,
    resume,
)

CORPUS = Path(__file__).parent / "corpus"
S, R, I, SR = Direction.SENDONLY, Direction.RECVONLY, Direction.INACTIVE, Direction.SENDRECV
PCMU, PCMA, G722 = Codec("PCMU", 8000), Codec("PCMA", 8000), Codec("G722", 8000)
OPUS = Codec("opus", 48000, 2, "useinbandfec=1")


def corpus(name: str) -> SessionDescription:
    return parse_sdp((CORPUS / f"{name}.sdp").read_bytes())


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def local(*streams: MediaCapabilities, address: str = "192.0.2.10", version: int = 1) -> LocalSession:
    return LocalSession(address, "4242", version, streams, username="sipline")


def stream(*codecs: Codec, **kwargs: object) -> MediaCapabilities:
    kwargs.setdefault("port", 4000)
    return MediaCapabilities(codecs=codecs, **kwargs)  # type: ignore[arg-type]


def offer_with(direction: str | None = None, connection: str = "192.0.2.1", extra: str = "",
               session_attr: str = "") -> SessionDescription:
    lines = f"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 {connection}\nt=0 0\n{session_attr}"
    lines += "m=audio 6000 RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\n"
    if direction:
        lines += f"a={direction}\n"
    return parse_sdp(crlf(lines + extra))


# -- offers -------------------------------------------------------------------------------


def test_offer_bytes() -> None:
    offer = build_offer(local(stream(PCMU, PCMA, G722, ptime=20)))
    assert bytes(offer) == crlf(
        "v=0\no=sipline 4242 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n"
        "m=audio 4000 RTP/AVP 0 8 9 101\n"
        "a=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:9 G722/8000\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=ptime:20\na=sendrecv\n"
    )
    assert parse_sdp(bytes(offer)) == offer


def test_offer_ipv6_video_and_dynamic_types() -> None:
    caps_audio = stream(OPUS, PCMU, Codec("AMR", 8000, payload_type=97, fmtp="octet-align=1"),
                        maxptime=40, direction=S, extra_attributes=(Attribute("rtcp-mux"),))
    caps_video = stream(Codec("H264", 90000, fmtp="packetization-mode=1"), Codec("VP8", 90000),
                        media="video", port=4002, address="2001:db8::99")
    offer = build_offer(local(caps_audio, caps_video, address="2001:db8::10"))
    assert bytes(offer) == crlf(
        "v=0\no=sipline 4242 1 IN IP6 2001:db8::10\ns=-\nc=IN IP6 2001:db8::10\nt=0 0\n"
        "m=audio 4000 RTP/AVP 96 0 97 101 98\n"
        "a=rtpmap:96 opus/48000/2\na=fmtp:96 useinbandfec=1\na=rtpmap:0 PCMU/8000\n"
        "a=rtpmap:97 AMR/8000\na=fmtp:97 octet-align=1\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n"
        "a=rtpmap:98 telephone-event/48000\na=fmtp:98 0-16\n"
        "a=maxptime:40\na=sendonly\na=rtcp-mux\n"
        # payload type numbers are per m-line: video starts again at 96
        "m=video 4002 RTP/AVP 96 97\nc=IN IP6 2001:db8::99\n"
        "a=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=1\na=rtpmap:97 VP8/90000\na=sendrecv\n"
    )


def test_offer_without_telephone_event() -> None:
    offer = build_offer(local(stream(PCMA, telephone_event=False)))
    assert offer.media[0].formats == ("8",)


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_offer(local(stream(Codec("A", 8000, payload_type=96), Codec("B", 8000, payload_type=96)))),
        lambda: build_offer(local(stream(*(Codec(f"X{i}", 8000) for i in range(33)), telephone_event=False))),
        lambda: stream(),
        lambda: stream(PCMU, port=0),
        lambda: Codec("bad/name", 8000),
    ],
)
def test_offer_misuse(build: object) -> None:
    with pytest.raises(UsageError):
        build()  # type: ignore[operator]


# -- answers ------------------------------------------------------------------------------


def test_answer_to_desk_phone_bytes() -> None:
    answer = build_answer(corpus("desk_phone"), local(stream(PCMA, PCMU, ptime=20)))
    assert bytes(answer) == crlf(
        "v=0\no=sipline 4242 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n"
        "m=audio 4000 RTP/AVP 8 0 101\n"
        "a=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=ptime:20\na=sendrecv\n"
    )


@pytest.mark.parametrize(
    ("order", "single", "formats"),
    [
        (CodecOrder.LOCAL, False, ("8", "0", "101")),
        (CodecOrder.OFFER, False, ("0", "8", "101")),
        (CodecOrder.LOCAL, True, ("8", "101")),
        (CodecOrder.OFFER, True, ("0", "101")),
    ],
)
def test_answer_codec_order(order: CodecOrder, single: bool, formats: tuple[str, ...]) -> None:
    answer = build_answer(corpus("desk_phone"), local(stream(PCMA, PCMU)), order=order, single_codec=single)
    assert answer.media[0].formats == formats


def test_answer_keeps_offerer_dynamic_payload_types() -> None:
    answer = build_answer(corpus("webrtc"), local(stream(OPUS, PCMU, proto="UDP/TLS/RTP/SAVPF")))
    audio = answer.media[0]
    assert audio.formats == ("111", "0", "110")  # opus keeps 111, te at opus' 48 kHz
    assert audio.rtpmap(111) == RtpMap(111, "opus", 48000, 2)
    assert audio.fmtp(111) == "useinbandfec=1"  # local fmtp wins over the offer's
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    # video and data channel have no local stream: rejected, formats copied, no attributes
    assert str(answer.media[1]) == "m=video 0 UDP/TLS/RTP/SAVPF 96 97\r\n"
    assert str(answer.media[2]) == "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"


def test_answer_telephone_event_follows_chosen_codec_rate() -> None:
    answer = build_answer(corpus("webrtc"), local(stream(PCMU, proto="UDP/TLS/RTP/SAVPF")))
    assert answer.media[0].formats == ("0", "126")
    assert answer.media[0].fmtp(126) == "0-16"


@pytest.mark.parametrize(
    ("offer_name", "te_local", "formats"),
    [
        ("desk_phone", False, ("0",)),
        ("legacy_hold", True, ("0",)),  # not offered
        ("softphone", True, ("0", "100")),  # te at 8 kHz matches PCMU
    ],
)
def test_answer_telephone_event_only_when_both_support(offer_name: str, te_local: bool,
                                                       formats: tuple[str, ...]) -> None:
    answer = build_answer(corpus(offer_name), local(stream(PCMU, telephone_event=te_local)))
    assert answer.media[0].formats == formats


def test_answer_falls_back_to_first_telephone_event_when_rates_differ() -> None:
    offer = parse_sdp(crlf(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
        "m=audio 6000 RTP/AVP 9 101\na=rtpmap:9 G722/8000\na=rtpmap:101 telephone-event/16000\n"))
    answer = build_answer(offer, local(stream(Codec("G722", 8000))))
    assert answer.media[0].rtpmaps[1] == RtpMap(101, "telephone-event", 16000)


def test_answer_echoes_offer_fmtp_when_local_has_none() -> None:
    answer = build_answer(corpus("desk_phone"), local(stream(Codec("G729", 8000))))
    assert answer.media[0].fmtp(18) == "annexb=no"


def test_answer_rejects_extra_and_unsupported_streams() -> None:
    offer = parse_sdp(crlf(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
        "m=audio 6000 RTP/AVP 0\nm=audio 6002 RTP/AVP 0\nm=audio 6004 RTP/SAVP 0\n"
        "m=audio 0 RTP/AVP 0\nm=audio 6006 RTP/AVP 3\nm=video 6008 RTP/AVP 31\n"))
    answer = build_answer(offer, local(stream(PCMU), stream(Codec("GSM", 8000), port=4002),
                                       stream(Codec("H261", 90000), media="video", port=4004)))
    assert [(m.port, m.formats) for m in answer.media] == [
        (4000, ("0",)),  # first local audio stream
        (0, ("0",)),  # second local audio stream has no PCMU: rejected, not reused
        (0, ("0",)),  # SRTP not supported
        (0, ("0",)),  # already disabled by the offerer
        (4002, ("3",)),  # GSM stream still free
        (4004, ("31",)),
    ]


def test_answer_tries_every_free_local_stream() -> None:
    offer = parse_sdp(crlf(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
        "m=audio 6000 RTP/AVP 3\nm=audio 6002 RTP/AVP 0\n"))
    answer = build_answer(offer, local(stream(PCMU), stream(Codec("GSM", 8000), port=4002)))
    assert [(m.port, m.formats) for m in answer.media] == [(4002, ("3",)), (4000, ("0",))]


def test_answer_with_nothing_acceptable_is_488() -> None:
    with pytest.raises(ProtocolError) as info:
        build_answer(corpus("srtp_sdes"), local(stream(PCMU)))
    assert info.value.status == 488


def test_answer_to_all_disabled_offer_is_allowed() -> None:
    offer = parse_sdp(crlf("v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 0 RTP/AVP 0\n"))
    assert build_answer(offer, local(stream(PCMU))).media[0].is_rejected


@pytest.mark.parametrize(
    ("offered", "local_dir", "answered"),
    [
        (None, SR, SR),
        ("sendrecv", S, S),
        ("sendrecv", R, R),
        ("sendonly", SR, R),
        ("recvonly", SR, S),
        ("inactive", SR, I),
        ("sendonly", S, I),
        ("recvonly", R, I),
    ],
)
def test_answer_direction_rules(offered: str | None, local_dir: Direction, answered: Direction) -> None:
    answer = build_answer(offer_with(offered), local(stream(PCMU, direction=local_dir)))
    assert answer.media[0].direction is answered


def test_answer_honours_session_level_direction() -> None:
    offer = offer_with(session_attr="a=sendonly\n")
    assert build_answer(offer, local(stream(PCMU))).media[0].direction is R


@pytest.mark.parametrize(
    ("direction", "extra", "answered"),
    [
        (None, "", R),  # RFC 2543 hold: c=0.0.0.0 with sendrecv
        ("recvonly", "", I),
        (None, "a=ice-ufrag:abcd\n", SR),  # ICE placeholder address is not a hold
    ],
)
def test_answer_to_legacy_hold(direction: str | None, extra: str, answered: Direction) -> None:
    offer = offer_with(direction, connection="0.0.0.0", extra=extra)
    assert build_answer(offer, local(stream(PCMU))).media[0].direction is answered


# -- negotiation outcome ---------------------------------------------------------------------


def test_negotiate_from_both_sides() -> None:
    offer = build_offer(local(stream(OPUS, PCMU, PCMA, ptime=20)))
    answer = build_answer(offer, local(stream(PCMA, PCMU, port=5000, ptime=30), address="2001:db8::5"))
    ours = negotiate(offer, answer, we_offered=True)[0]
    assert (ours.active, ours.direction, ours.remote_address, ours.remote_port) == (True, SR, "2001:db8::5", 5000)
    assert ours.codec == RtpMap(8, "PCMA", 8000)
    assert ours.codecs == (RtpMap(8, "PCMA", 8000), RtpMap(0, "PCMU", 8000))
    assert ours.telephone_event == RtpMap(101, "telephone-event", 8000)
    assert ours.fmtp is None and ours.ptime == 30 and not ours.remote_hold
    theirs = negotiate(offer, answer, we_offered=False)[0]
    assert (theirs.remote_address, theirs.remote_port, theirs.ptime) == ("192.0.2.10", 4000, 20)
    assert theirs.codec == RtpMap(8, "PCMA", 8000)


def test_negotiate_uses_each_sides_payload_numbers() -> None:
    offer = parse_sdp(crlf(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
        "m=audio 6000 RTP/AVP 111 0 101\na=rtpmap:111 opus/48000/2\na=fmtp:111 stereo=1\n"
        "a=rtpmap:101 telephone-event/48000\n"))
    answer = parse_sdp(crlf(
        "v=0\no=- 2 1 IN IP4 192.0.2.2\ns=-\nc=IN IP4 192.0.2.2\nt=0 0\n"
        "m=audio 7000 RTP/AVP 96 97\na=rtpmap:96 opus/48000/2\na=fmtp:96 stereo=0\n"
        "a=rtpmap:97 telephone-event/48000\n"))
    as_offerer = negotiate(offer, answer, we_offered=True)[0]
    assert as_offerer.codec == RtpMap(96, "opus", 48000, 2) and as_offerer.fmtp == "stereo=0"
    assert as_offerer.telephone_event == RtpMap(97, "telephone-event", 48000)
    assert as_offerer.codecs == (RtpMap(96, "opus", 48000, 2),)  # PCMU not in answer
    as_answerer = negotiate(offer, answer, we_offered=False)[0]
    assert as_answerer.codec == RtpMap(111, "opus", 48000, 2) and as_answerer.fmtp == "stereo=1"
    assert as_answerer.telephone_event == RtpMap(101, "telephone-event", 48000)


@pytest.mark.parametrize(
    ("offered", "answered", "we_offered", "ours"),
    [
        ("sendonly", "recvonly", True, S),
        ("sendonly", "recvonly", False, R),
        ("recvonly", "sendonly", True, R),
        ("inactive", "inactive", True, I),
        ("sendrecv", "sendrecv", False, SR),
        ("sendrecv", "recvonly", True, S),
    ],
)
def test_negotiate_direction_from_our_side(offered: str, answered: str, we_offered: bool,
                                           ours: Direction) -> None:
    offer = offer_with(offered)
    answer = offer_with(answered)
    assert negotiate(offer, answer, we_offered=we_offered)[0].direction is ours


def test_negotiate_null_connections() -> None:
    held_by_them = offer_with(None, connection="0.0.0.0")
    normal = offer_with(None)
    assert negotiate(normal, held_by_them, we_offered=True)[0].direction is R
    outcome = negotiate(held_by_them, normal, we_offered=True)[0]
    assert outcome.direction is S and not outcome.remote_hold
    assert negotiate(normal, held_by_them, we_offered=True)[0].remote_hold


def test_negotiate_without_remote_connection() -> None:
    media = MediaDescription("audio", 6000, "RTP/AVP", ("0",))
    remote = SessionDescription(Origin("-", "1", 1, "h"), media=(media,))
    outcome = negotiate(offer_with(None), remote, we_offered=True)[0]
    assert outcome.remote_address is None and outcome.direction is R


def test_negotiate_rejected_and_codecless_streams() -> None:
    offer = offer_with(None)
    rejected = offer.with_media(0, offer.media[0].with_port(0))
    assert negotiate(offer, rejected, we_offered=True)[0].active is False
    codecless = offer.with_media(0, MediaDescription("audio", 6000, "RTP/AVP", ("3",)))
    outcome = negotiate(offer, codecless, we_offered=True)[0]
    assert (outcome.active, outcome.codec, outcome.direction) == (False, None, I)


def test_negotiate_rejects_mismatched_answers() -> None:
    offer = corpus("softphone")
    with pytest.raises(ProtocolError) as info:
        negotiate(offer, offer_with(None), we_offered=True)
    assert info.value.status == 488
    assert info.value.reason == "SDP answer has 1 m-lines, offer had 2"
    swapped = offer.replace(media=offer.media[::-1])
    with pytest.raises(ProtocolError, match="media type"):
        negotiate(offer, swapped, we_offered=True)


# -- versions, hold and resume ----------------------------------------------------------------


def test_next_version_only_when_changed() -> None:
    previous = build_offer(local(stream(PCMU)))
    same = build_offer(local(stream(PCMU), version=9))  # caller's version is ignored
    assert next_version(previous, same) is previous
    changed = next_version(previous, build_offer(local(stream(PCMU, port=4010))))
    assert changed.origin == previous.origin.bumped()
    assert changed.media[0].port == 4010


def test_hold_and_resume_cycle() -> None:
    offer = build_offer(local(stream(PCMU), stream(Codec("H261", 90000), media="video", port=4002)))
    offer = offer.with_media(1, offer.media[1].with_port(0))
    held = hold(offer)
    assert [m.direction for m in held.media] == [S, SR]  # rejected stream untouched
    assert held.origin.session_version == 2 and is_hold(held)
    assert hold(held) is held  # nothing changes, no version bump
    inactive = hold(held, inactive=True)
    assert inactive.media[0].direction is I and inactive.origin.session_version == 3
    resumed = resume(inactive)
    assert resumed.media[0].direction is SR and resumed.origin.session_version == 4
    assert not is_hold(resumed)
    assert str(resumed.media[0]).endswith("a=sendrecv\r\n")


def test_hold_of_recvonly_stream_is_inactive() -> None:
    offer = build_offer(local(stream(PCMU, direction=R)))
    assert hold(offer).media[0].direction is I


@pytest.mark.parametrize(
    ("name", "held"),
    [
        ("legacy_hold", True),
        ("srtp_sdes", True),  # a=inactive
        ("desk_phone", False),
        ("softphone", False),  # audio sendrecv, video recvonly
        ("multicast_full", False),  # session-level recvonly: not a hold
        ("webrtc", False),  # 0.0.0.0 with ICE
    ],
)
def test_is_hold_sessions(name: str, held: bool) -> None:
    assert is_hold(corpus(name)) is held


def test_is_hold_media_alone_and_in_context() -> None:
    sdp = offer_with(None, session_attr="a=sendonly\n")
    media = sdp.media[0]
    assert not is_hold(media)
    assert is_hold(media, sdp)
    assert is_hold(media.with_connection(Connection("0.0.0.0")))
    assert not is_hold(media.with_direction(I).with_port(0))
    assert not is_hold(sdp.replace(media=()))
