"""SIPp against a real ``sipline serve``: registrar, digest auth and the proxy.

One server runs for the module, with alice and bob as subscribers, MD5 digest
only (SIPp 3.6 answers no other algorithm) and a 3 s timer C so that an
unanswered call ends quickly.  Every call test registers a SIPp UAS as bob
(REGISTER, 401, REGISTER with credentials, 200) on a fresh port, lets SIPp
alice call bob through the proxy (her INVITE is challenged with 407) and
removes bob's binding again afterwards: a binding left behind would make the
proxy fork to a port nobody listens on, and every non-2xx outcome would then
wait for that dead branch's timer C (RFC 3261 16.7 keeps the best response
until all branches are done).

SIPp's exit status is the verdict of each scenario: it fails on any
unexpected message, so the scenario files themselves say which responses a
case must see (486, 487, 408 or 480 ...).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = pytest.mark.interop

ALICE = ("alice", "secret")
BOB = ("bob", "hunter2")
TIMER_C = 3.0
TRANSPORTS = {"udp": "u1", "tcp": "t1"}


@pytest.fixture(scope="module")
def server(require_peer: Callable[[str], str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    require_peer("sipp")
    config = harness.sipline_config(drain_timeout=1.0,
                                    extra=f"[timers]\ntimer_c = {TIMER_C}\n")
    started = harness.start_sipline(tmp_path_factory.mktemp("sipline"), config=config,
                                    users=[ALICE, BOB])
    with harness.running(started):
        yield started


def _explain(result: harness.SippResult, server: harness.Server) -> str:
    return result.describe() + "\n--- sipline\n" + server.peer.log_tail()


class Callee:
    """Bob's SIPp UAS port, registered with digest auth and removed on exit."""

    def __init__(self, server: harness.Server, workdir: Path, transport: str) -> None:
        self.server = server
        self.workdir = workdir
        self.transport = transport
        self.port = harness.free_port()

    def __enter__(self) -> Callee:
        result = harness.sipp_register(self.server, [BOB], self.workdir / "register",
                                       port=self.port, transport=self.transport)
        assert result.ok, _explain(result, self.server)
        return self

    def __exit__(self, *exc: object) -> None:
        # Expires 0 for the same Contact removes exactly this binding (RFC 3261 10.2.2).
        harness.sipp_register(self.server, [BOB], self.workdir / "unregister",
                              port=self.port, transport=self.transport, expires=0)


def _call(server: harness.Server, workdir: Path, uac: str, uas: str,
          transport: str = "u1", calls: int = 1) -> tuple[harness.SippResult, harness.SippResult]:
    """Bob answers with ``uas``, alice calls with ``uac``; both verdicts."""
    with Callee(server, workdir, transport) as callee:
        bob = harness.start_uas(uas, workdir / "uas", port=callee.port, calls=calls,
                                transport=transport)
        try:
            alice = harness.run_sipp(uac, workdir / "uac", target=server.address,
                                     service="bob", calls=calls, rate=10, duration_ms=100,
                                     auth=ALICE, transport=transport)
        finally:
            bob_result = bob.wait(timeout=10)
    assert server.peer.alive(), server.peer.log_tail()
    return alice, bob_result


def _sent_and_received(result: harness.SippResult) -> str:
    assert result.messages_log is not None, result.describe()
    return result.messages_log.read_text(errors="replace")


@pytest.mark.timeout(30)
def test_register_with_digest(server: harness.Server, tmp_path: Path) -> None:
    result = harness.sipp_register(server, [ALICE], tmp_path)
    assert result.ok, _explain(result, server)
    trace = _sent_and_received(result)
    challenge = trace.index("SIP/2.0 401 Unauthorized")
    assert 'algorithm=MD5' in trace[challenge:]
    assert "Authorization: Digest" in trace[challenge:]
    assert "SIP/2.0 200 OK" in trace[challenge:]
    # Remove the binding again: the other tests only look at bob.
    harness.sipp_register(server, [ALICE], tmp_path / "unregister", expires=0)


@pytest.mark.timeout(30)
def test_register_with_wrong_password_is_refused(server: harness.Server, tmp_path: Path) -> None:
    result = harness.sipp_register(server, [("alice", "wrong")], tmp_path, timeout_s=3)
    assert not result.ok
    # The answer to the wrong credentials is a fresh challenge, not a 200.
    trace = _sent_and_received(result)
    assert trace.count("SIP/2.0 401 Unauthorized") >= 2
    assert "SIP/2.0 200 OK" not in trace


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", list(TRANSPORTS), ids=list(TRANSPORTS))
def test_answered_call_with_bye(server: harness.Server, tmp_path: Path, transport: str) -> None:
    started = time.monotonic()
    alice, bob = _call(server, tmp_path, "uac_call", "uas_answer", TRANSPORTS[transport],
                       calls=2)
    assert alice.ok, _explain(alice, server)
    assert bob.ok, _explain(bob, server)
    assert alice.stats is not None and alice.stats.successful == 2
    trace = _sent_and_received(alice)
    assert "SIP/2.0 407 Proxy Authentication Required" in trace
    # ACK and BYE follow the route set the proxy recorded.
    assert f"Route: <sip:{server.address}" in trace, trace[-3000:]
    assert f"{transport.upper()} message sent" in trace
    assert time.monotonic() - started < 15


@pytest.mark.timeout(30)
def test_busy_callee_gets_486_at_once(server: harness.Server, tmp_path: Path) -> None:
    started = time.monotonic()
    alice, bob = _call(server, tmp_path, "uac_call_busy", "uas_busy")
    assert alice.ok, _explain(alice, server)
    assert bob.ok, _explain(bob, server)
    assert "SIP/2.0 486 Busy Here" in _sent_and_received(alice)
    # With a single binding nothing holds the 486 back until timer C.
    assert time.monotonic() - started < TIMER_C


@pytest.mark.timeout(30)
def test_cancel_while_ringing_gets_487(server: harness.Server, tmp_path: Path) -> None:
    started = time.monotonic()
    alice, bob = _call(server, tmp_path, "uac_cancel", "uas_noanswer")
    assert alice.ok, _explain(alice, server)
    assert bob.ok, _explain(bob, server)
    assert "SIP/2.0 487 Request Terminated" in _sent_and_received(alice)
    # The CANCEL reached bob (the proxy sent its own, hop by hop).
    assert "CANCEL sip:bob@" in _sent_and_received(bob)
    assert time.monotonic() - started < TIMER_C


@pytest.mark.timeout(30)
def test_unanswered_call_ends_at_timer_c(server: harness.Server, tmp_path: Path) -> None:
    started = time.monotonic()
    alice, bob = _call(server, tmp_path, "uac_call_noanswer", "uas_noanswer")
    elapsed = time.monotonic() - started
    assert alice.ok, _explain(alice, server)
    assert bob.ok, _explain(bob, server)
    trace = _sent_and_received(alice)
    assert "SIP/2.0 408 " in trace or "SIP/2.0 480 " in trace
    # Timer C fired: the proxy cancelled bob's ringing branch itself.
    assert "CANCEL sip:bob@" in _sent_and_received(bob)
    assert TIMER_C <= elapsed < TIMER_C + 8


@pytest.mark.timeout(30)
def test_reinvite_in_established_call(server: harness.Server, tmp_path: Path) -> None:
    alice, bob = _call(server, tmp_path, "uac_reinvite", "uas_answer")
    assert alice.ok, _explain(alice, server)
    assert bob.ok, _explain(bob, server)
    received = _sent_and_received(bob)
    # Bob saw the initial INVITE and the re-INVITE (CSeq 5), both via the proxy.
    assert "CSeq: 2 INVITE" in received
    assert "CSeq: 5 INVITE" in received
    assert "BYE sip:bob@" in received
