"""Derived messages (RFC 3261 §8.2.6, §17.1.1.3, §9.1, §8.1.1), status phrases and methods."""

from __future__ import annotations

import pytest

from sipline.sip import methods
from sipline.sip.errors import UsageError
from sipline.sip.message import Params, Request, Response, SipURI, Via, parse_message, parse_name_addr
from sipline.sip.message.builders import ack_for, cancel_for, make_request, response_to
from sipline.sip.status import REASON_PHRASES, reason_phrase, status_class

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP bigbox3.site3.example.com;branch=z9hG4bK77ef4c2312983.1,"
    b"  SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"Via: SIP/2.0/UDP edge.example.com;branch=z9hG4bKedge\r\n"
    b"Route: <sip:p1.example.com;lr>\r\n"
    b"Route: <sip:p2.example.com;lr>\r\n"
    b"Record-Route: <sip:bigbox3.site3.example.com;lr>\r\n"
    b"Max-Forwards: 69\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID:   a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Timestamp: 54.2\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)

RESPONSE_HEAD = (
    b"v: SIP/2.0/UDP bigbox3.site3.example.com;branch=z9hG4bK77ef4c2312983.1,"
    b"  SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"Via: SIP/2.0/UDP edge.example.com;branch=z9hG4bKedge\r\n"
)


def invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


def options() -> Request:
    msg = parse_message(INVITE.replace(b"INVITE", b"OPTIONS"))
    assert isinstance(msg, Request)
    return msg


# -- response_to ----------------------------------------------------------------------


def test_100_copies_timestamp_no_tag_no_record_route() -> None:
    assert bytes(response_to(invite(), 100, to_tag="ignored")) == (
        b"SIP/2.0 100 Trying\r\n"
        + RESPONSE_HEAD
        + b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID:   a84b4c76e66710\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Timestamp: 54.2\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_180_adds_tag_and_copies_record_route() -> None:
    assert bytes(response_to(invite(), 180, to_tag="a6c85cf")) == (
        b"SIP/2.0 180 Ringing\r\n"
        + RESPONSE_HEAD
        + b"Record-Route: <sip:bigbox3.site3.example.com;lr>\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        b"f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID:   a84b4c76e66710\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize(
    ("make", "status", "flag", "expected"),
    [
        (invite, 200, None, True),
        (invite, 183, None, True),
        (invite, 100, True, True),
        (invite, 486, None, False),
        (invite, 302, None, False),
        (invite, 200, False, False),
        (options, 200, None, False),
        (options, 200, True, True),
    ],
)
def test_record_route_copying(make: object, status: int, flag: bool | None, expected: bool) -> None:
    request = make()  # type: ignore[operator]
    response = response_to(request, status, to_tag="t", copy_record_route=flag)
    assert ("Record-Route" in response.headers) is expected


def test_existing_to_tag_is_kept() -> None:
    request = invite()
    request.headers.set("To", "Bob <sip:bob@biloxi.example.com>;tag=dialog1")
    response = response_to(request, 200, to_tag="other")
    assert response.to.tag == "dialog1"
    assert response_to(invite(), 486).to.tag is None  # no tag given, none invented


def test_reason_body_and_extra_headers() -> None:
    response = response_to(
        invite(), 488, "Not Here", to_tag="x", headers=[("Warning", '304 h "codec"'), ("Accept", "application/sdp")],
        body=b"v=0\r\n", content_type="application/sdp",
    )
    data = bytes(response)
    assert data.startswith(b"SIP/2.0 488 Not Here\r\n")
    assert data.endswith(
        b'Warning: 304 h "codec"\r\nAccept: application/sdp\r\n'
        b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    )
    parsed = parse_message(data)
    assert isinstance(parsed, Response) and parsed.body == b"v=0\r\n"
    assert [v.branch for v in parsed.vias] == ["z9hG4bK77ef4c2312983.1", "z9hG4bKnashds8", "z9hG4bKedge"]
    assert response_to(invite(), 699).reason == "Global Failure"


def test_response_to_refuses_misuse() -> None:
    ack = ack_for(invite(), response_to(invite(), 486, to_tag="x"))
    with pytest.raises(UsageError, match="ACK"):
        response_to(ack, 200)
    with pytest.raises(UsageError, match="not a request"):
        response_to(response_to(invite(), 200), 200)  # type: ignore[arg-type]
    for status in (99, 700):
        with pytest.raises(UsageError):
            response_to(invite(), status)


# -- ack_for and cancel_for -----------------------------------------------------------

TAIL = (
    b"Route: <sip:p1.example.com;lr>\r\n"
    b"Route: <sip:p2.example.com;lr>\r\n"
    b"Max-Forwards: 70\r\n"
    b"f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
)


def test_ack_for_non_2xx_byte_exact() -> None:
    request = invite()
    busy = parse_message(bytes(response_to(request, 486, to_tag="a6c85cf")))
    assert isinstance(busy, Response)
    assert bytes(ack_for(request, busy)) == (
        b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP bigbox3.site3.example.com;branch=z9hG4bK77ef4c2312983.1\r\n"
        + TAIL
        + b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        b"Call-ID:   a84b4c76e66710\r\n"
        b"CSeq: 314159 ACK\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_ack_keeps_a_single_via_field_verbatim() -> None:
    request = invite()
    request.headers.remove("Via")
    request.headers.prepend("Via", "SIP/2.0/TCP  client.example.com;branch=z9hG4bKone")
    ack = ack_for(request, response_to(request, 500, to_tag="t"))
    assert bytes(ack).split(b"\r\n")[1] == b"Via: SIP/2.0/TCP  client.example.com;branch=z9hG4bKone"


def test_ack_for_refuses_misuse() -> None:
    request = invite()
    with pytest.raises(UsageError, match="300-699"):
        ack_for(request, response_to(request, 200, to_tag="t"))
    with pytest.raises(UsageError, match="INVITE"):
        ack_for(options(), response_to(options(), 486, to_tag="t"))
    no_via = invite()
    no_via.headers.remove("Via")
    with pytest.raises(UsageError, match="Via"):
        ack_for(no_via, response_to(invite(), 486, to_tag="t"))
    response = response_to(request, 486, to_tag="t")
    response.headers.remove("To")
    with pytest.raises(UsageError, match="To"):
        ack_for(request, response)


def test_cancel_for_byte_exact() -> None:
    assert bytes(cancel_for(invite())) == (
        b"CANCEL sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP bigbox3.site3.example.com;branch=z9hG4bK77ef4c2312983.1\r\n"
        + TAIL
        + b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID:   a84b4c76e66710\r\n"
        b"CSeq: 314159 CANCEL\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    assert cancel_for(options()).cseq.method == "CANCEL"


def test_cancel_for_refuses_ack_and_cancel() -> None:
    cancel = cancel_for(invite())
    with pytest.raises(UsageError):
        cancel_for(cancel)
    with pytest.raises(UsageError):
        cancel_for(response_to(invite(), 200))  # type: ignore[arg-type]


# -- make_request ---------------------------------------------------------------------


def test_make_request_byte_exact() -> None:
    request = make_request(
        "INVITE",
        SipURI("sip", "bob", None, "biloxi.example.com", None, Params(), ()),
        from_=parse_name_addr("Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
        to="Bob <sip:bob@biloxi.example.com>",
        call_id="a84b4c76e66710",
        cseq=1,
        via=Via("UDP", "pc33.atlanta.example.com", None, Params((("branch", "z9hG4bK776asdhds"),))),
        contact="<sip:alice@pc33.atlanta.example.com>",
        headers=[("Route", "<sip:p1.example.com;lr>")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    assert bytes(request) == (
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID: a84b4c76e66710\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
        b"Route: <sip:p1.example.com;lr>\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 5\r\n"
        b"\r\n"
        b"v=0\r\n"
    )
    parsed = parse_message(bytes(request))
    assert isinstance(parsed, Request) and parsed.uri_text == "sip:bob@biloxi.example.com"


def test_make_request_minimal_and_checks() -> None:
    base = dict(from_="<sip:a@a.example>;tag=1", to="<sip:b@b.example>", call_id="c", via="SIP/2.0/UDP h;branch=z9hG4bK1")
    request = make_request("OPTIONS", "sip:b.example", cseq=7, max_forwards=0, **base)  # type: ignore[arg-type]
    assert request.max_forwards == 0 and request.content_length == 0 and "Contact" not in request.headers
    for bad in (dict(cseq=-1), dict(cseq=2**31)):
        with pytest.raises(UsageError, match="CSeq"):
            make_request("OPTIONS", "sip:b.example", **bad, **base)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Max-Forwards"):
        make_request("OPTIONS", "sip:b.example", cseq=1, max_forwards=256, **base)  # type: ignore[arg-type]
    for method in ("", "IN VITE"):
        with pytest.raises(UsageError, match="token"):
            make_request(method, "sip:b.example", cseq=1, **base)  # type: ignore[arg-type]


# -- status and methods ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "phrase"),
    [(100, "Trying"), (199, "Early Dialog Terminated"), (204, "No Notification"), (422, "Session Interval Too Small"),
     (428, "Use Identity Header"), (429, "Provide Referrer Identity"), (433, "Anonymity Disallowed"),
     (436, "Bad Identity Info"), (437, "Unsupported Credential"), (438, "Invalid Identity Header"),
     (439, "First Hop Lacks Outbound Support"), (470, "Consent Needed"), (481, "Call/Transaction Does Not Exist"),
     (494, "Security Agreement Required"), (580, "Precondition Failure"), (603, "Decline"), (607, "Unwanted"),
     (608, "Rejected"), (187, "Provisional"), (299, "Success"), (399, "Redirection"), (499, "Request Failure"),
     (599, "Server Failure")],
)
def test_reason_phrase(code: int, phrase: str) -> None:
    assert reason_phrase(code) == phrase


def test_every_rfc3261_code_has_a_phrase() -> None:
    rfc3261 = [100, 180, 181, 182, 183, 200, 300, 301, 302, 305, 380, 400, 401, 402, 403, 404, 405, 406, 407, 408,
               410, 413, 414, 415, 416, 420, 421, 423, 480, 481, 482, 483, 484, 485, 486, 487, 488, 491, 493, 500,
               501, 502, 503, 504, 505, 513, 600, 603, 604, 606]
    assert all(code in REASON_PHRASES for code in rfc3261)
    assert status_class(486) == 4
    for bad in (0, 99, 700):
        with pytest.raises(UsageError):
            reason_phrase(bad)


def test_method_sets() -> None:
    assert len(methods.KNOWN_METHODS) == 14
    assert methods.INVITE in methods.DIALOG_CREATING and methods.BYE not in methods.DIALOG_CREATING
    assert methods.UPDATE in methods.TARGET_REFRESH and methods.NO_RESPONSE == {methods.ACK}
    assert all(name in methods.KNOWN_METHODS for name in methods.TARGET_REFRESH | methods.DIALOG_CREATING)
