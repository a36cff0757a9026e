"""Property tests: round trips, hostile mutations, stream reassembly.

The receive path may only fail with :class:`ProtocolError` (and its subclasses): never an
IndexError, ValueError, UnicodeError or RecursionError that would kill a receive loop.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipline.sip.errors import ProtocolError
from sipline.sip.message import Request, StreamFramer, parse_message
from sipline.sip.message.address import parse_name_addr
from sipline.sip.message.model import fast_name_addr
from sipline.sip.message.parser import validate_strict

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sip"
CORPUS = [p.read_bytes() for p in sorted(FIXTURES.glob("*/*.sip"))]
VALID = []
for _data in CORPUS:
    try:
        _msg = parse_message(_data)
        validate_strict(_msg)
    except ProtocolError:
        continue
    if bytes(_msg) == _data:
        VALID.append(_data)

STREAMABLE = []
for _data in VALID:
    try:
        parse_message(_data, datagram=False)
    except ProtocolError:
        continue
    STREAMABLE.append(_data)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACCESSORS = ("via", "vias", "from_", "to", "contacts", "routes", "record_routes", "cseq", "call_id",
             "max_forwards", "expires", "content_length", "require", "supported", "allow")


def exercise(data: bytes) -> None:
    """Parse and touch every typed view; only ProtocolError may escape."""
    try:
        msg = parse_message(data, validate=False)
    except ProtocolError:
        return
    for name in ACCESSORS:
        try:
            getattr(msg, name)
        except ProtocolError:
            pass
    if isinstance(msg, Request):
        try:
            msg.uri  # noqa: B018
        except ProtocolError:
            pass
    try:
        validate_strict(msg)
    except ProtocolError:
        pass
    bytes(msg)


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=1, max_size=12)
value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=30).map(str.strip)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    method = draw(token)
    branch = draw(token)
    extra = draw(st.lists(st.tuples(token.map(lambda t: "X-" + t), value), max_size=6))
    body = draw(st.binary(max_size=80))
    lines = [
        f"{method} sip:{draw(token)}@example.com SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch}",
        f"From: <sip:a@example.com>;tag={draw(token)}",
        "To: <sip:b@example.com>",
        f"Call-ID: {draw(token)}",
        f"CSeq: {draw(st.integers(0, 2**31 - 1))} {method}",
        f"Max-Forwards: {draw(st.integers(0, 255))}",
    ]
    lines += [f"{n}: {v}" for n, v in extra]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@SETTINGS
@given(messages())
def test_generated_roundtrip(data: bytes) -> None:
    msg = parse_message(data)
    out = bytes(msg)
    assert out == data
    again = parse_message(out)
    assert again.start_line() == msg.start_line()
    assert list(again.headers) == list(msg.headers) and again.body == msg.body


@SETTINGS
@given(messages(), st.data())
def test_generated_rebuilt_headers_roundtrip(data: bytes, draw: st.DataObject) -> None:
    msg = parse_message(data)
    # Rewrite one field: serialisation must re-render it and keep the rest.
    names = [n for n, _ in msg.headers]
    name = draw.draw(st.sampled_from(names))
    msg.headers.set(name, msg.headers.get(name) or "x")
    again = parse_message(bytes(msg), validate=False)
    assert list(again.headers) == list(msg.headers) and again.body == msg.body


@SETTINGS
@given(st.sampled_from(CORPUS), st.data())
def test_mutations_raise_only_protocol_errors(data: bytes, draw: st.DataObject) -> None:
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        kind = draw.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if kind == "flip" and mutated:
            mutated[pos] = draw.draw(st.integers(0, 255))
        elif kind == "insert":
            mutated[pos:pos] = draw.draw(st.sampled_from([b",", b";", b"\r\n", b"\r\n ", b'"', b"<", b">", b":", b"\x00", b"\xff", b"=", b"[", b"%", b" "]))
        elif kind == "delete":
            del mutated[pos : pos + draw.draw(st.integers(1, 8))]
        else:
            del mutated[pos:]
    exercise(bytes(mutated))


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    exercise(b"INVITE sip:a@b SIP/2.0\r\n" + data)
    exercise(data)


@SETTINGS
@given(st.lists(st.sampled_from(STREAMABLE), min_size=1, max_size=5), st.data())
def test_framer_reassembles_random_chunkings(picked: list[bytes], draw: st.DataObject) -> None:
    stream = b"".join(picked)
    framer = StreamFramer()
    frames: list[bytes] = []
    pos = 0
    while pos < len(stream):
        size = draw.draw(st.integers(1, 400))
        framer.feed(stream[pos : pos + size])
        pos += size
        while (frame := framer.next_frame()) is not None:
            assert isinstance(frame, bytes)
            frames.append(frame)
    assert frames == picked
    assert framer.buffered == 0


def _name_addr_values() -> list[str]:
    out = []
    for data in VALID:
        msg = parse_message(data)
        for key in ("from", "to", "route", "record-route", "contact"):
            out.extend(v for v in msg.headers.values_of(key) if "," not in v and v.strip() != "*")
    return out


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_name_addr_values()), st.sampled_from(["", ";q=0.5", ";x=1", ";tag=a", " ", ";lr"]))
def test_fast_name_addr_agrees_with_the_full_grammar(value: str, suffix: str) -> None:
    text = value + suffix
    try:
        expected = parse_name_addr(text)
    except ProtocolError:
        try:
            fast_name_addr(text)
        except ProtocolError:
            return
        raise AssertionError(f"fast path accepted {text!r}") from None
    assert fast_name_addr(text) == expected
