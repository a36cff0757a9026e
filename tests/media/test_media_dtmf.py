"""RFC 4733: payload codec, the sender's plan byte for byte, the receiver's exactly-once."""

from __future__ import annotations

import pytest

from sipline.media.dtmf import (
    DtmfPacket,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
)
from sipline.media.errors import MediaParseError, MediaUsageError
from sipline.media.rtp import RtpPacket


@pytest.mark.parametrize(("digit", "event"), [("0", 0), ("9", 9), ("*", 10), ("#", 11), ("A", 12), ("d", 15)])
def test_digit_codes(digit: str, event: int) -> None:
    assert digit_to_event(digit) == event
    assert event_to_digit(event) == digit.upper()


@pytest.mark.parametrize("bad", ["E", "", "12", " "])
def test_bad_digit(bad: str) -> None:
    with pytest.raises(MediaUsageError):
        digit_to_event(bad)


def test_non_dtmf_event_has_no_digit() -> None:
    assert event_to_digit(16) is None


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (TelephoneEvent(1, False, 10, 400), bytes.fromhex("01 0a 0190")),
        (TelephoneEvent(11, True, 10, 800), bytes.fromhex("0b 8a 0320")),
        (TelephoneEvent(5, True, 63, 0xFFFF), bytes.fromhex("05 bf ffff")),
    ],
)
def test_payload_byte_exact(event: TelephoneEvent, wire: bytes) -> None:
    assert bytes(event) == wire
    assert TelephoneEvent.parse(wire) == event


def test_payload_reserved_bit_ignored_and_truncation_rejected() -> None:
    assert TelephoneEvent.parse(bytes.fromhex("01 4a 0190")) == TelephoneEvent(1, False, 10, 400)
    with pytest.raises(MediaParseError):
        TelephoneEvent.parse(b"\x01\x0a\x01")


@pytest.mark.parametrize("kwargs", [{"event": 256}, {"volume": 64}, {"duration": 0x10000}])
def test_payload_validation(kwargs: dict[str, int]) -> None:
    fields = {"event": 1, "volume": 10, "duration": 0} | kwargs
    with pytest.raises(ValueError):
        TelephoneEvent(**fields)  # type: ignore[arg-type]


def test_digit_plan_is_byte_exact() -> None:
    """Digit '1' held 120 ms, updates every 50 ms, three end packets 20 ms apart."""
    plan = DtmfSender().plan("1", timestamp=0x1000, duration=0.12)
    rtp = [bytes(p.to_rtp(payload_type=101, sequence=100 + i, ssrc=0xCAFE)) for i, p in enumerate(plan)]
    header = "0000cafe"
    assert rtp == [
        bytes.fromhex("80e5 0064 00001000" + header + "010a0190"),  # marker, 50 ms covered
        bytes.fromhex("8065 0065 00001000" + header + "010a0320"),  # 100 ms covered
        bytes.fromhex("8065 0066 00001000" + header + "018a03c0"),  # end, 120 ms
        bytes.fromhex("8065 0067 00001000" + header + "018a03c0"),
        bytes.fromhex("8065 0068 00001000" + header + "018a03c0"),
    ]
    assert [round(p.offset, 3) for p in plan] == [0.0, 0.05, 0.1, 0.12, 0.14]


def test_short_digit_starts_with_its_end_packet() -> None:
    plan = DtmfSender(update_interval=0.05, end_interval=0.0).plan("#", 7, 0.04)
    assert [(p.marker, p.payload.end, p.payload.duration, p.offset) for p in plan] == [
        (True, True, 320, 0.0), (False, True, 320, 0.0), (False, True, 320, 0.0)
    ]


def test_long_digit_duration_saturates() -> None:
    plan = DtmfSender(update_interval=1.0).plan("0", 0, 10.0)
    assert plan[-1].payload.duration == 0xFFFF


@pytest.mark.parametrize(
    "kwargs", [{"update_interval": 0.0}, {"end_interval": -1.0}, {"end_repeats": 0}]
)
def test_sender_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(MediaUsageError):
        DtmfSender(**kwargs)  # type: ignore[arg-type]


def test_plan_rejects_zero_duration() -> None:
    with pytest.raises(MediaUsageError):
        DtmfSender().plan("1", 0, 0.0)


def _packets(digit: str, timestamp: int, first_seq: int) -> list[RtpPacket]:
    plan = DtmfSender().plan(digit, timestamp, 0.1)
    return [p.to_rtp(101, first_seq + i, 1) for i, p in enumerate(plan)]


def _digits(receiver: DtmfReceiver, packets: list[RtpPacket]) -> list[str]:
    return [d.digit for p in packets if (d := receiver.feed(p)) is not None]


def test_receiver_reports_each_event_once() -> None:
    receiver = DtmfReceiver(101)
    packets = _packets("1", 1000, 0) + _packets("5", 3000, 4) + _packets("1", 5000, 8)
    assert _digits(receiver, packets) == ["1", "5", "1"]
    assert receiver.duplicates == len(packets) - 3


def test_receiver_handles_duplicates_reordering_and_lost_start() -> None:
    receiver = DtmfReceiver(101)
    one, five, nine = _packets("1", 1000, 0), _packets("5", 3000, 4), _packets("9", 5000, 8)
    # '1' arrives twice over; '5' lost its start and update; '9' is reordered with '5'.
    stream = one + one[::-1] + [nine[1], five[3], nine[0], five[2]] + nine
    digits = [d for p in stream if (d := receiver.feed(p)) is not None]
    assert [d.digit for d in digits] == ["1", "9", "5"]
    five_event = digits[2]
    assert five_event.ended and five_event.duration == 800 and five_event.timestamp == 3000


def test_receiver_ignores_other_payloads_non_dtmf_and_stale_events() -> None:
    receiver = DtmfReceiver(101, memory=2, stale=8000)
    audio = RtpPacket(0, 1, 1, 1, b"\xff" * 160)
    flash = RtpPacket(101, 1, 50, 1, bytes(TelephoneEvent(16)))
    assert receiver.feed(audio) is None and receiver.feed(flash) is None
    assert receiver.ignored == 1
    assert _digits(receiver, _packets("1", 100_000, 10)) == ["1"]
    # An event far older than anything remembered is a stale straggler, not a new digit.
    assert _digits(receiver, _packets("2", 10, 20)) == []
    # The memory is bounded: after two newer events the first timestamp is forgotten.
    assert _digits(receiver, _packets("3", 101_000, 30) + _packets("4", 102_000, 40)) == ["3", "4"]
    assert _digits(receiver, _packets("1", 100_000, 10)) == ["1"]


def test_plan_entry_to_rtp_wraps_sequence() -> None:
    entry = DtmfPacket(0.0, True, 5, TelephoneEvent(1))
    assert entry.to_rtp(101, 65536 + 3, 9).sequence == 3
