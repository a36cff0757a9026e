"""RFC 4475 and RFC 5118 torture messages against the verdicts the RFCs give.

The fixtures under ``tests/fixtures/sip/torture/`` are the wire bytes of each message (see
``/work/shared/sip-torture/README.md`` for the three deliberate differences from the RFC
archives).  Each message has one row in :data:`VERDICTS`:

- ``"valid"``: :func:`parse_message` (``validate=True``) and :func:`validate_strict` accept it;
- ``"reject"``: :func:`parse_message` raises a ProtocolError with the status a server should
  answer (responses are dropped instead: the status is then only informative);
- ``"strict"``: the fault is in a header a proxy only forwards, so ``parse_message`` accepts
  the message and :func:`validate_strict` (what a UAS / registrar calls) rejects it.

The reason must name the fault: each row carries a fragment that the reason has to contain.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipline.sip.errors import ProtocolError
from sipline.sip.message import AbsoluteURI, Request, Response, SipURI, parse_message
from sipline.sip.message.parser import validate_strict

TORTURE = Path(__file__).resolve().parents[2] / "fixtures" / "sip" / "torture"


def load(name: str) -> bytes:
    return (TORTURE / f"{name}.sip").read_bytes()


# name: (verdict, status, fragment of the reason)   -- RFC section in the comment
VERDICTS: dict[str, tuple[str, int, str]] = {
    # RFC 4475 §3.1.1 valid messages
    "wsinv": ("valid", 0, ""),  # 3.1.1.1 short tortuous INVITE
    "intmeth": ("valid", 0, ""),  # 3.1.1.2 wide range of valid characters
    "esc01": ("valid", 0, ""),  # 3.1.1.3 valid use of % escaping
    "escnull": ("valid", 0, ""),  # 3.1.1.4 escaped NULs in URIs
    "esc02": ("valid", 0, ""),  # 3.1.1.5 % that is not an escape (unknown method -> 501 later)
    "lwsdisp": ("valid", 0, ""),  # 3.1.1.6 no LWS between display name and <
    "longreq": ("valid", 0, ""),  # 3.1.1.7 long values in header fields
    "dblreq": ("valid", 0, ""),  # 3.1.1.8 extra trailing octets in a UDP datagram
    "semiuri": ("valid", 0, ""),  # 3.1.1.9 semicolon-separated parameters in URI user part
    "transports": ("valid", 0, ""),  # 3.1.1.10 varied and unknown transport types
    "mpart01": ("valid", 0, ""),  # 3.1.1.11 multipart MIME message
    "unreason": ("valid", 0, ""),  # 3.1.1.12 unusual reason phrase
    "noreason": ("valid", 0, ""),  # 3.1.1.13 empty reason phrase
    # RFC 4475 §3.1.2 invalid messages
    "badinv01": ("reject", 400, "empty element"),  # 3.1.2.1 extraneous header field separators
    "clerr": ("reject", 400, "Content-Length 9999"),  # 3.1.2.2 Content-Length larger than message
    "ncl": ("reject", 400, "Content-Length is not a number"),  # 3.1.2.3 negative Content-Length
    "scalar02": ("reject", 400, "CSeq number"),  # 3.1.2.4 request scalar fields too large
    "scalarlg": ("reject", 400, "CSeq number"),  # 3.1.2.5 response: discarded
    "quotbal": ("reject", 400, "unbalanced quote"),  # 3.1.2.6 unterminated quoted display name
    "ltgtruri": ("reject", 400, "enclosed in '<>'"),  # 3.1.2.7 <> enclosing Request-URI
    "lwsruri": ("reject", 400, "whitespace inside the Request-URI"),  # 3.1.2.8 LWS in Request-URI
    "lwsstart": ("reject", 400, "single spaces"),  # 3.1.2.9 multiple SP in Request-Line
    "trws": ("reject", 400, "trailing whitespace"),  # 3.1.2.10 SP at end of Request-Line
    "escruri": ("strict", 400, "headers not allowed in a Request-URI"),  # 3.1.2.11
    "baddate": ("strict", 400, "Date is not an RFC 1123 date in GMT"),  # 3.1.2.12
    "regbadct": ("strict", 400, "must be in angle brackets"),  # 3.1.2.13 Contact URI with ? unbracketed
    "badaspec": ("reject", 400, "whitespace inside angle brackets"),  # 3.1.2.14 spaces in addr-spec
    "baddn": ("reject", 400, "unquoted display name"),  # 3.1.2.15 non-token display name
    "badvers": ("reject", 505, "SIP/7.0"),  # 3.1.2.16 unknown protocol version
    "mismatch01": ("reject", 400, "does not match"),  # 3.1.2.17 CSeq method mismatch
    "mismatch02": ("reject", 501, "does not match"),  # 3.1.2.18 unknown method: 501 preferred
    "bigcode": ("reject", 400, "bad status code"),  # 3.1.2.19 overlarge response code: dropped
    # RFC 4475 §3.2 transaction layer
    "badbranch": ("valid", 0, ""),  # 3.2.1 branch is the bare cookie: 2543 fallback
    # RFC 4475 §3.3 application layer: syntactically valid unless said otherwise
    "insuf": ("reject", 400, "missing Call-ID"),  # 3.3.1 missing required headers
    "unkscm": ("valid", 0, ""),  # 3.3.2 unknown Request-URI scheme (UAS: 416)
    "novelsc": ("valid", 0, ""),  # 3.3.3 known but atypical scheme
    "unksm2": ("valid", 0, ""),  # 3.3.4 unknown schemes in To/From/Contact
    "bext01": ("valid", 0, ""),  # 3.3.5 Proxy-Require / Require (UAS: 420)
    "invut": ("valid", 0, ""),  # 3.3.6 unknown Content-Type (UAS: 415)
    "regaut01": ("valid", 0, ""),  # 3.3.7 unknown authorization scheme
    "multi01": ("reject", 400, "more than one CSeq"),  # 3.3.8 several values in single-value fields
    "mcl01": ("reject", 400, "more than one Content-Length"),  # 3.3.9 several Content-Lengths
    "bcast": ("valid", 0, ""),  # 3.3.10 broadcast Via: well formed
    "zeromf": ("valid", 0, ""),  # 3.3.11 Max-Forwards 0 (OPTIONS: answered, not forwarded)
    "cparam01": ("valid", 0, ""),  # 3.3.12 Contact header parameter
    "cparam02": ("valid", 0, ""),  # 3.3.13 Contact URI parameter
    "regescrt": ("valid", 0, ""),  # 3.3.14 Contact with escaped header (registrar ignores it)
    "sdp01": ("valid", 0, ""),  # 3.3.15 unacceptable Accept (UAS: 415)
    "inv2543": ("valid", 0, ""),  # 3.4.1 RFC 2543 syntax
    "test": ("reject", 400, "malformed request line"),  # archive's undocumented test.dat
    # RFC 5118
    "ipv6-good": ("valid", 0, ""),  # 4.1
    "ipv6-bad": ("strict", 400, "IPv6 address without brackets"),  # 4.2
    "port-ambiguous": ("valid", 0, ""),  # 4.3
    "port-unambiguous": ("valid", 0, ""),  # 4.4
    "via-received-param-with-delim": ("valid", 0, ""),  # 4.5
    "via-received-param-no-delim": ("valid", 0, ""),  # 4.5
    "ipv6-in-sdp": ("valid", 0, ""),  # 4.6
    "mult-ip-in-header": ("valid", 0, ""),  # 4.7
    "mult-ip-in-sdp": ("valid", 0, ""),  # 4.8
    "ipv4-mapped-ipv6": ("valid", 0, ""),  # 4.9
    "ipv6-bug-abnf-3-colons": ("valid", 0, ""),  # 4.10 accepted, as the RFC advises
    "ipv6-correct-abnf-2-colons": ("valid", 0, ""),  # 4.10
}


def test_every_fixture_has_a_verdict() -> None:
    assert {p.stem for p in TORTURE.glob("*.sip")} == set(VERDICTS)


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_verdict(name: str) -> None:
    verdict, status, fragment = VERDICTS[name]
    data = load(name)
    if verdict == "reject":
        with pytest.raises(ProtocolError) as info:
            parse_message(data)
        assert info.value.status == status
        assert fragment in info.value.reason
        return
    msg = parse_message(data)
    assert bytes(msg).startswith(data[: data.index(b"\r\n\r\n")])
    if verdict == "valid":
        validate_strict(msg)
        # Lossless: the message re-serialises byte-for-byte (dblreq: the trailing noise is
        # dropped per RFC 3261 §18.3, so only its first message comes back).
        assert bytes(msg) == data or name == "dblreq"
    else:
        with pytest.raises(ProtocolError) as info:
            validate_strict(msg)
        assert info.value.status == status
        assert fragment in info.value.reason


def req(name: str) -> Request:
    msg = parse_message(load(name))
    assert isinstance(msg, Request)
    return msg


def resp(name: str) -> Response:
    msg = parse_message(load(name))
    assert isinstance(msg, Response)
    return msg


def sip(uri: object) -> SipURI:
    assert isinstance(uri, SipURI)
    return uri


def test_wsinv_unfolds_and_tolerates_whitespace() -> None:
    msg = req("wsinv")
    assert msg.method == "INVITE"
    assert msg.to.tag == "1918181833n"
    assert str(msg.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert msg.from_.display_name == 'J Rosenberg \\"' and msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    vias = msg.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert not vias[0].is_rfc3261 and vias[1].is_rfc3261
    assert [str(r.uri) for r in msg.routes] == ["sip:services.example.com;lr;unknownwith=value;unknown-no-value"]
    assert msg.content_length == 150 and len(msg.body) == 150
    assert msg.contacts[0].display_name == 'Quoted string ""'
    assert msg.contacts[0].params.get("newparam") == "newvalue" and msg.contacts[0].q == 0.33


def test_intmeth_method_and_tokens() -> None:
    msg = req("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method and msg.cseq.method == method
    assert msg.uri_text.startswith("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1")
    assert sip(msg.uri).host == "example.com"
    assert msg.via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"  # quoted-pairs of control chars
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.max_forwards == 255
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escaped_user() -> None:
    msg = req("esc01")
    uri = sip(msg.uri)
    assert uri.user == "sips%3Auser%40example.com" and uri.host == "example.net"
    assert uri.user_unescaped == "sips:user@example.com"
    assert sip(msg.to.uri).user_unescaped == "user"
    assert sip(msg.from_.uri).user_unescaped == "I have spaces"
    assert msg.content_type == "application/sdp"


def test_escnull_and_esc02() -> None:
    msg = req("escnull")
    assert sip(msg.to.uri).user_unescaped == "null-\x00-null"
    msg = req("esc02")
    assert msg.method == "RE%47IST%45R" and msg.cseq.method == "RE%47IST%45R"


def test_lwsdisp_display_name() -> None:
    assert req("lwsdisp").from_.display_name == "caller"


def test_longreq_many_and_long_headers() -> None:
    msg = req("longreq")
    assert len(msg.vias) > 30
    assert len(msg.headers) > 40
    assert msg.to.display_name is not None and len(msg.to.display_name) > 100
    assert len(str(msg.to.uri)) > 300 and len(msg.from_.tag or "") > 100
    assert any(len(v) > 500 for _, v in msg.headers)
    assert len(msg.body) == msg.content_length


def test_dblreq_keeps_only_the_first_request() -> None:
    data = load("dblreq")
    msg = req("dblreq")
    assert msg.method == "REGISTER" and msg.body == b""
    # §18.3: octets after Content-Length in a datagram are discarded, not parsed.
    assert b"INVITE sip:joe@example.com" in data and b"INVITE" not in bytes(msg)
    with pytest.raises(ProtocolError, match="bytes after the body"):
        parse_message(data, datagram=False)


def test_semiuri_user_with_semicolons() -> None:
    uri = sip(req("semiuri").uri)
    assert uri.user == "user;par=u%40example.net" and uri.host == "example.com" and not uri.params


def test_transports() -> None:
    assert [v.transport for v in req("transports").vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_body_intact() -> None:
    data = load("mpart01")
    msg = req("mpart01")
    assert msg.body == data[data.index(b"\r\n\r\n") + 4 :]
    assert msg.content_type == "multipart/mixed" and b"\x00" not in msg.body[:0]
    assert len(msg.body) == msg.content_length


def test_reason_phrases() -> None:
    msg = resp("unreason")
    assert msg.status == 200 and msg.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    msg = resp("noreason")
    assert msg.status == 100 and msg.reason == ""


def test_unknown_schemes_are_absolute_uris() -> None:
    msg = req("unkscm")
    assert isinstance(msg.uri, AbsoluteURI) and msg.uri.scheme == "nobodyKnowsThisScheme"
    msg = req("unksm2")
    assert isinstance(msg.to.uri, AbsoluteURI) and str(msg.to.uri) == "isbn:2983792873"
    assert isinstance(msg.from_.uri, AbsoluteURI) and msg.from_.tag == "3234233"
    assert isinstance(msg.contacts[0].uri, AbsoluteURI)
    msg = req("novelsc")
    assert isinstance(msg.uri, AbsoluteURI) and msg.uri.scheme == "soap.beep"


def test_application_layer_values() -> None:
    msg = req("bext01")
    assert msg.require == ("nothingSupportsThis", "nothingSupportsThisEither")
    assert msg.proxy_require == ("noProxiesSupportThis", "norDoAnyProxiesSupportThis")
    assert req("regaut01").headers.get("Authorization", "").startswith("NoOneKnowsThisScheme")  # type: ignore[union-attr]
    assert req("zeromf").max_forwards == 0
    assert req("inv2543").max_forwards is None and req("inv2543").via.branch is None
    assert req("inv2543").from_.tag is None
    assert req("invut").content_type == "application/unknownformat"
    assert req("sdp01").headers.get("Accept") == "text/nobodyKnowsThis"
    assert req("badbranch").via.branch == "z9hG4bK" and not req("badbranch").via.is_rfc3261
    vias = resp("bcast").vias
    assert vias[1].host == "255.255.255.255"


def test_contact_params() -> None:
    c1 = req("cparam01").contacts[0]
    assert "unknownparam" in c1.params and not sip(c1.uri).params
    c2 = req("cparam02").contacts[0]
    assert "unknownparam" in sip(c2.uri).params and not c2.params
    c3 = req("regescrt").contacts[0]
    assert sip(c3.uri).headers == (("Route", "%3Csip:sip.example.com%3E"),)


def test_rfc5118_values() -> None:
    msg = req("ipv6-good")
    assert sip(msg.uri).host == "2001:db8::10" and msg.via.host == "2001:db8::9:1"
    assert sip(msg.contacts[0].uri).host == "2001:db8::1"
    ambiguous = sip(req("port-ambiguous").uri)
    assert ambiguous.host == "2001:db8::10:5070" and ambiguous.port is None
    unambiguous = sip(req("port-unambiguous").uri)
    assert unambiguous.host == "2001:db8::10" and unambiguous.port == 5070
    assert req("via-received-param-with-delim").via.received == "[2001:db8::9:255]"
    assert req("via-received-param-no-delim").via.received == "2001:db8::9:255"
    vias = req("mult-ip-in-header").vias
    assert [(v.host, v.port) for v in vias] == [("2001:db8::9:1", 6050), ("192.0.2.1", None), ("2001:db8::9:255", None)]
    assert vias[2].received == "192.0.2.200"
    mapped = req("ipv4-mapped-ipv6")
    assert mapped.via.host == "::ffff:192.0.2.10" and mapped.via.port == 19823
    assert b"c=IN IP6 ::ffff:192.0.2.2" in mapped.body and len(mapped.body) == mapped.content_length
    assert b"IN IP6 2001:db8::" in req("ipv6-in-sdp").body
    assert req("mult-ip-in-sdp").body.count(b"c=IN") >= 2
    assert sip(req("ipv6-bug-abnf-3-colons").uri).host == "2001:db8:::192.0.2.1"
    assert sip(req("ipv6-correct-abnf-2-colons").uri).host == "2001:db8::192.0.2.1"
    with pytest.raises(ProtocolError, match="IPv6 address without brackets"):
        req("ipv6-bad").uri  # noqa: B018


def test_scalar02_names_the_cseq_first() -> None:
    # §3.1.2.4: the CSeq alone makes it a 400; Max-Forwards and Expires could be tolerated.
    data = load("scalar02").replace(b"CSeq: 36893488147419103232", b"CSeq: 1")
    msg = parse_message(data, validate=False)
    with pytest.raises(ProtocolError, match="Max-Forwards value 300 too large"):
        msg.max_forwards  # noqa: B018
    assert msg.expires == 2**32 - 1  # §20.19: read as the largest delta-seconds
