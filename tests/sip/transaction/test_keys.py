"""Transaction matching (RFC 3261 §17.1.3, §17.2.3, §9.2), including the RFC 2543 fallback."""

from __future__ import annotations

from typing import Any

from sipline.sip.message.builders import ack_for, cancel_for, response_to
from sipline.sip.transaction import TransactionKey, ack_keys, cancel_target_key, client_key, server_key

W = Any


def test_client_key_pairs_request_and_response(wire: W) -> None:
    invite = wire.request("INVITE")
    key = client_key(invite)
    assert key == TransactionKey(False, "INVITE", branch=wire.BRANCH)
    assert client_key(wire.response(180)) == key
    # CANCEL shares the branch but is its own transaction (§17.1.3 on CSeq method).
    assert client_key(cancel_for(invite)) != key
    assert client_key(wire.response(200, method="CANCEL")) == client_key(cancel_for(invite))


def test_client_key_none_without_branch(wire: W) -> None:
    response = wire.response(200)
    response.headers.set("Via", "SIP/2.0/UDP pc33.atlanta.example.com")
    assert client_key(response) is None


def test_server_key_branch_sent_by_method(wire: W) -> None:
    invite = wire.request("INVITE")
    key = server_key(invite)
    assert key == TransactionKey(True, "INVITE", branch=wire.BRANCH, sent_by="pc33.atlanta.example.com")
    assert server_key(wire.request("INVITE")) == key  # a retransmission
    ack = ack_for(invite, response_to(invite, 486, to_tag="x"))
    assert server_key(ack) == key  # the non-2xx ACK belongs to the INVITE transaction
    assert ack_keys(ack) == (key,)
    assert server_key(wire.request("INVITE", branch=wire.BRANCH + "2")) != key
    other_host = wire.request("INVITE")
    other_host.headers.set("Via", f"SIP/2.0/UDP PC33.Atlanta.example.com:5060;branch={wire.BRANCH}")
    assert server_key(other_host).sent_by == "pc33.atlanta.example.com:5060"
    same_host = wire.request("INVITE")
    same_host.headers.set("Via", f"SIP/2.0/UDP PC33.ATLANTA.example.com;branch={wire.BRANCH}")
    assert server_key(same_host) == key  # host compared case-insensitively
    cancel = cancel_for(invite)
    assert server_key(cancel) != key
    assert cancel_target_key(cancel) == key
    assert cancel_target_key(wire.request("CANCEL")) == key


def _legacy(wire: W, method: str = "INVITE", branch: str | None = None, **kw: Any) -> Any:
    request = wire.request(method, **kw)
    via = "SIP/2.0/UDP pc33.atlanta.example.com" + (f";branch={branch}" if branch else "")
    request.headers.set("Via", via)
    return request


def test_rfc2543_fallback_without_magic_cookie(wire: W) -> None:
    invite = _legacy(wire)
    key = server_key(invite)
    assert key.branch == "" and key.legacy[0] == "sip:bob@biloxi.example.com"
    assert str(key).startswith("server:INVITE:2543:")
    assert server_key(_legacy(wire)) == key
    assert server_key(_legacy(wire, branch="oldstyle1")) != key  # the top Via differs
    assert server_key(_legacy(wire, cseq=2)) != key
    assert server_key(_legacy(wire, to_tag="t")) != key
    changed = _legacy(wire)
    changed.headers.set("Call-ID", "other@host")
    assert server_key(changed) != key
    changed = _legacy(wire)
    changed.uri = "sip:carol@biloxi.example.com"
    assert server_key(changed) != key
    # CANCEL: same fields as the INVITE (§9.2).
    assert cancel_target_key(_legacy(wire, "CANCEL")) == key


def test_rfc2543_ack_candidates(wire: W) -> None:
    invite = _legacy(wire)
    ack = _legacy(wire, "ACK", to_tag="ourtag")
    first, second = ack_keys(ack)
    assert first == server_key(_legacy(wire, to_tag="ourtag"))  # a re-INVITE in a dialog
    assert second == server_key(invite)  # an initial INVITE answered with To tag "ourtag"
    assert ack_keys(_legacy(wire, "ACK")) == (server_key(invite),)


def test_key_str(wire: W) -> None:
    assert str(client_key(wire.request("BYE"))) == f"client:BYE:{wire.BRANCH}"
