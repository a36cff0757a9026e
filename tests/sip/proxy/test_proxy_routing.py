"""Route preprocessing (§16.4), request forwarding (§16.6) and response forwarding (§16.7).

Outputs are compared byte for byte: a proxy must change exactly what RFC 3261 says and leave
every other byte (odd spacing, compact forms, unknown headers, header order) as received.
"""

from __future__ import annotations

import pytest

from sipline.sip.errors import UsageError
from sipline.sip.message import Request, Response, parse_message, parse_name_addr, parse_uri
from sipline.sip.message.uri import URI
from sipline.sip.proxy import (
    is_own_record_route,
    next_hop,
    prepare_forward,
    preprocess_routes,
    process_response,
    record_route_values,
    rewrite_record_route,
)

OWN = (parse_uri("sip:p.example.com"), parse_uri("sip:10.0.0.1:5080"))


def own(uri: URI) -> bool:
    return is_own_record_route(uri, OWN)


def req(text: str) -> Request:
    msg = parse_message(text.replace("\n", "\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def wire(msg: Request | Response) -> str:
    return bytes(msg).decode().replace("\r\n", "\n")


HEAD = """Via: SIP/2.0/UDP ua.example.org;branch=z9hG4bKua1
Max-Forwards: 70
From: <sip:alice@example.org>;tag=f1
t: <sip:bob@example.com>
Call-ID: c1@ua
CSeq: 1 INVITE
Content-Length: 0
"""


def invite(uri: str, routes: str = "") -> Request:
    return req(f"INVITE {uri} SIP/2.0\n{routes}{HEAD}\n")


# -- is_own_record_route -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:p.example.com", True),
        ("sip:P.Example.COM:5060;lr", True),
        ("sip:p.example.com.;transport=tcp", True),
        ("sip:user@p.example.com;lr", True),
        ("sip:p.example.com:5070", False),
        ("sips:p.example.com", False),  # default port 5061
        ("sip:10.0.0.1:5080;lr", True),
        ("sip:10.0.0.1", False),
        ("sip:q.example.com", False),
        ("tel:+15551234", False),
    ],
)
def test_is_own_record_route(uri: str, expected: bool) -> None:
    assert is_own_record_route(parse_uri(uri), OWN) is expected


def test_ipv6_compares_by_value() -> None:
    assert is_own_record_route(parse_uri("sip:[2001:db8:0::1]"), [parse_uri("sip:[2001:DB8::1]")])


# -- preprocess_routes (§16.4) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "routes", "expected_start", "expected_routes"),
    [
        # Loose routing: our Route on top is removed, the rest is untouched.
        ("INVITE sip:bob@example.com SIP/2.0", "Route: <sip:p.example.com;lr>, <sip:q.example.net;lr>\n",
         "INVITE sip:bob@example.com SIP/2.0", "Route: <sip:q.example.net;lr>\n"),
        # Route in two fields: the first field disappears.
        ("INVITE sip:bob@example.com SIP/2.0", "Route: <sip:p.example.com;lr>\nRoute: <sip:q.example.net;lr>\n",
         "INVITE sip:bob@example.com SIP/2.0", "Route: <sip:q.example.net;lr>\n"),
        # Double Record-Route (RFC 5658): both of our values are removed.
        ("INVITE sip:bob@example.com SIP/2.0",
         "Route: <sip:p.example.com;transport=tcp;lr>,<sip:10.0.0.1:5080;transport=udp;lr>,<sip:q.example.net;lr>\n",
         "INVITE sip:bob@example.com SIP/2.0", "Route: <sip:q.example.net;lr>\n"),
        # Top Route is not ours: nothing changes.
        ("INVITE sip:bob@example.com SIP/2.0", "Route: <sip:q.example.net;lr>\n",
         "INVITE sip:bob@example.com SIP/2.0", "Route: <sip:q.example.net;lr>\n"),
        # Strict router upstream: Request-URI is our RR URI, the real one is the last Route.
        ("INVITE sip:p.example.com;lr SIP/2.0", "Route: <sip:q.example.net;lr>, <sip:bob@192.0.2.7;ob>\n",
         "INVITE sip:bob@192.0.2.7;ob SIP/2.0", "Route: <sip:q.example.net;lr>\n"),
        # ... with the restored value as the only Route.
        ("INVITE sip:p.example.com SIP/2.0", "Route: <sip:bob@192.0.2.7>\n",
         "INVITE sip:bob@192.0.2.7 SIP/2.0", ""),
        # ... written without angle brackets.
        ("INVITE sip:p.example.com SIP/2.0", "Route: <sip:q.example.net;lr>, sip:bob@192.0.2.7\n",
         "INVITE sip:bob@192.0.2.7 SIP/2.0", "Route: <sip:q.example.net;lr>\n"),
        # A request addressed to us without Route stays addressed to us.
        ("OPTIONS sip:p.example.com SIP/2.0", "", "OPTIONS sip:p.example.com SIP/2.0", ""),
        # maddr naming us (port and transport matching): stripped with port and transport.
        ("INVITE sip:bob@example.com:5080;maddr=10.0.0.1;transport=udp;x=1 SIP/2.0", "",
         "INVITE sip:bob@example.com;x=1 SIP/2.0", ""),
        # maddr naming someone else: untouched.
        ("INVITE sip:bob@example.com;maddr=10.9.9.9 SIP/2.0", "",
         "INVITE sip:bob@example.com;maddr=10.9.9.9 SIP/2.0", ""),
    ],
)
def test_preprocess_routes(start: str, routes: str, expected_start: str, expected_routes: str) -> None:
    method = start.split()[0]
    msg = req(f"{start}\n{routes}{HEAD.replace('1 INVITE', f'1 {method}')}\n")
    preprocess_routes(msg, own)
    expected = f"{expected_start}\n{expected_routes}{HEAD.replace('1 INVITE', f'1 {method}')}\n"
    assert wire(msg) == expected


# -- prepare_forward (§16.6) -----------------------------------------------------------------------

FULL_INVITE = """INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/TLS client.atlanta.example.com:5061 ;branch=z9hG4bK74bf9 ;received=192.0.2.101
Max-Forwards:   70
Route: <sip:p.example.com;lr>,
  <sip:ss2.biloxi.example.com;lr>
Record-Route: <sip:ss0.atlanta.example.com;lr>
From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
i: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
X-Unknown: keep   me ,as-is
Contact: <sip:alice@client.atlanta.example.com;transport=tls>
Content-Type: application/sdp
Content-Length: 5

v=0
"""


def test_prepare_forward_full_invite_byte_exact() -> None:
    received = req(FULL_INVITE)
    original = wire(received)
    preprocess_routes(received, own)
    out = prepare_forward(
        received,
        received.uri,
        via="SIP/2.0/TLS p.example.com",
        branch="z9hG4bKp1",
        record_route=parse_name_addr("<sip:p.example.com>"),
    )
    assert wire(out) == """INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/TLS p.example.com;branch=z9hG4bKp1
Via: SIP/2.0/TLS client.atlanta.example.com:5061 ;branch=z9hG4bK74bf9 ;received=192.0.2.101
Max-Forwards: 69
Route: <sip:ss2.biloxi.example.com;lr>
Record-Route: <sip:p.example.com;lr>
Record-Route: <sip:ss0.atlanta.example.com;lr>
From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
i: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
X-Unknown: keep   me ,as-is
Contact: <sip:alice@client.atlanta.example.com;transport=tls>
Content-Type: application/sdp
Content-Length: 5

v=0
"""
    assert str(next_hop(out)) == "sip:ss2.biloxi.example.com;lr"
    # The received request is left for the other branches: only §16.4 touched it.
    assert wire(received) != original and "Max-Forwards:   70" in wire(received)


def test_prepare_forward_forks_independent_copies() -> None:
    received = invite("sip:bob@example.com")
    a = prepare_forward(received, "sip:bob@192.0.2.1", via="SIP/2.0/UDP p.example.com", branch="z9hG4bKa")
    b = prepare_forward(received, "sip:bob@192.0.2.2", via="SIP/2.0/UDP p.example.com", branch="z9hG4bKb")
    assert a.uri_text == "sip:bob@192.0.2.1" and b.uri_text == "sip:bob@192.0.2.2"
    assert a.via.branch == "z9hG4bKa" and b.via.branch == "z9hG4bKb"
    assert received.via.branch == "z9hG4bKua1" and received.max_forwards == 70


def test_strict_next_hop_rewrites_request_uri() -> None:
    received = invite("sip:bob@example.com", "Route: <sip:strict.example.net>, <sip:q.example.net;lr>\n")
    out = prepare_forward(received, received.uri, via="SIP/2.0/UDP p.example.com", branch="z9hG4bK1")
    assert wire(out) == """INVITE sip:strict.example.net SIP/2.0
Route: <sip:q.example.net;lr>
Route: <sip:bob@example.com>
Via: SIP/2.0/UDP p.example.com;branch=z9hG4bK1
""" + HEAD.replace("Max-Forwards: 70", "Max-Forwards: 69") + "\n"
    assert str(next_hop(out)) == "sip:q.example.net;lr"


def test_push_routes_and_strict_outbound_proxy() -> None:
    received = invite("sip:bob@example.com")
    out = prepare_forward(
        received, received.uri, via="SIP/2.0/UDP p.example.com", branch="z9hG4bK1",
        push_routes=("<sip:strict-obp.example.net>",),
    )
    assert out.uri_text == "sip:strict-obp.example.net"
    assert out.headers.get_all("Route") == ["<sip:bob@example.com>"]
    loose = prepare_forward(
        received, received.uri, via="SIP/2.0/UDP p.example.com", branch="z9hG4bK1",
        push_routes=(parse_name_addr("<sip:obp.example.net;lr>"), "<sip:obp2.example.net;lr>"),
    )
    assert loose.uri_text == "sip:bob@example.com"
    assert loose.headers.get_all("Route") == ["<sip:obp.example.net;lr>", "<sip:obp2.example.net;lr>"]
    assert str(next_hop(loose)) == "sip:obp.example.net;lr"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["<sip:p.example.com;lr>"]),
        ({"inbound_transport": "udp", "outbound_transport": "UDP"}, ["<sip:p.example.com;lr>"]),
        ({"inbound_transport": "udp", "outbound_transport": "tcp"},
         ["<sip:p.example.com;transport=tcp;lr>", "<sip:p.example.com;transport=udp;lr>"]),
        ({"inbound_transport": "udp", "outbound_transport": "tcp", "double_rr": False},
         ["<sip:p.example.com;lr>"]),
        ({"inbound_record_route": parse_name_addr("<sip:10.0.0.1:5080>"),
          "inbound_transport": "udp", "outbound_transport": "udp"},
         ["<sip:p.example.com;transport=udp;lr>", "<sip:10.0.0.1:5080;transport=udp;lr>"]),
    ],
)
def test_double_record_route(kwargs: dict[str, object], expected: list[str]) -> None:
    received = invite("sip:bob@example.com")
    out = prepare_forward(
        received, received.uri, via="SIP/2.0/UDP p.example.com", branch="z9hG4bK1",
        record_route=parse_name_addr("<sip:p.example.com>"), **kwargs,  # type: ignore[arg-type]
    )
    assert out.headers.get_all("Record-Route") == expected
    # The downstream side's in-dialog request carries both values; preprocessing removes both.
    back = invite("sip:alice@ua.example.org", "Route: " + ", ".join(expected) + ", <sip:q.example.net;lr>\n")
    preprocess_routes(back, own)
    assert back.headers.get_all("Route") == ["<sip:q.example.net;lr>"]


def test_record_route_becomes_sips_for_sips_request() -> None:
    received = invite("sips:bob@example.com")
    out = prepare_forward(received, received.uri, via="SIP/2.0/TLS p.example.com", branch="z9hG4bK1",
                          record_route=parse_name_addr("<sip:p.example.com;lr>"))
    assert out.headers.get_all("Record-Route") == ["<sips:p.example.com;lr>"]


def test_record_route_values_refuses_non_sip() -> None:
    with pytest.raises(UsageError):
        record_route_values(parse_name_addr("<tel:+1555>"))


def test_missing_max_forwards_and_content_length_are_added() -> None:
    received = req("MESSAGE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP ua;branch=z9hG4bK1\n"
                   "From: <sip:a@b>;tag=1\nTo: <sip:bob@example.com>\nCall-ID: x\nCSeq: 1 MESSAGE\n\n")
    out = prepare_forward(received, received.uri, via="SIP/2.0/TCP p.example.com", branch="z9hG4bK2")
    assert out.max_forwards == 70
    assert out.headers.get("Content-Length") == "0"


@pytest.mark.parametrize(
    ("max_forwards", "branch"),
    [("0", "z9hG4bK1"), ("70", "nocookie")],
)
def test_prepare_forward_misuse(max_forwards: str, branch: str) -> None:
    received = req(f"INVITE sip:b@c SIP/2.0\n{HEAD.replace('Max-Forwards: 70', 'Max-Forwards: ' + max_forwards)}\n")
    with pytest.raises(UsageError):
        prepare_forward(received, received.uri, via="SIP/2.0/UDP p", branch=branch)


def test_cancel_reuses_the_invite_branch() -> None:
    cancel = req("CANCEL sip:bob@example.com SIP/2.0\n" + HEAD.replace("1 INVITE", "1 CANCEL") + "\n")
    out = prepare_forward(cancel, "sip:bob@192.0.2.1", via="SIP/2.0/UDP p.example.com", branch="z9hG4bKinv")
    assert out.via.branch == "z9hG4bKinv"


# -- responses (§16.7) -----------------------------------------------------------------------------


def resp(text: str) -> Response:
    msg = parse_message(text.replace("\n", "\r\n").encode())
    assert isinstance(msg, Response)
    return msg


def test_process_response_removes_only_our_via() -> None:
    received = resp("""SIP/2.0 180 Ringing
Via: SIP/2.0/UDP p.example.com;branch=z9hG4bKp1 , SIP/2.0/UDP ua.example.org;branch=z9hG4bKua1
Record-Route: <sip:p.example.com;lr>
From: <sip:alice@example.org>;tag=f1
To:  <sip:bob@example.com>;tag=t9
Call-ID: c1@ua
CSeq: 1 INVITE
Content-Length: 0

""")
    out = process_response(received)
    assert out is not None
    assert wire(out) == """SIP/2.0 180 Ringing
Via: SIP/2.0/UDP ua.example.org;branch=z9hG4bKua1
Record-Route: <sip:p.example.com;lr>
From: <sip:alice@example.org>;tag=f1
To:  <sip:bob@example.com>;tag=t9
Call-ID: c1@ua
CSeq: 1 INVITE
Content-Length: 0

"""
    assert received.via.branch == "z9hG4bKp1"  # the input is untouched


def test_process_response_for_our_own_request() -> None:
    only_ours = resp("SIP/2.0 200 OK\nVia: SIP/2.0/UDP p.example.com;branch=z9hG4bKp1\n"
                     "From: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\nCall-ID: x\nCSeq: 1 OPTIONS\n\n")
    assert process_response(only_ours) is None


def test_rewrite_record_route() -> None:
    response = resp("""SIP/2.0 200 OK
Via: SIP/2.0/UDP ua.example.org;branch=z9hG4bKua1
Record-Route: <sip:q.example.net;lr>, <sip:p.example.com;lr;ftag=1>
Record-Route: <sip:ss0.example.org;lr>
From: <sip:a@b>;tag=1
To: <sip:c@d>;tag=2
Call-ID: x
CSeq: 1 INVITE

""")
    assert rewrite_record_route(response, own, parse_name_addr("<sip:10.0.0.1:5080;lr>"))
    assert response.headers.get_all("Record-Route") == [
        "<sip:q.example.net;lr>", "<sip:10.0.0.1:5080;lr>", "<sip:ss0.example.org;lr>",
    ]
    assert "Record-Route: <sip:ss0.example.org;lr>" in wire(response)
    assert not rewrite_record_route(response, lambda u: False, parse_name_addr("<sip:x>"))


def test_extra_headers_are_appended() -> None:
    received = invite("sip:bob@example.com")
    out = prepare_forward(received, received.uri, via="SIP/2.0/UDP p.example.com", branch="z9hG4bK1",
                          extra_headers=(("X-Forwarded-By", "p"),))
    assert wire(out).endswith("Content-Length: 0\nX-Forwarded-By: p\n\n")
