"""Values validate themselves; pure helpers behave."""

from __future__ import annotations

import math

import pytest

from sipline.sip.errors import SiplineError, UsageError
from sipline.storage import (
    Binding,
    BindingSet,
    CallRecord,
    Source,
    StaleBindingSet,
    StorageError,
    Subscriber,
    TooManyBindings,
    compute_ha1,
    make_subscriber,
)
from sipline.storage._logic import binding_from_json, binding_to_json, refill


def test_source_text_round_trip() -> None:
    for src, text in [
        (Source("udp", "192.0.2.1", 5060), "udp:192.0.2.1:5060"),
        (Source("tls", "2001:db8::1", 5061), "tls:[2001:db8::1]:5061"),
        (Source("ws", "edge.example.com", 443), "ws:edge.example.com:443"),
    ]:
        assert str(src) == text
        assert Source.parse(text) == src
    assert Source.parse("UDP:h:1") == Source("udp", "h", 1)


@pytest.mark.parametrize("text", ["udp", "udp:host", "udp:host:port", ":h:1", "udp::1"])
def test_source_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        Source.parse(text)


def test_source_validates() -> None:
    with pytest.raises(UsageError):
        Source("udp", "h", 0)
    with pytest.raises(UsageError):
        Source("u:dp", "h", 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aor": ""},
        {"contact": ""},
        {"q": 1.5},
        {"q": -0.1},
        {"cseq": -1},
        {"cseq": 2**31},
        {"expires_at": math.inf},
        {"updated_at": math.nan},
        {"reg_id": 1},
    ],
)
def test_binding_validates(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"aor": "sip:a@b", "contact": "sip:a@c", "expires_at": 10.0}
    with pytest.raises(UsageError):
        Binding(**{**base, **kwargs})  # type: ignore[arg-type]


def test_binding_helpers() -> None:
    binding = Binding("sip:a@b", "sip:a@c", 100.0, path=["<sip:p;lr>"])  # type: ignore[arg-type]
    assert binding.path == ("<sip:p;lr>",)
    assert binding.alive(99.9) and not binding.alive(100.0)
    assert binding.expires_in(40.2) == 60
    assert binding.expires_in(500) == 0
    assert binding_from_json(binding_to_json(binding)) == binding
    snap = BindingSet("sip:a@b", (binding,), 3)
    assert snap.find("sip:a@c") is binding and snap.find("sip:x@c") is None


def test_rfc2617_ha1_vector() -> None:
    # RFC 2617 §3.5: Mufasa / testrealm@host.com / "Circle Of Life".
    assert compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == (
        "939e7578ed9e3c518a452acee763bce9"
    )
    with pytest.raises(UsageError):
        compute_ha1("u", "r", "p", "SHA-1")


def test_make_subscriber_defaults() -> None:
    sub = make_subscriber("bob", "example.com", "pw")
    assert sub.realm == "example.com" and sub.enabled and sub.created_at > 0
    assert sub.ha1("SHA-256-sess") == sub.ha1_sha256
    assert sub.ha1("sha-512-256") == sub.ha1_sha512_256
    assert "pw" not in repr(sub)
    assert Subscriber("u", "d", "x", "y").realm == "d"
    with pytest.raises(UsageError):
        Subscriber("", "d", "x", "y")


def test_call_record_validates_and_freezes_extra() -> None:
    extra = {"a": [1, 2]}
    record = CallRecord(id="1", call_id="c", start=1.0, caller="a", callee="b", status="ok",
                        extra=extra)
    extra["a"].append(3)
    assert record.extra == {"a": [1, 2]}
    with pytest.raises(TypeError):
        record.extra["b"] = 1  # type: ignore[index]
    hash(record)  # extra does not take part in hashing
    bad: list[dict[str, object]] = [
        {"id": ""},
        {"duration": -1.0},
        {"start": math.nan},
        {"media_stats": "{not json"},
        {"extra": {"x": object()}},
    ]
    for kwargs in bad:
        base: dict[str, object] = {"id": "1", "call_id": "c", "start": 1.0, "caller": "a",
                                   "callee": "b", "status": "ok"}
        with pytest.raises(UsageError):
            CallRecord(**{**base, **kwargs})  # type: ignore[arg-type]


def test_refill_arithmetic() -> None:
    assert refill(None, None, 1.0, 2.0, 10.0) == (True, 1.0, 10.0)
    assert refill(0.25, 10.0, 1.0, 2.0, 10.5) == (False, 0.75, 10.5)
    assert refill(0.5, 10.0, 1.0, 2.0, 9.0) == (False, 0.5, 10.0)
    with pytest.raises(UsageError):
        refill(None, None, -1.0, 2.0, 0.0)


def test_errors_belong_to_the_hierarchy() -> None:
    stale = StaleBindingSet("sip:a@b", 1, 2)
    assert isinstance(stale, StorageError) and isinstance(stale, SiplineError)
    assert "expected version 1" in str(stale)
    assert TooManyBindings("sip:a@b", 4).limit == 4
