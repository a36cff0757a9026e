"""Routing decisions and the default routing policy (RFC 3261 §16.5)."""

from __future__ import annotations

import pytest

from sipline.sip.errors import UsageError
from sipline.sip.message import Request, parse_message, parse_uri
from sipline.sip.proxy import (
    Continue,
    Decision,
    ForkTarget,
    ProxyTo,
    Redirect,
    Relay,
    Reply,
    RoutingContext,
    StaticRoute,
    default_route,
)
from sipline.sip.transport import Peer

BOB = (ForkTarget(parse_uri("sip:bob@192.0.2.9:5062"), 0.8), ForkTarget(parse_uri("sip:bob@198.51.100.3")))


def make(uri: str, route: str = "") -> Request:
    text = (
        f"INVITE {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP ua.example.org;branch=z9hG4bKua1\r\n"
        f"{route}"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.org>;tag=f1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: c1@ua\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


CTX = RoutingContext(
    source=Peer("udp", "192.0.2.50", 5060),
    user="alice",
    local_domains=frozenset({"Example.com"}),
    redirect_domains=frozenset({"moved.example.com"}),
    static_routes=(
        StaticRoute("sip:gw.example.net;transport=tcp", prefix="+1"),
        StaticRoute("sip:partner-sbc.example.net", domain="partner.example"),
        StaticRoute("sip:pstn.example.net", domain="example.com", prefix="9"),
    ),
)
KNOWN = RoutingContext(local_domains=CTX.local_domains, redirect_domains=CTX.redirect_domains,
                       aor_known=True, bindings=BOB)
KNOWN_UNREGISTERED = RoutingContext(local_domains=CTX.local_domains, redirect_domains=CTX.redirect_domains,
                                    aor_known=True)


@pytest.mark.parametrize(
    ("request_", "ctx", "decision"),
    [
        # Local domain: location service.
        (make("sip:bob@example.com"), KNOWN, ProxyTo(BOB)),
        (make("sip:bob@EXAMPLE.com"), KNOWN, ProxyTo(BOB)),
        (make("sip:bob@example.com"), KNOWN_UNREGISTERED, Reply(480)),
        (make("sip:nobody@example.com"), CTX, Reply(404)),
        # Redirect domain: 302 to the bindings.
        (make("sip:bob@moved.example.com"), KNOWN, Redirect(BOB)),
        (make("sip:bob@moved.example.com"), KNOWN_UNREGISTERED, Reply(480)),
        (make("sip:bob@moved.example.com"), CTX, Reply(404)),
        # Static routes take precedence, first match wins.
        (make("sip:+15551234@example.com"), CTX, Relay("sip:gw.example.net;transport=tcp")),
        (make("tel:+15551234"), CTX, Relay("sip:gw.example.net;transport=tcp")),
        (make("sip:carol@partner.example"), CTX, Relay("sip:partner-sbc.example.net")),
        (make("sip:9555@example.com"), CTX, Relay("sip:pstn.example.net")),
        (make("sip:9555@other.example"), CTX, Relay("sip:9555@other.example")),
        # Other domains: towards the Request-URI (the role resolves it with RFC 3263).
        (make("sip:carol@biloxi.example.org;transport=tcp"), CTX, Relay("sip:carol@biloxi.example.org;transport=tcp")),
        # A tel URI nobody routes.
        (make("tel:+445551234"), CTX, Reply(404, "No Route To Destination")),
        # Remaining Route values (after ours was removed) are followed, without record-routing.
        (make("sip:bob@192.0.2.9", "Route: <sip:q.example.net;lr>\r\n"), KNOWN,
         Relay("sip:q.example.net;lr", record_route=False)),
    ],
)
def test_default_route(request_: Request, ctx: RoutingContext, decision: Decision) -> None:
    assert default_route(request_, ctx) == decision


def test_catch_all_static_route() -> None:
    ctx = RoutingContext(static_routes=(StaticRoute("sip:upstream.example.net"),))
    assert default_route(make("sip:anyone@anywhere.example"), ctx) == Relay("sip:upstream.example.net")


def test_static_route_never_matches_other_schemes() -> None:
    assert not StaticRoute("sip:x", prefix="1").matches(parse_uri("urn:service:sos"))


@pytest.mark.parametrize(
    ("build", "valid"),
    [
        (lambda: Redirect(("sip:a@b",), 301), True),
        (lambda: Redirect(("sip:a@b",), 200), False),
        (lambda: Reply(486), True),
        (lambda: Reply(180), False),
    ],
)
def test_decision_validation(build: object, valid: bool) -> None:
    assert callable(build)
    if valid:
        build()
    else:
        with pytest.raises(UsageError):
            build()


def test_reply_reason_phrase() -> None:
    assert Reply(486).reason_phrase == "Busy Here"
    assert Reply(404, "Nobody Here").reason_phrase == "Nobody Here"


def test_decisions_are_values() -> None:
    assert ProxyTo(("sip:a@b",)) == ProxyTo(("sip:a@b",), parallel=True, record_route=True)
    assert Continue() == Continue()
    with pytest.raises(AttributeError):
        Relay("sip:x").next_hop = "sip:y"  # type: ignore[misc]
