"""Device-style wire fixtures (written by us, in the styles of common phones, PBXs and carriers).

Every fixture must survive a byte-exact round trip, pass :func:`validate_strict`, expose the
typed values a proxy or UA reads, and take the proxy fast-path edit (decrement Max-Forwards,
push a Via) without any other line changing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipline.sip.message import Request, Response, SipURI, TelURI, parse_message
from sipline.sip.message.parser import validate_strict

DEVICES = Path(__file__).resolve().parents[2] / "fixtures" / "sip" / "devices"
FILES = sorted(DEVICES.glob("*.sip"))
NEW_VIA = "SIP/2.0/UDP 192.0.2.254:5060;branch=z9hG4bKproxy1"


def load(name: str) -> bytes:
    return (DEVICES / name).read_bytes()


def test_corpus_size() -> None:
    assert len(FILES) >= 15


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_roundtrip_and_strict(path: Path) -> None:
    data = path.read_bytes()
    msg = parse_message(data)
    validate_strict(msg)
    assert bytes(msg) == data
    assert msg.body == data[data.index(b"\r\n\r\n") + 4 :]
    # Reading every typed view leaves the bytes untouched.
    msg.vias, msg.contacts, msg.routes, msg.record_routes, msg.expires  # noqa: B018
    assert bytes(msg) == data


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_proxy_fast_path_changes_only_two_lines(path: Path) -> None:
    data = path.read_bytes()
    msg = parse_message(data)
    before = msg.headers.lines()
    mf = msg.max_forwards
    if mf is not None:
        msg.max_forwards = mf - 1
    msg.headers.prepend("Via", NEW_VIA)
    out = bytes(msg)
    after = msg.headers.lines()
    assert out.endswith(msg.body) and out.startswith(data.split(b"\r\n", 1)[0] + b"\r\n")
    first_via = next(i for i, (k, _) in enumerate(zip(msg.headers._keys, after)) if k == "via")
    assert after[first_via] == f"Via: {NEW_VIA}"
    rest = after[:first_via] + after[first_via + 1 :]
    changed = [(a, b) for a, b in zip(before, rest) if a != b]
    if mf is None:
        assert changed == []
    else:
        assert len(changed) == 1 and changed[0][1] == f"Max-Forwards: {mf - 1}"
        assert changed[0][0].split(":", 1)[0].strip().lower() == "max-forwards"
    again = parse_message(out)
    assert again.via.branch == "z9hG4bKproxy1" and len(again.vias) == len(msg.vias)
    assert again.max_forwards == (None if mf is None else mf - 1)


def test_polycom_register() -> None:
    msg = parse_message(load("polycom_register.sip"))
    assert isinstance(msg, Request) and msg.method == "REGISTER"
    contact = msg.contacts[0]
    assert contact.params.get_unquoted("+sip.instance") == "<urn:uuid:00040f1e-2a3b-4c5d-8e6f-0004f2a1b2c3>"
    assert contact.params.get("reg-id") == "1" and "," in (contact.params.get_unquoted("methods") or "")
    assert msg.expires == 3600 and msg.from_.display_name == "Front Desk"
    assert msg.via.has_rport and msg.via.rport is None
    assert msg.supported == ("100rel", "replaces", "outbound")


def test_yealink_and_linphone_invites() -> None:
    msg = parse_message(load("yealink_invite.sip"))
    assert msg.via.port == 5062 and msg.from_.tag == "2063985133" and msg.to.tag is None
    assert (msg.headers.get("Authorization") or "").startswith("Digest username=\"2001\"")
    assert "REGISTER" in msg.allow and msg.content_type == "application/sdp"
    msg = parse_message(load("linphone_invite.sip"))
    assert msg.via.transport == "TLS" and "alias" in msg.via.params
    assert isinstance(msg.to.uri, SipURI) and not msg.to.angle
    assert msg.contacts[0].params.get_unquoted("+org.linphone.specs") == "ephemeral,groupchat,lime"


def test_cisco_tcp_compact() -> None:
    data = load("cisco_register_tcp_compact.sip")
    msg = parse_message(data, datagram=False)
    assert msg.via.transport == "TCP" and msg.content_length == 0
    assert msg.call_id.startswith("00163e5b") and msg.from_.tag == "00163e5ba1c40012"
    assert "X-cisco-srtp-fallback" in msg.supported
    assert msg.contacts[0].params.get_unquoted("+u.sip!devicename.ccm.cisco.com") == "SEP00163E5BA1C4"
    assert msg.headers.get("Reason", "").startswith("SIP;cause=200")  # type: ignore[union-attr]


def test_zoiper_and_microsip() -> None:
    msg = parse_message(load("zoiper_register_rejected_auth.sip"))
    assert msg.expires == 60 and msg.call_id == "ZmVkY2JhOTg3NjU0MzIxMA.."
    assert isinstance(msg.to.uri, SipURI) and msg.to.uri.transport == "udp"
    msg = parse_message(load("microsip_invite_folded_tabs.sip"))
    assert msg.from_.display_name == "Jane\tDoe"
    assert [str(r.uri) for r in msg.routes] == ["sip:192.0.2.1;lr", "sip:192.0.2.2;lr"]
    assert msg.headers.get("Subject") == "" and msg.headers.get("User-Agent") == "MicroSIP/3.21.3"


def test_asterisk_and_freeswitch() -> None:
    msg = parse_message(load("asterisk_invite_rr_pai.sip"))
    pai = msg.headers.typed("p-asserted-identity", lambda h: h.get_all("P-Asserted-Identity"))
    assert len(pai) == 2
    assert [r.uri for r in msg.record_routes][0].params.get("ftag") == "as5f2e1d0c"  # type: ignore[union-attr]
    assert [v.received for v in msg.vias] == [None, "192.0.2.33"]
    ok = parse_message(load("asterisk_200_ok.sip"))
    assert isinstance(ok, Response) and ok.status == 200 and ok.to.tag == "as7b2c9d1e"
    assert ok.max_forwards is None and ok.vias[0].rport == 5060
    bye = parse_message(load("freeswitch_bye.sip"))
    assert bye.cseq.method == "BYE" and len(bye.routes) == 2
    assert isinstance(bye.routes[1].uri, SipURI) and bye.routes[1].uri.transport == "tcp"


def test_carrier_invite() -> None:
    msg = parse_message(load("carrier_invite_diversion_identity.sip"))
    assert msg.max_forwards == 68
    assert len(msg.routes) == 6 and msg.routes[4].uri.host == "2001:db8::5060"  # type: ignore[union-attr]
    identity = msg.headers.get("Identity") or ""
    assert identity.count(".") >= 2 and identity.endswith(';ppt="shaken"')
    assert msg.headers.get("y") == identity  # compact form of Identity
    assert "reason=unconditional" in (msg.headers.get("Diversion") or "")
    assert isinstance(msg.uri, SipURI) and msg.uri.user_param == "phone"


def test_webrtc_multipart_and_auth() -> None:
    msg = parse_message(load("webrtc_invite_wss.sip"))
    assert msg.via.transport == "WSS" and msg.via.host == "df7jal23ls0d.invalid"
    assert len(msg.body) > 1500 and msg.body.startswith(b"v=0\r\n")
    isup = parse_message(load("sipi_invite_multipart_isup.sip"), datagram=False)
    assert isup.content_type == "multipart/mixed" and b"\x00\xff\x0d\x0a" in isup.body
    assert isup.body.endswith(b"--unique-boundary-1--\r\n")
    resp = parse_message(load("kamailio_401_two_challenges.sip"))
    assert isinstance(resp, Response) and resp.status == 401
    challenges = resp.headers.get_all("WWW-Authenticate")
    assert len(challenges) == 2 and "SHA-256" in challenges[0] and "MD5" in challenges[1]


def test_notify_and_awkward() -> None:
    msg = parse_message(load("notify_sipfrag.sip"))
    assert msg.body == b"SIP/2.0 200 OK\r\n" and msg.content_type == "message/sipfrag"
    odd = parse_message(load("awkward_but_legal.sip"))
    assert isinstance(odd, Request) and isinstance(odd.uri, SipURI) and odd.uri.port == 5060
    assert [(v.transport, v.host) for v in odd.vias] == [("UDP", "2001:db8::9"), ("TCP", "192.0.2.5")]
    assert odd.max_forwards == 10 and odd.cseq.seq == 42
    assert odd.from_.display_name == 'Smith, John "JJ"' and odd.from_.tag == "ab12"
    contacts = odd.contacts
    assert [c.display_name for c in contacts] == ["Desk, Left", "Desk, Right", None]
    assert [c.q for c in contacts] == [0.7, 0.3, None] and contacts[1].expires == 120
    assert odd.headers.get("X-Empty") == "" and odd.headers.get("Subject") == ""
    assert odd.headers.get_all("Accept") == ["application/sdp", "application/pidf+xml"]
    assert odd.headers.get("User-Agent") == "probe/1.0 (folded comment)"
    cucm = parse_message(load("cisco_cucm_trunk_reinvite_ipv6_via.sip"))
    assert cucm.via.host == "2001:db8:10::1" and cucm.expires == 180
    assert isinstance(cucm.to.uri, (SipURI, TelURI))


def test_strict_checks_on_edited_fixture() -> None:
    from sipline.sip.errors import ProtocolError

    data = load("polycom_register.sip")
    msg = parse_message(data)
    msg.headers.add("Content-Type", "application sdp")
    with pytest.raises(ProtocolError, match="malformed Content-Type"):
        validate_strict(msg)
    msg = parse_message(data)
    msg.headers.add("Contact", "*")
    with pytest.raises(ProtocolError, match="Contact '\\*' must be the only Contact value"):
        msg.contacts  # noqa: B018
    msg = parse_message(data)
    msg.headers.add("Call-ID", "second")
    with pytest.raises(ProtocolError, match="more than one Call-ID"):
        parse_message(bytes(msg))
