"""The SBC between real SIP peers: SIPp as a PBX, SIPp as two carriers, ``sipline serve`` with
``[[trunks]]`` in between.

Each test starts its own server with the trunks it needs (the SBC shares the server's UDP
listener; the PBX is a customer trunk known by the ACL 127.0.0.1/32, the carriers are
known by their host and port) and reads the verdict from what the peers *received*: SIPp's
``-trace_msg`` log of each carrier is the ground truth for topology hiding and number
formats, the PBX's log for the 503s of the caps, and the admin endpoint (``GET /trunks``)
for channel counts and carrier health.

The PBX dials like a German PBX does (national numbers, region DE); carriers get E.164 or
whatever their ``format`` asks for.  Its INVITE carries what a private network leaks (an
inner proxy's Via and Record-Route, a User-Agent, an ``X-`` header, a private SDP address
in the media test), so each check has something to find if hiding failed.

Scenarios: ``scenarios/sbc_*.xml``.  Media is checked with plain UDP sockets standing in for
the phones' RTP ports, because SIPp cannot report what RTP it received.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = pytest.mark.interop

#: How the PBX writes the caller and the callee (German national form).
PBX_CALLER = "0301111"
DIALLED = "030123456"
E164_CALLER = "+49301111"
E164_CALLEE = "+4930123456"
#: What only the PBX's network knows; none of it may reach a carrier.
PBX_SECRETS = ("10.20.30.40", "pbx-inner-proxy", "PBX-Internal-Build-77", "X-Pbx-Secret",
               "tenant-4711", "pbxuser", "pbx-session", "PbxTag")
#: What only the carrier knows; none of it may reach the PBX.
CARRIER_SECRETS = ("CarrierTag", "Carrier-Switch-9", "o=carrier")
RETRY_AFTER = 7

# ----------------------------------------------------------------------------- the server


@dataclass
class Sbc:
    """A running ``sipline serve`` with trunks, and its data directory (admin endpoint)."""

    server: harness.Server
    data: Path

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def port(self) -> int:
        return self.server.port

    def trunks(self) -> dict[str, dict[str, Any]]:
        rows = harness.sipline_admin_get(self.data, "/trunks")
        assert isinstance(rows, list)
        return {row["name"]: row for row in rows}

    def host_state(self, trunk: str) -> str:
        return str(self.trunks()[trunk]["hosts"][0]["state"])

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not within {timeout:g} s: {self.trunks()}\n"
                                     f"--- sipline\n{self.server.peer.log_tail()}")
            self.server.peer.check_alive()
            time.sleep(0.1)

    def log(self) -> str:
        return self.server.peer.log_tail(6000)


def carrier_trunk(name: str, port: int, **extra: object) -> dict[str, object]:
    """A carrier on 127.0.0.1:``port``, authenticated by IP, without keepalives."""
    return {"name": name, "kind": "carrier", "hosts": [f"udp:{harness.LOOPBACK}:{port}"],
            "options_interval": 0.0, "numbers": {"region": "DE"}, **extra}


def pbx_trunk(**extra: object) -> dict[str, object]:
    """The PBX: a customer trunk recognised by its source address alone."""
    return {"name": "pbx", "kind": "customer", "acl": [f"{harness.LOOPBACK}/32"],
            "numbers": {"region": "DE"}, **extra}


def sbc_config(trunks: Sequence[Mapping[str, object]], routes: Sequence[Mapping[str, object]],
               *, media: str = "off") -> str:
    # The relay's ports: a window of its own per server, so parallel runs do not collide
    # (a port taken by another process is skipped anyway).
    first = harness.free_port() & ~1
    sbc = {"media": media, "retry_after": RETRY_AFTER, "ring_timeout": 10.0,
           "rtp_port_min": first, "rtp_port_max": min(first + 63, 65535)}
    extra = ("[sbc]\n" + "".join(f"{k} = {harness.toml_value(v)}\n" for k, v in sbc.items())
             + "\n" + harness.toml_tables("trunks", trunks)
             + "\n" + harness.toml_tables("routes", routes))
    return harness.sipline_config(drain_timeout=1.0, extra=extra)


@contextmanager
def running_sbc(workdir: Path, trunks: Sequence[Mapping[str, object]],
                routes: Sequence[Mapping[str, object]], *, media: str = "off") -> Iterator[Sbc]:
    config = sbc_config(trunks, routes, media=media)
    server = harness.start_sipline(workdir / "sipline", config=config)
    with harness.running(server):
        yield Sbc(server, workdir / "sipline" / "data")


# ----------------------------------------------------------------------------- the peers


@dataclass
class Carrier:
    """A SIPp carrier on its own port, serving calls until stopped by PID."""

    name: str
    port: int
    process: harness.SippProcess | None = None
    result: harness.SippResult | None = None

    def start(self, workdir: Path, scenario: str = "sbc_carrier", *, rtp: tuple[str, int] | None = None,
              keys: Mapping[str, str] | None = None, extra: Sequence[str] = ()) -> Carrier:
        sdp_ip, sdp_port = rtp or (harness.LOOPBACK, 9)
        all_keys = {"sdp_ip": sdp_ip, "sdp_port": str(sdp_port), **(keys or {})}
        self.process = harness.start_sipp(scenario, workdir / self.name, port=self.port, calls=0,
                                          timeout_s=40, keys=all_keys, extra=extra)
        try:
            harness.wait_udp_bound(self.port)
        except harness.HarnessError:
            self.stop()
            raise
        return self

    def stop(self) -> harness.SippResult:
        assert self.process is not None
        if self.result is None:
            self.result = self.process.stop()
        return self.result

    def messages(self) -> list[harness.SippMessage]:
        assert self.process is not None
        name = self.process.scenario.stem
        return harness.sipp_messages(self.process.peer.workdir / f"{name}.messages.log")

    def invites(self) -> list[harness.SippMessage]:
        return [m for m in self.messages() if not m.sent and m.first_line.startswith("INVITE ")]


@contextmanager
def carriers(workdir: Path, *names: str) -> Iterator[list[Carrier]]:
    made = [Carrier(name, harness.free_port()) for name in names]
    try:
        yield made
    finally:
        for carrier in made:
            if carrier.process is not None:
                carrier.stop()


def pbx_call(sbc: Sbc, workdir: Path, *, calls: int = 1, rate: float = 10.0, hold_ms: int = 200,
             rtp: tuple[str, int] = (harness.LOOPBACK, 9), port: int | None = None,
             auth: tuple[str, str] | None = None, timeout_s: float = 12.0,
             scenario: str = "sbc_pbx_call", extra: Sequence[str] = ()) -> harness.SippResult:
    """The PBX dials DIALLED ``calls`` times (answered calls last ``hold_ms``)."""
    return harness.run_sipp(scenario, workdir, target=sbc.address, port=port, service=DIALLED,
                            caller=PBX_CALLER, calls=calls, rate=rate, duration_ms=hold_ms,
                            keys={"sdp_ip": rtp[0], "sdp_port": str(rtp[1])}, auth=auth,
                            auth_uri=f"{DIALLED}@{sbc.address}", timeout_s=timeout_s, extra=extra)


def received(result: harness.SippResult) -> list[harness.SippMessage]:
    assert result.messages_log is not None, result.describe()
    return [m for m in harness.sipp_messages(result.messages_log) if not m.sent]


def finals(result: harness.SippResult) -> list[harness.SippMessage]:
    """The final responses to INVITEs the PBX received (retransmissions included)."""
    out = []
    for message in received(result):
        match = re.match(r"SIP/2\.0 (\d{3}) ", message.first_line)
        if match and int(match.group(1)) >= 200 and message.header("CSeq")[0].endswith("INVITE"):
            out.append(message)
    return out


def statuses(result: harness.SippResult) -> list[int]:
    """One final status per call attempt (by Call-ID and CSeq), in order of arrival."""
    seen: dict[tuple[str, str], int] = {}
    for message in finals(result):
        key = (message.header("Call-ID")[0], message.header("CSeq")[0])
        seen.setdefault(key, int(message.first_line.split()[1]))
    return list(seen.values())


def sdp_media(message: harness.SippMessage) -> tuple[str, int]:
    """(c= address, first m= port) of a message's SDP."""
    address = re.search(r"^c=IN IP4 (\S+)", message.body, re.M)
    port = re.search(r"^m=audio (\d+) ", message.body, re.M)
    assert address and port, message.text
    return address.group(1), int(port.group(1))


def explain(*parts: object) -> str:
    out = []
    for part in parts:
        if isinstance(part, harness.SippResult):
            out.append(part.describe())
        elif isinstance(part, Sbc):
            out.append("--- sipline\n" + part.log())
        else:
            out.append(str(part))
    return "\n".join(out)


# ----------------------------------------------------------------------------- (a) topology


FORMATS = {
    # carrier's number format -> (callee, caller) as the carrier must see them
    "e164": ({"form": "e164"}, {"region": "DE"}, E164_CALLEE, E164_CALLER),
    "e164-noplus": ({"form": "e164-noplus"}, {"region": "DE"}, E164_CALLEE[1:], E164_CALLER[1:]),
    # An Austrian carrier writing nationally: a German number gets the international prefix.
    "national-AT": ({"form": "national"}, {"region": "AT"}, "00" + E164_CALLEE[1:], "00" + E164_CALLER[1:]),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("number_format", list(FORMATS))
def test_call_hides_the_pbx_and_normalizes_numbers(require_peer: Callable[[str], str],
                                                  tmp_path: Path, number_format: str) -> None:
    require_peer("sipp")
    fmt, plan, callee, caller = FORMATS[number_format]
    pbx_port, pbx_rtp = harness.free_port(), harness.free_port()
    with carriers(tmp_path, "carrier-a") as (a,):
        trunks = [carrier_trunk("carrier-a", a.port, format=fmt, numbers=plan), pbx_trunk()]
        with running_sbc(tmp_path, trunks, [{"prefix": "+49", "carrier": "carrier-a"}],
                         media="relay") as sbc:
            a.start(tmp_path)
            pbx = pbx_call(sbc, tmp_path / "pbx", port=pbx_port, rtp=(harness.LOOPBACK, pbx_rtp))
            assert pbx.ok, explain(pbx, sbc)
            assert statuses(pbx) == [200], explain(pbx, sbc)
            a.stop()
    got = [m for m in a.messages() if not m.sent]
    invites = [m for m in got if m.first_line.startswith("INVITE ")]
    assert len(invites) == 1, explain(a.result, sbc)
    invite = invites[0]
    pbx_sent = [m for m in harness.sipp_messages(pbx.messages_log) if m.sent]  # type: ignore[arg-type]
    pbx_call_id = pbx_sent[0].header("Call-ID")[0]

    # Numbers: the Request-URI and To carry the callee, From and P-Asserted-Identity the caller,
    # all in the carrier's format.
    assert invite.first_line == f"INVITE sip:{callee}@{harness.LOOPBACK}:{a.port} SIP/2.0"
    assert f"<sip:{callee}@" in invite.header("To")[0]
    assert f"<sip:{caller}@" in invite.header("From")[0]
    assert all(f"<sip:{caller}@" in value for value in invite.header("P-Asserted-Identity"))
    # The headers a PBX leaks: one Via (ours), no Record-Route, our Contact, fresh Call-ID/tags.
    sbc_hostport = f"{harness.LOOPBACK}:{sbc.port}"
    assert len(invite.header("Via")) == 1 and sbc_hostport in invite.header("Via")[0]
    assert invite.header("Record-Route") == []
    assert sbc_hostport in invite.header("Contact")[0]
    assert invite.header("User-Agent") == []
    # The SDP points at the relay, not at the PBX's RTP port; o= and s= are rewritten.
    address, port = sdp_media(invite)
    assert (address, port) != (harness.LOOPBACK, pbx_rtp)
    for message in got:  # requests and responses alike (ACK, BYE ...)
        text = message.text
        for secret in (pbx_call_id, f":{pbx_port}", f"m=audio {pbx_rtp} ", DIALLED, *PBX_SECRETS):
            assert secret not in text, f"{secret!r} reached the carrier:\n{text}"
    # And the other way round: nothing of the carrier reached the PBX.
    carrier_call_id = invite.header("Call-ID")[0]
    for message in received(pbx):
        for secret in (carrier_call_id, f":{a.port}", *CARRIER_SECRETS):
            assert secret not in message.text, f"{secret!r} reached the PBX:\n{message.text}"


# ----------------------------------------------------------------------------- (b) channels


@pytest.mark.timeout(40)
@pytest.mark.parametrize("capped", ["customer", "carrier"])
def test_channel_cap_refuses_the_extra_call_and_frees_channels(require_peer: Callable[[str], str],
                                                               tmp_path: Path, capped: str) -> None:
    """N = 2 channels on the PBX trunk (or on the carrier trunk): of three overlapping calls
    the third gets 503 with Retry-After; when the two end, their channels are free again."""
    require_peer("sipp")
    with carriers(tmp_path, "carrier-a") as (a,):
        cap = {"max_channels": 2}
        trunks = [carrier_trunk("carrier-a", a.port, **(cap if capped == "carrier" else {})),
                  pbx_trunk(**(cap if capped == "customer" else {}))]
        with running_sbc(tmp_path, trunks, [{"prefix": "+49", "carrier": "carrier-a"}]) as sbc:
            a.start(tmp_path)
            # Calls start 100 ms apart and last 1.5 s: the third finds both channels taken.
            burst = pbx_call(sbc, tmp_path / "burst", calls=3, rate=10, hold_ms=1500)
            assert burst.ok, explain(burst, sbc)
            assert sorted(statuses(burst)) == [200, 200, 503], explain(burst, sbc)
            refusal = next(m for m in finals(burst) if m.first_line.startswith("SIP/2.0 503"))
            assert any("channel limit" in value for value in refusal.header("Reason")), refusal.text
            assert refusal.header("Retry-After"), refusal.text
            sbc.wait_for("channels released", lambda: all(
                row["channels"] == 0 for row in sbc.trunks().values()), timeout=5)
            # The freed channels carry new calls: two at once again.
            again = pbx_call(sbc, tmp_path / "again", calls=2, rate=10, hold_ms=500)
            assert again.ok and statuses(again) == [200, 200], explain(again, sbc)
            assert len(a.invites()) == 4
            sbc.wait_for("channels released", lambda: all(
                row["channels"] == 0 for row in sbc.trunks().values()), timeout=5)
    # Last, so that a failure here still reports everything above first.
    assert refusal.header("Retry-After") == [str(RETRY_AFTER)], refusal.text


# ----------------------------------------------------------------------------- (c) CPS


@pytest.mark.timeout(40)
@pytest.mark.parametrize("capped", ["customer", "carrier"])
def test_cps_cap_refuses_calls_beyond_the_rate(require_peer: Callable[[str], str], tmp_path: Path,
                                                capped: str) -> None:
    """2 calls per second (bucket depth 2): of 10 calls within 0.1 s at most 3 get through,
    the others get 503 with Retry-After; a second later the bucket has refilled."""
    require_peer("sipp")
    with carriers(tmp_path, "carrier-a") as (a,):
        cap = {"max_cps": 2.0}
        trunks = [carrier_trunk("carrier-a", a.port, **(cap if capped == "carrier" else {})),
                  pbx_trunk(**(cap if capped == "customer" else {}))]
        with running_sbc(tmp_path, trunks, [{"prefix": "+49", "carrier": "carrier-a"}]) as sbc:
            a.start(tmp_path)
            burst = pbx_call(sbc, tmp_path / "burst", calls=10, rate=100, hold_ms=100)
            assert burst.ok, explain(burst, sbc)
            got = statuses(burst)
            assert len(got) == 10 and set(got) <= {200, 503}, explain(got, burst, sbc)
            assert 2 <= got.count(200) <= 3, explain(got, burst, sbc)
            refusals = [m for m in finals(burst) if m.first_line.startswith("SIP/2.0 503")]
            for refusal in refusals:
                assert any("CPS limit" in value for value in refusal.header("Reason")), refusal.text
                assert refusal.header("Retry-After"), refusal.text
            assert len(a.invites()) == got.count(200)
            time.sleep(1.1)
            later = pbx_call(sbc, tmp_path / "later", calls=2, rate=4, hold_ms=100)
            assert later.ok and statuses(later) == [200, 200], explain(later, sbc)
            sbc.wait_for("channels released", lambda: all(
                row["channels"] == 0 for row in sbc.trunks().values()), timeout=5)
    # Last, so that a failure here still reports everything above first.
    assert {value for m in refusals for value in m.header("Retry-After")} == {str(RETRY_AFTER)}


# ----------------------------------------------------------------------------- (d) health


@pytest.mark.timeout(40)
def test_carrier_without_options_answers_is_skipped_until_it_answers(
        require_peer: Callable[[str], str], tmp_path: Path) -> None:
    """Carrier A (first choice) swallows OPTIONS but would take an INVITE: once the SBC marks it
    down, calls go to carrier B without trying A; when A answers OPTIONS again it is back up
    and gets the calls again."""
    require_peer("sipp")
    health = {"options_interval": 0.3, "options_timeout": 0.3, "down_threshold": 2,
              "up_threshold": 2}
    with carriers(tmp_path, "carrier-a", "carrier-b", "carrier-a-again") as (a, b, a_again):
        a_again.port = a.port
        trunks = [carrier_trunk("carrier-a", a.port, **health),
                  carrier_trunk("carrier-b", b.port, **health), pbx_trunk()]
        routes = [{"prefix": "+49", "carrier": "carrier-a", "priority": 0},
                  {"prefix": "+49", "carrier": "carrier-b", "priority": 1}]
        a.start(tmp_path, "sbc_carrier_mute")
        b.start(tmp_path)
        with running_sbc(tmp_path, trunks, routes) as sbc:
            sbc.wait_for("carrier-a down", lambda: sbc.host_state("carrier-a") == "down")
            assert sbc.host_state("carrier-b") == "up"
            first = pbx_call(sbc, tmp_path / "while-down", calls=2, rate=10)
            assert first.ok and statuses(first) == [200, 200], explain(first, sbc)
            assert len(b.invites()) == 2
            assert a.invites() == [], "a carrier marked down still got an INVITE"
            a.stop()
            # Carrier A recovers: same port, now answering OPTIONS.
            a_again.start(tmp_path)
            sbc.wait_for("carrier-a up", lambda: sbc.host_state("carrier-a") == "up")
            second = pbx_call(sbc, tmp_path / "after-recovery", calls=2, rate=10)
            assert second.ok and statuses(second) == [200, 200], explain(second, sbc)
            assert len(a_again.invites()) == 2
            assert len(b.invites()) == 2
    assert any(not m.sent and m.first_line.startswith("OPTIONS ") for m in a.messages())


# ----------------------------------------------------------------------------- (e) digest


def _digest_fields(value: str) -> dict[str, str]:
    assert value.startswith("Digest "), value
    return {k.lower(): v1 or v2 for k, v1, v2 in
            re.findall(r'([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', value[len("Digest "):])}


def _challenged_call(tmp_path: Path, user: str, password: str,
                     challenge_extra: str) -> tuple[harness.SippResult, list[harness.SippMessage]]:
    """A PBX call to a carrier that challenges with 407; (PBX verdict, INVITEs the carrier got)."""
    with carriers(tmp_path, "carrier-a") as (a,):
        trunks = [carrier_trunk("carrier-a", a.port, username=user, password=password), pbx_trunk()]
        with running_sbc(tmp_path, trunks, [{"prefix": "+49", "carrier": "carrier-a"}]) as sbc:
            a.start(tmp_path, "sbc_carrier_auth", keys={"challenge_extra": challenge_extra})
            pbx = pbx_call(sbc, tmp_path / "pbx")
            assert pbx.ok and statuses(pbx) == [200], explain(pbx, sbc, a.stop())
    return pbx, a.invites()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("qop", ["none", "auth"])
def test_digest_auth_towards_a_carrier_that_challenges(require_peer: Callable[[str], str],
                                                       tmp_path: Path, qop: str) -> None:
    require_peer("sipp")
    user, password = "acct-a", "s3cret-a"
    pbx, invites = _challenged_call(tmp_path, user, password, ', qop="auth"' if qop == "auth" else "")
    # The PBX never saw the carrier's challenge: the SBC answered it.
    assert all("407" not in m.first_line for m in received(pbx))
    assert len(invites) == 2, invites
    assert invites[0].header("Proxy-Authorization") == []
    (credentials,) = invites[1].header("Proxy-Authorization")
    fields = _digest_fields(credentials)
    assert fields["username"] == user and fields["realm"] == "carrier.test"
    assert fields["nonce"].startswith("c4rr13r")
    assert fields["uri"] == invites[1].first_line.split()[1]
    # Recompute the response (RFC 2617 section 3.2.2.1, MD5; with qop, nc and cnonce count).
    ha1 = hashlib.md5(f"{user}:carrier.test:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"INVITE:{fields['uri']}".encode()).hexdigest()
    if qop == "auth":
        assert fields["qop"] == "auth" and fields["nc"] == "00000001" and fields["cnonce"]
        material = f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}"
    else:
        assert "qop" not in fields and "nc" not in fields
        material = f"{ha1}:{fields['nonce']}:{ha2}"
    assert fields["response"] == hashlib.md5(material.encode()).hexdigest()
    # Same call, next CSeq, new branch (RFC 3261 22.3 / 8.1.3.5).
    assert invites[1].header("Call-ID") == invites[0].header("Call-ID")
    seq0 = int(invites[0].header("CSeq")[0].split()[0])
    assert invites[1].header("CSeq") == [f"{seq0 + 1} INVITE"]
    assert invites[1].header("Via") != invites[0].header("Via")


@pytest.mark.timeout(30)
def test_digest_without_qop_sends_no_cnonce(require_peer: Callable[[str], str], tmp_path: Path) -> None:
    require_peer("sipp")
    _, invites = _challenged_call(tmp_path, "acct-a", "s3cret-a", "")
    (credentials,) = invites[1].header("Proxy-Authorization")
    assert "cnonce" not in _digest_fields(credentials), credentials


# ----------------------------------------------------------------------------- (f) media


def rtp_packet(seq: int, ssrc: int, marker: bytes) -> bytes:
    header = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc)
    return header + marker.ljust(160, b"\xff")


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((harness.LOOPBACK, 0))
    sock.settimeout(0.2)
    return sock


def exchange(sender: socket.socket, target: tuple[str, int], receiver: socket.socket,
             marker: bytes, *, ssrc: int, count: int = 10) -> list[tuple[bytes, tuple[str, int]]]:
    """Send ``count`` RTP packets at 20 ms; what ``receiver`` got carrying ``marker``."""
    got: list[tuple[bytes, tuple[str, int]]] = []
    for seq in range(count):
        sender.sendto(rtp_packet(seq, ssrc, marker), target)
        time.sleep(0.02)
        try:
            while True:
                data, source = receiver.recvfrom(2048)
                if marker in data:
                    got.append((data, source))
        except (TimeoutError, BlockingIOError):
            pass
        receiver.settimeout(0.0)
    receiver.settimeout(0.2)
    return got


def wait_message(load: Callable[[], list[harness.SippMessage]],
                 predicate: Callable[[harness.SippMessage], bool], timeout: float = 5.0) -> harness.SippMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in load():
            if predicate(message):
                return message
        time.sleep(0.05)
    raise AssertionError("message not seen in the SIPp log")


@pytest.mark.timeout(40)
def test_media_relay_latches_to_a_natted_pbx(require_peer: Callable[[str], str], tmp_path: Path) -> None:
    """RTP both ways through the relay; the PBX's SDP names a private address (it is behind a
    NAT), so the relay sends the PBX's media to where its RTP really comes from."""
    require_peer("sipp")
    pbx_media, carrier_media = udp_socket(), udp_socket()
    private = ("10.99.0.1", 4000)
    with pbx_media, carrier_media, carriers(tmp_path, "carrier-a") as (a,):
        trunks = [carrier_trunk("carrier-a", a.port), pbx_trunk()]
        with running_sbc(tmp_path, trunks, [{"prefix": "+49", "carrier": "carrier-a"}],
                         media="relay") as sbc:
            a.start(tmp_path, rtp=carrier_media.getsockname())
            workdir = tmp_path / "pbx"
            call = harness.start_sipp("sbc_pbx_call", workdir, target=sbc.address, service=DIALLED,
                                      caller=PBX_CALLER, calls=1, duration_ms=4000, timeout_s=15,
                                      keys={"sdp_ip": private[0], "sdp_port": str(private[1])})
            try:
                invite = wait_message(a.messages, lambda m: not m.sent and m.first_line.startswith("INVITE "))
                answer = wait_message(
                    lambda: harness.sipp_messages(workdir / "sbc_pbx_call.messages.log"),
                    lambda m: not m.sent and m.first_line.startswith("SIP/2.0 200")
                    and m.header("CSeq")[0].endswith("INVITE"))
                towards_carrier, towards_pbx = sdp_media(invite), sdp_media(answer)
                assert private[0] not in invite.body and towards_pbx != carrier_media.getsockname()
                # PBX -> relay -> carrier (and the relay latches to the PBX's real address).
                up = exchange(pbx_media, towards_pbx, carrier_media, b"from-pbx", ssrc=0x1111)
                assert up, explain("no RTP from the PBX reached the carrier", sbc)
                assert up[0][1] == towards_carrier, "the relay must send from its carrier-side port"
                # Carrier -> relay -> PBX at its latched (real) address, not 10.99.0.1.
                down = exchange(carrier_media, towards_carrier, pbx_media, b"from-carrier", ssrc=0x2222)
                assert down, explain("no RTP from the carrier reached the latched PBX", sbc)
                assert down[0][1] == towards_pbx
            finally:
                result = call.wait(timeout=15)
            assert result.ok, explain(result, sbc)
            sbc.wait_for("relay ports freed", lambda: all(
                row["channels"] == 0 for row in sbc.trunks().values()), timeout=5)


# ----------------------------------------------------------------------------- (g) no leaks


@pytest.mark.timeout(60)
def test_failed_calls_leak_no_channels(require_peer: Callable[[str], str], tmp_path: Path) -> None:
    """A storm of calls that fail in different ways (the carrier is busy, the caller cancels
    while it rings, the carrier's port is closed) leaves every channel free: with a cap of
    two channels, two calls still get through afterwards."""
    require_peer("sipp")
    with carriers(tmp_path, "busy", "ringing", "healthy") as (busy, ringing, healthy):
        ringing.port = healthy.port = busy.port
        trunks = [carrier_trunk("carrier-a", busy.port, max_channels=2), pbx_trunk(max_channels=2)]
        with running_sbc(tmp_path, trunks, [{"prefix": "+49", "carrier": "carrier-a"}]) as sbc:

            def all_free() -> bool:
                return all(row["channels"] == 0 for row in sbc.trunks().values())

            busy.start(tmp_path, "uas_busy")
            storm = pbx_call(sbc, tmp_path / "busy", calls=12, rate=40)
            assert storm.ok and statuses(storm) == [486] * 12, explain(storm, sbc)
            busy.stop()
            sbc.wait_for("channels free after 486s", all_free, timeout=5)

            ringing.start(tmp_path, "uas_noanswer")
            cancelled = harness.run_sipp("uac_cancel", tmp_path / "cancel", target=sbc.address,
                                         service=DIALLED, caller=PBX_CALLER, calls=4, rate=2,
                                         timeout_s=12)
            # (One at a time: each rings 300 ms and holds a channel meanwhile.)
            assert cancelled.ok, explain(cancelled, sbc)
            assert statuses(cancelled) == [487] * 4, explain(cancelled, sbc)
            ringing.stop()
            sbc.wait_for("channels free after CANCELs", all_free, timeout=5)

            # Nobody on the carrier's port: ICMP port unreachable, a transport error per call.
            dead = pbx_call(sbc, tmp_path / "dead", calls=6, rate=20)
            assert dead.ok, explain(dead, sbc)
            got = statuses(dead)
            assert len(got) == 6 and all(status >= 400 for status in got), explain(got, dead, sbc)
            sbc.wait_for("channels free after transport errors", all_free, timeout=5)

            healthy.start(tmp_path)
            after = pbx_call(sbc, tmp_path / "after", calls=2, rate=10, hold_ms=800)
            assert after.ok and statuses(after) == [200, 200], explain(after, sbc)
            rows = sbc.trunks()
            assert rows["pbx"]["finals"].get("486") == 12, rows
            sbc.wait_for("channels free at the end", all_free, timeout=5)


# ----------------------------------------------------------------------------- (h) digest PBX


@pytest.mark.timeout(30)
def test_pbx_identified_by_digest_user(require_peer: Callable[[str], str], tmp_path: Path) -> None:
    """A customer trunk without an ACL, known by its digest user: the first INVITE is
    challenged (407), the authenticated one goes through as that trunk's call."""
    require_peer("sipp")
    user, password = "pbx-7", "pbx-pass-7"
    with carriers(tmp_path, "carrier-a") as (a,):
        customer = {"name": "pbx-digest", "kind": "customer", "username": user, "password": password,
                    "numbers": {"region": "DE"}}
        trunks = [carrier_trunk("carrier-a", a.port), customer]
        with running_sbc(tmp_path, trunks, [{"prefix": "+49", "carrier": "carrier-a"}]) as sbc:
            a.start(tmp_path)
            pbx = pbx_call(sbc, tmp_path / "pbx", auth=(user, password))
            assert pbx.ok and 200 in statuses(pbx), explain(pbx, sbc)
            assert any(m.first_line.startswith("SIP/2.0 407") for m in received(pbx))
            rows = sbc.trunks()
            assert rows["pbx-digest"]["finals"].get("200") == 1, rows
            (invite,) = a.invites()
            assert "Proxy-Authorization" not in invite.text and user not in invite.text
