"""RFC 3261 §16.3 request validation and the §16.6 step 8 loop-detecting branch."""

from __future__ import annotations

import pytest

from sipline.sip.errors import (
    BadExtension,
    LoopDetected,
    ParseError,
    ProtocolError,
    TooManyHops,
    UnsupportedURIScheme,
    UsageError,
)
from sipline.sip.message import Request, parse_message
from sipline.sip.proxy import (
    LOOP_HASH_LENGTH,
    compose_branch,
    loop_branch,
    prepare_forward,
    split_branch,
    validate_request,
)

OWN = {"p.example.com:5060"}
SECRET = b"k"


def make(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    *,
    extra: str = "",
    max_forwards: str | None = "70",
    vias: tuple[str, ...] = ("SIP/2.0/UDP ua.example.org;branch=z9hG4bKua1",),
) -> Request:
    lines = [f"{method} {uri} SIP/2.0"]
    lines += [f"Via: {v}" for v in vias]
    if max_forwards is not None:
        lines.append(f"Max-Forwards: {max_forwards}")
    lines += [
        "From: <sip:alice@example.org>;tag=f1",
        "To: <sip:bob@example.com>",
        "Call-ID: c1@ua",
        f"CSeq: 7 {method}",
    ]
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


@pytest.mark.parametrize(
    ("request_", "error", "status"),
    [
        (make(uri="http://example.com/x"), UnsupportedURIScheme, 416),
        (make(uri="mailto:bob@example.com"), UnsupportedURIScheme, 416),
        (make(uri="sip:bob@example.com?Subject=hi"), ParseError, 400),
        (make(max_forwards="0"), TooManyHops, 483),
        (make("BYE", max_forwards="0"), TooManyHops, 483),
        (make(extra="Proxy-Require: foo, 100rel"), BadExtension, 420),
    ],
    ids=["http-scheme", "mailto-scheme", "uri-headers", "mf0-invite", "mf0-bye", "proxy-require"],
)
def test_rejections(request_: Request, error: type[ProtocolError], status: int) -> None:
    with pytest.raises(error) as info:
        validate_request(request_, own_addresses=OWN, supported_options={"100REL"})
    assert info.value.status == status


@pytest.mark.parametrize(
    ("request_", "answer_locally"),
    [
        (make(), False),
        (make(uri="tel:+15551234567"), False),
        (make(uri="sips:bob@example.com"), False),
        (make(max_forwards=None), False),
        (make(max_forwards="1"), False),
        (make("OPTIONS", max_forwards="0"), True),
        (make(extra="Proxy-Require: 100rel"), False),
        # ACK and CANCEL never act on Proxy-Require (§8.2.2.3).
        (make("ACK", extra="Proxy-Require: foo"), False),
        (make("CANCEL", extra="Proxy-Require: foo"), False),
    ],
)
def test_accepted(request_: Request, answer_locally: bool) -> None:
    assert validate_request(request_, own_addresses=OWN, supported_options={"100rel"}) is answer_locally


def test_bad_extension_lists_unsupported_tags() -> None:
    with pytest.raises(BadExtension) as info:
        validate_request(make(extra="Proxy-Require: foo, 100rel, bar"), supported_options={"100rel"})
    assert info.value.unsupported == ("foo", "bar")
    assert info.value.header == "Proxy-Require"


def test_checks_run_in_rfc_order() -> None:
    # Scheme (step 2) before Max-Forwards (step 3) before Proxy-Require (step 5).
    with pytest.raises(UnsupportedURIScheme):
        validate_request(make(uri="http://x", max_forwards="0"))
    with pytest.raises(TooManyHops):
        validate_request(make(max_forwards="0", extra="Proxy-Require: foo"))


# -- loops and spirals ----------------------------------------------------------------------------


def _forward_once(received: Request, target: str) -> Request:
    """What we send: our Via carries the loop hash of the request as received."""
    branch = compose_branch("z9hG4bKu1", loop_branch(received, SECRET))
    return prepare_forward(received, target, via="SIP/2.0/UDP p.example.com:5060", branch=branch)


def _through_downstream(request: Request) -> Request:
    """A downstream proxy adds its Via and sends the request back to us."""
    back = request.copy()
    back.headers.prepend("Via", "SIP/2.0/UDP q.example.net;branch=z9hG4bKq1")
    return back


def test_looped_request_is_detected() -> None:
    received = make()
    sent = _forward_once(received, "sip:bob@example.com")  # Request-URI unchanged
    with pytest.raises(LoopDetected) as info:
        validate_request(_through_downstream(sent), own_addresses=OWN, loop_secret=SECRET)
    assert info.value.status == 482


def test_spiral_with_changed_request_uri_is_allowed() -> None:
    received = make()
    sent = _forward_once(received, "sip:bob@voicemail.example.com")
    assert validate_request(_through_downstream(sent), own_addresses=OWN, loop_secret=SECRET) is False


@pytest.mark.parametrize(
    ("own", "secret"),
    [
        (set(), SECRET),  # not our Via
        ({"p.example.com:5062"}, SECRET),  # other port
        (OWN, None),  # loop detection disabled
        (OWN, b"other"),  # another key: hashes differ
    ],
)
def test_loop_detection_needs_our_via_and_key(own: set[str], secret: bytes | None) -> None:
    sent = _forward_once(make(), "sip:bob@example.com")
    assert validate_request(_through_downstream(sent), own_addresses=own, loop_secret=secret) is False


def test_bare_host_matches_any_port() -> None:
    sent = _forward_once(make(), "sip:bob@example.com")
    with pytest.raises(LoopDetected):
        validate_request(_through_downstream(sent), own_addresses={"P.example.com"}, loop_secret=SECRET)


def test_branch_without_loop_part_is_never_a_loop() -> None:
    sent = prepare_forward(make(), "sip:bob@example.com", via="SIP/2.0/UDP p.example.com:5060", branch="z9hG4bKplain")
    assert validate_request(_through_downstream(sent), own_addresses=OWN) is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("From", "<sip:alice@example.org>;tag=f2"),
        ("Call-ID", "other@ua"),
        ("CSeq", "8 INVITE"),
        ("Proxy-Require", "foo"),
        ("Proxy-Authorization", 'Digest username="a"'),
        ("Route", "<sip:x.example.com;lr>"),
    ],
)
def test_loop_hash_covers_routing_fields(field: str, value: str) -> None:
    base = make()
    changed = make()
    changed.headers.set(field, value)
    assert loop_branch(base) != loop_branch(changed)


def test_loop_hash_ignores_method_and_max_forwards() -> None:
    invite, cancel = make("INVITE"), make("CANCEL", max_forwards="12")
    assert loop_branch(invite, SECRET) == loop_branch(cancel, SECRET)
    assert len(loop_branch(invite)) == LOOP_HASH_LENGTH


@pytest.mark.parametrize(
    ("branch", "parts"),
    [
        (None, (None, None)),
        ("z9hG4bKabc", ("z9hG4bKabc", None)),
        ("z9hG4bKa.b", ("z9hG4bKa.b", None)),
        ("z9hG4bKa." + "0" * LOOP_HASH_LENGTH, ("z9hG4bKa", "0" * LOOP_HASH_LENGTH)),
        ("z9hG4bKa.x." + "f" * LOOP_HASH_LENGTH, ("z9hG4bKa.x", "f" * LOOP_HASH_LENGTH)),
    ],
)
def test_split_branch(branch: str | None, parts: tuple[str | None, str | None]) -> None:
    assert split_branch(branch) == parts


def test_compose_branch_requires_magic_cookie() -> None:
    with pytest.raises(UsageError):
        compose_branch("abc", "0" * LOOP_HASH_LENGTH)
    loop = "a" * LOOP_HASH_LENGTH
    assert split_branch(compose_branch("z9hG4bK1", loop)) == ("z9hG4bK1", loop)
