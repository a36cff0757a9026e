"""decide_register / build_register_response: RFC 3261 §10.3, RFC 3327 §5.3, RFC 5626 §6."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest

from sipline.sip.errors import UsageError
from sipline.sip.message import Request, parse_message, parse_uri
from sipline.sip.registrar import (
    ContactBinding,
    RegisterAccepted,
    RegisterRejected,
    RegistrarPolicy,
    StoredBinding,
    build_register_response,
    canonical_aor,
    decide_register,
    http_date,
    register_aor,
    storage_failure,
    too_many_bindings,
    user_agent_of,
)

NOW = 1000.0
POLICY = RegistrarPolicy(domains=frozenset({"Example.COM"}))
INSTANCE = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"


@dataclass(frozen=True)
class Snap:
    bindings: Sequence[StoredBinding] = ()


def register(*headers: str, cseq: int = 10, call_id: str = "c1", to: str = "<sip:alice@example.com>",
             vias: int = 1) -> Request:
    via_lines = [f"Via: SIP/2.0/UDP 192.0.2.{i}:5060;branch=z9hG4bKb{i}" for i in range(vias, 0, -1)]
    text = "\r\n".join([
        "REGISTER sip:example.com SIP/2.0",
        *via_lines,
        "Max-Forwards: 70",
        f"To: {to}",
        "From: <sip:alice@example.com>;tag=f1",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *headers,
        "Content-Length: 0",
        "", "",
    ])
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def stored(contact: str = "sip:alice@192.0.2.1", *, expires: float = 600, call_id: str = "c1",
           cseq: int = 5, q: float = 1.0, instance: str | None = None, reg_id: int | None = None,
           updated: float = NOW - 10) -> ContactBinding:
    return ContactBinding(contact, NOW + expires, q, call_id, cseq, (), instance, reg_id, updated)


def accepted(request: Request, *current: ContactBinding, policy: RegistrarPolicy = POLICY) -> RegisterAccepted:
    decision = decide_register(request, Snap(current), NOW, policy)
    assert isinstance(decision, RegisterAccepted), decision
    return decision


def rejected(request: Request, *current: ContactBinding, policy: RegistrarPolicy = POLICY) -> RegisterRejected:
    decision = decide_register(request, Snap(current), NOW, policy)
    assert isinstance(decision, RegisterRejected), decision
    return decision


# -- AOR, Require, domains ----------------------------------------------------------------

@pytest.mark.parametrize(("uri", "aor"), [
    ("sip:alice@example.com", "sip:alice@example.com"),
    ("sips:Al%69ce@EXAMPLE.com:5061;transport=tls?x=y", "sip:Alice@example.com"),
    ("sip:example.com", "sip:example.com"),
    ("sip:bob@[2001:db8::1]", "sip:bob@[2001:db8::1]"),
    ("tel:+15551234", None),
])
def test_canonical_aor(uri: str, aor: str | None) -> None:
    assert canonical_aor(parse_uri(uri)) == aor


@pytest.mark.parametrize(("to", "status"), [
    ("<sip:alice@other.org>", 404),
    ("<tel:+15551234>", 404),
    ("<sip:alice@EXAMPLE.com;user=ip>", None),
])
def test_aor_domain_must_be_served(to: str, status: int | None) -> None:
    result = register_aor(register(to=to), POLICY)
    if status is None:
        assert result == "sip:alice@example.com"
    else:
        assert isinstance(result, RegisterRejected) and result.status == status


def test_require_unknown_extension_is_420() -> None:
    d = rejected(register("Require: path, foo, bar", "Contact: <sip:a@h>"))
    assert (d.status, d.headers) == (420, (("Unsupported", "foo, bar"),))
    assert accepted(register("Require: path", "Supported: path", "Contact: <sip:a@h>")).upsert


@pytest.mark.parametrize("header", [
    "Contact: <sip:a@h>;q=2",
    "Contact: <sip:a@h>;expires=soon",
    "Contact: <sip:a@h",
    "Expires: never",
    "Require: a b",
])
def test_malformed_headers_are_400_not_exceptions(header: str) -> None:
    extra = [header] if header.startswith("Contact") else [header, "Contact: <sip:a@h>"]
    assert rejected(register(*extra)).status == 400


def test_malformed_to_is_400() -> None:
    request = register("Contact: <sip:a@h>")
    request.headers.set("To", "<sip:alice@example.com")
    assert rejected(request).status == 400


# -- queries and expiry -------------------------------------------------------------------

def test_query_lists_live_bindings_and_changes_nothing() -> None:
    live_low = stored("sip:low@h", q=0.2)
    live_high = stored("sip:high@h", q=0.9)
    dead = stored("sip:dead@h", expires=-1)
    d = accepted(register(), live_low, dead, live_high)
    assert d.changes_nothing and d.aor == "sip:alice@example.com"
    assert [b.contact for b in d.bindings] == ["sip:high@h", "sip:low@h"]


@pytest.mark.parametrize(("headers", "granted"), [
    (("Contact: <sip:a@h>",), 3600),  # policy default
    (("Contact: <sip:a@h>", "Expires: 600"), 600),  # Expires header
    (("Contact: <sip:a@h>;expires=300", "Expires: 600"), 300),  # parameter wins
    (("Contact: <sip:a@h>;expires=99999999999",), 7200),  # clamped to max
    (("Contact: <sip:a@h>", "Expires: 60"), 60),  # exactly the minimum
    (("Contact: <sip:a@h>;expires=4000",), 4000),
])
def test_expiry_sources_and_clamping(headers: tuple[str, ...], granted: int) -> None:
    [b] = accepted(register(*headers)).upsert
    assert b.expires_at == NOW + granted and b.updated_at == NOW


@pytest.mark.parametrize(("policy", "requested", "status"), [
    (POLICY, 59, 423),
    (POLICY, 1, 423),
    (replace(POLICY, min_expires=5000, default_expires=6000), 3599, 423),
    # §10.3 allows 423 only below one hour: a higher minimum lets these through.
    (replace(POLICY, min_expires=5000, default_expires=6000), 3600, None),
])
def test_interval_too_brief(policy: RegistrarPolicy, requested: int, status: int | None) -> None:
    request = register(f"Contact: <sip:a@h>;expires={requested}")
    if status is None:
        assert accepted(request, policy=policy).upsert[0].expires_at == NOW + requested
    else:
        d = rejected(request, policy=policy)
        assert d.status == 423 and d.headers == (("Min-Expires", str(policy.min_expires)),)


def test_expires_zero_removes_and_unknown_zero_is_noop() -> None:
    old = stored("sip:a@h", call_id="other", cseq=99)
    d = accepted(register("Contact: <sip:a@h>;expires=0"), old)
    assert (d.remove, d.upsert, d.bindings) == (("sip:a@h",), (), ())
    assert accepted(register("Contact: <sip:new@h>", "Expires: 0"), old).changes_nothing


# -- Contact: * ---------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "current", "status"), [
    (("Contact: *", "Expires: 0"), [], None),
    (("Contact: *", "Expires: 0"), [stored(call_id="other", cseq=50)], None),
    (("Contact: *", "Expires: 0"), [stored(call_id="c1", cseq=9)], None),
    (("Contact: *", "Expires: 0"), [stored(call_id="c1", cseq=10)], 500),
    (("Contact: *", "Expires: 0"), [stored(call_id="c1", cseq=11)], 500),
    (("Contact: *",), [], 400),
    (("Contact: *", "Expires: 5"), [], 400),
    (("Contact: *;expires=0", "Expires: 0"), [], 400),
    (("Contact: *", "Contact: <sip:a@h>", "Expires: 0"), [], 400),
])
def test_star(headers: tuple[str, ...], current: list[ContactBinding], status: int | None) -> None:
    d = decide_register(register(*headers), Snap(current), NOW, POLICY)
    if status is None:
        assert isinstance(d, RegisterAccepted) and d.remove_all and d.bindings == ()
    else:
        assert isinstance(d, RegisterRejected) and d.status == status


# -- Call-ID / CSeq ordering (§10.3 step 7) ----------------------------------------------

@pytest.mark.parametrize(("stored_call_id", "stored_cseq", "outcome"), [
    ("c1", 9, "update"),
    ("c1", 10, 500),
    ("c1", 11, 500),
    ("other", 11, "update"),  # another Call-ID replaces whatever its CSeq
])
def test_call_id_cseq_rule(stored_call_id: str, stored_cseq: int, outcome: object) -> None:
    old = stored("sip:a@h", call_id=stored_call_id, cseq=stored_cseq)
    for extra in ("", ";expires=0"):
        d = decide_register(register(f"Contact: <sip:a@h>{extra}"), Snap([old]), NOW, POLICY)
        if outcome == 500:
            assert isinstance(d, RegisterRejected) and d.status == 500 and d.headers == ()
        else:
            assert isinstance(d, RegisterAccepted)
            if extra:
                assert d.remove == ("sip:a@h",) and not d.upsert
            else:
                [b] = d.upsert
                assert (b.contact, b.call_id, b.cseq) == ("sip:a@h", "c1", 10) and not d.remove


def test_out_of_order_on_any_contact_aborts_everything() -> None:
    old = stored("sip:b@h", cseq=20)
    d = rejected(register("Contact: <sip:a@h>, <sip:b@h>"), old)
    assert d.status == 500


def test_equivalent_uri_is_the_same_binding() -> None:
    old = stored("sip:a@H.example;transport=udp", call_id="c1", cseq=5)
    d = accepted(register("Contact: <sip:a@h.EXAMPLE;transport=UDP>"), old)
    assert d.remove == ("sip:a@H.example;transport=udp",)
    assert [b.contact for b in d.upsert] == ["sip:a@h.EXAMPLE;transport=UDP"]
    assert [b.contact for b in d.bindings] == ["sip:a@h.EXAMPLE;transport=UDP"]
    # ...and the ordering rule applies to it.
    assert rejected(register("Contact: <sip:a@h.example;transport=udp>", cseq=5), old).status == 500


def test_other_bindings_are_kept_and_listed() -> None:
    keep = stored("sip:phone@h", call_id="phone", q=0.5)
    d = accepted(register("Contact: <sip:a@h>;q=0.75"), keep)
    assert [(b.contact, b.q) for b in d.bindings] == [("sip:a@h", 0.75), ("sip:phone@h", 0.5)]
    assert d.upsert[0].q == 0.75


@pytest.mark.parametrize(("q", "stored_q"), [("1", 1.0), ("0", 0.0), ("0.123", 0.123), ("1.000", 1.0)])
def test_q_values(q: str, stored_q: float) -> None:
    assert accepted(register(f"Contact: <sip:a@h>;q={q}")).upsert[0].q == stored_q


# -- Path (RFC 3327) ----------------------------------------------------------------------

PATH = "Path: <sip:p3.example.com;lr>,<sip:p1.example.net;lr>"


def test_path_stored_and_echoed_with_support() -> None:
    d = accepted(register("Supported: path", PATH, "Contact: <sip:a@h>", vias=3))
    assert d.upsert[0].path == ("<sip:p3.example.com;lr>", "<sip:p1.example.net;lr>")
    assert d.path == d.upsert[0].path


def test_path_without_support_is_420_or_stored_silently() -> None:
    d = rejected(register(PATH, "Contact: <sip:a@h>", vias=3))
    assert (d.status, d.headers) == (420, (("Unsupported", "path"),))
    lenient = replace(POLICY, path_without_support="accept")
    ok = accepted(register(PATH, "Contact: <sip:a@h>", vias=3), policy=lenient)
    assert ok.upsert[0].path and ok.path == ()


# -- RFC 5626 instance / reg-id -------------------------------------------------------------

OB_CONTACT = f'Contact: <sip:a@192.0.2.9;transport=tcp;ob>;+sip.instance="{INSTANCE}";reg-id=1'


def test_outbound_binding_stored_and_required() -> None:
    d = accepted(register("Supported: path, outbound", OB_CONTACT))
    [b] = d.upsert
    assert (b.instance_id, b.reg_id) == (INSTANCE, 1) and d.require_outbound
    assert not accepted(register(OB_CONTACT)).require_outbound  # UA did not ask


def test_outbound_flow_replaces_binding_with_same_instance_and_reg_id() -> None:
    old = stored("sip:a@192.0.2.1;transport=tcp;ob", instance=INSTANCE, reg_id=1, call_id="c1")
    other_flow = stored("sip:a@192.0.2.2;transport=tcp;ob", instance=INSTANCE, reg_id=2, call_id="c2")
    d = accepted(register("Supported: outbound", OB_CONTACT, cseq=11), old, other_flow)
    assert d.remove == ("sip:a@192.0.2.1;transport=tcp;ob",)
    assert {b.contact for b in d.bindings} == {"sip:a@192.0.2.9;transport=tcp;ob",
                                               "sip:a@192.0.2.2;transport=tcp;ob"}
    assert rejected(register("Supported: outbound", OB_CONTACT, cseq=5), old).status == 500


def test_instance_without_reg_id_uses_uri_matching() -> None:
    d = accepted(register(f'Contact: <sip:a@h>;+sip.instance="{INSTANCE}"'))
    assert (d.upsert[0].instance_id, d.upsert[0].reg_id) == (INSTANCE, None)


@pytest.mark.parametrize(("headers", "vias", "expect"), [
    (("Contact: <sip:a@h>;reg-id=1",), 1, "ignored"),  # no instance
    (("Supported: outbound", OB_CONTACT), 2, 439),  # not first hop, no Path
    ((OB_CONTACT,), 2, "ignored"),  # same, but the UA did not ask for outbound
    (("Supported: path, outbound", "Path: <sip:edge.example.com;lr>", OB_CONTACT), 2, 439),
    (("Supported: path, outbound", "Path: <sip:tok@edge.example.com;lr;ob>", OB_CONTACT), 2, "applied"),
    (("Contact: <sip:a@h>;+sip.instance=\"<urn:x>\";reg-id=0",), 1, 400),
    (("Contact: <sip:a@h>;+sip.instance=\"<urn:x>\";reg-id=x",), 1, 400),
    (("Contact: <sip:a@h>;+sip.instance=\"<urn:x>\";reg-id=1, <sip:b@h>",), 1, 400),
    (("Contact: <sip:a@h>;+sip.instance=\"<urn:x>\";reg-id=1, <sip:b@h>;expires=0",), 1, "applied"),
])
def test_outbound_applicability(headers: tuple[str, ...], vias: int, expect: object) -> None:
    d = decide_register(register(*headers, vias=vias), Snap(), NOW, POLICY)
    if isinstance(expect, int):
        assert isinstance(d, RegisterRejected) and d.status == expect
    else:
        assert isinstance(d, RegisterAccepted)
        assert (d.upsert[0].reg_id is not None) == (expect == "applied")


def test_outbound_can_be_disabled() -> None:
    d = accepted(register("Supported: outbound", OB_CONTACT), policy=replace(POLICY, outbound=False))
    assert d.upsert[0].reg_id is None and not d.require_outbound


# -- limits -------------------------------------------------------------------------------

def test_max_contacts() -> None:
    policy = replace(POLICY, max_contacts=2)
    two = (stored("sip:x@h", call_id="x"), stored("sip:y@h", call_id="y"))
    d = rejected(register("Contact: <sip:z@h>"), *two, policy=policy)
    assert (d.status, d.reason) == (403, "Too Many Registrations")
    # Refreshing or replacing within the limit still works, even when already above it.
    assert accepted(register("Contact: <sip:x@h>", call_id="x", cseq=9), *two, policy=policy).upsert
    lower = replace(POLICY, max_contacts=1)
    assert accepted(register("Contact: <sip:x@h>", call_id="x", cseq=9), *two, policy=lower).upsert


def test_policy_validation() -> None:
    for bad in (dict(min_expires=0), dict(default_expires=10), dict(max_expires=100),
                dict(max_contacts=0), dict(path_without_support="maybe")):
        with pytest.raises(UsageError):
            replace(POLICY, **bad)  # type: ignore[arg-type]
    assert POLICY.serves("EXAMPLE.com") and not POLICY.serves("example.org")


# -- responses ----------------------------------------------------------------------------

def test_200_lists_bindings_path_outbound_and_date() -> None:
    request = register("Supported: path, outbound", "Path: <sip:tok@edge.example.com;lr;ob>",
                       OB_CONTACT, vias=2)
    other = stored("sip:desk@192.0.2.7", call_id="desk", q=0.5, expires=100.4)
    decision = accepted(request, other)
    response = build_register_response(request, decision, NOW + 0.5, "reg1", date=http_date(0))
    assert bytes(response).decode() == "\r\n".join([
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKb2",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb1",
        "To: <sip:alice@example.com>;tag=reg1",
        "From: <sip:alice@example.com>;tag=f1",
        "Call-ID: c1",
        "CSeq: 10 REGISTER",
        "Require: outbound",
        "Path: <sip:tok@edge.example.com;lr;ob>",
        f'Contact: <sip:a@192.0.2.9;transport=tcp;ob>;expires=3600;+sip.instance="{INSTANCE}";reg-id=1',
        "Contact: <sip:desk@192.0.2.7>;expires=100;q=0.5",
        "Date: Thu, 01 Jan 1970 00:00:00 GMT",
        "Content-Length: 0",
        "", "",
    ])


def test_rejections_carry_their_headers() -> None:
    request = register("Contact: <sip:a@h>;expires=5")
    response = build_register_response(request, rejected(request), NOW, "t9")
    assert response.status == 423 and response.reason == "Interval Too Brief"
    assert response.headers.get("Min-Expires") == "60"
    assert response.to.tag == "t9" and "Contact" not in response.headers


def test_query_response_and_empty_200() -> None:
    request = register()
    response = build_register_response(request, accepted(request), NOW, "t")
    assert response.status == 200 and "Contact" not in response.headers
    listed = build_register_response(request, accepted(request, stored(q=0.0)), NOW, "t")
    assert listed.headers.get_all("Contact") == ["<sip:alice@192.0.2.1>;expires=600;q=0"]


def test_storage_helpers_and_user_agent() -> None:
    assert (too_many_bindings().status, storage_failure(7).headers) == (403, (("Retry-After", "7"),))
    assert user_agent_of(register("User-Agent: " + "x" * 500)) == "x" * 256
    assert user_agent_of(register()) == ""


def test_odd_inputs() -> None:
    # An empty Contact field is malformed, not a query.
    assert rejected(register("Contact: ")).status == 400
    # A stored contact the URI parser refuses only matches its own text.
    odd = stored("not a uri", call_id="z")
    d = accepted(register("Contact: <sip:a@h>"), odd)
    assert {b.contact for b in d.bindings} == {"not a uri", "sip:a@h"}
    # An instance without reg-id is listed without reg-id.
    listed = build_register_response(register(), accepted(register(), stored(instance='<urn:"x">')),
                                     NOW, "t")
    assert listed.headers.get_all("Contact") == [
        '<sip:alice@192.0.2.1>;expires=600;+sip.instance="<urn:\\"x\\">"']
