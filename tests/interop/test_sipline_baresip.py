"""Two headless baresip phones call each other through a real ``sipline serve``.

baresip is a complete user agent with its own digest, dialog and SDP code,
so this is the closest the suite gets to real phones: alice and bob register
with digest auth (401, then 200), alice dials bob's address-of-record, the
proxy challenges her INVITE (407), looks bob up in the location service and
forwards the call; bob answers automatically, both sides report the call as
established, then alice hangs up and both report it closed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = pytest.mark.interop

USERS = {"alice": "secret", "bob": "hunter2"}


@pytest.mark.timeout(40)
def test_baresip_alice_calls_bob_with_digest(require_peer: Callable[[str], str],
                                             tmp_path: Path) -> None:
    binary = require_peer("baresip")
    started = time.monotonic()
    server = harness.start_sipline(tmp_path / "sipline", users=USERS.items(),
                                   config=harness.sipline_config(drain_timeout=1.0))
    with harness.running(server):
        bob = harness.Baresip.start(tmp_path / "bob", user="bob", password=USERS["bob"],
                                    server=server, binary=binary)
        try:
            alice = harness.Baresip.start(tmp_path / "alice", user="alice",
                                          password=USERS["alice"], server=server,
                                          binary=binary, answer=False)
            try:
                bob.wait_registered()
                alice.wait_registered()
                alice.dial(f"sip:bob@{server.domain}")
                # With answermode=auto baresip 1.0 reports no CALL_INCOMING.
                alice.wait_event("CALL_ESTABLISHED")
                bob.wait_event("CALL_ESTABLISHED")
                time.sleep(0.5)
                alice.hangup()
                bob.wait_event("CALL_CLOSED")
                alice.wait_event("CALL_CLOSED")
            finally:
                alice.stop()
        finally:
            bob.stop()
        server.peer.check_alive()
        log = server.peer.log_tail(200000)
    # Both registrations went through a challenge, and so did alice's INVITE.
    assert "REGISTER not authenticated" in log, log[-3000:]
    assert time.monotonic() - started < 20
