"""Registrations survive a restart of ``sipline serve`` on the same data directory.

Bindings live in SQLite under ``--data`` (the default storage), so stopping
the server (SIGTERM, graceful) and starting it again must lose nothing: the
operator command ``sipline registrations --data DIR``, which asks the running
server through its admin endpoint, still lists bob, and a call to bob still
reaches the SIPp UAS that registered before the restart.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

pytestmark = pytest.mark.interop

ALICE = ("alice", "secret")
BOB = ("bob", "hunter2")


def _registrations(data: Path) -> list[dict[str, object]]:
    result = harness.run_sipline_cli("registrations", "--data", str(data), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def _bob_contacts(data: Path) -> list[str]:
    return [str(row.get("contact")) for row in _registrations(data)
            if "bob@" in str(row.get("aor"))]


@pytest.mark.timeout(40)
def test_registration_survives_restart(require_peer: Callable[[str], str],
                                       tmp_path: Path) -> None:
    require_peer("sipp")
    started = time.monotonic()
    workdir = tmp_path / "sipline"
    data = workdir / "data"
    config = harness.sipline_config(drain_timeout=1.0)
    uas_port = harness.free_port()

    first = harness.start_sipline(workdir, config=config, users=[ALICE, BOB])
    with harness.running(first):
        registered = harness.sipp_register(first, [BOB], tmp_path / "register", port=uas_port)
        assert registered.ok, registered.describe() + "\n--- sipline\n" + first.peer.log_tail()
        before = _bob_contacts(data)
        assert any(f"127.0.0.1:{uas_port}" in contact for contact in before), before
        assert first.stop() == 0, first.peer.log_tail()

    # Same data directory and port: only the process is new.
    second = harness.start_sipline(workdir, config=config, port=first.port)
    with harness.running(second):
        assert second.pid != first.pid
        after = _bob_contacts(data)
        assert after == before, (before, after)

        callee = harness.start_uas("uas_answer", tmp_path / "uas", port=uas_port)
        try:
            result = harness.run_sipp("uac_call", tmp_path / "uac", target=second.address,
                                      service="bob", rate=10, duration_ms=100, auth=ALICE)
        finally:
            callee_result = callee.wait(timeout=10)
        assert result.ok, result.describe() + "\n--- sipline\n" + second.peer.log_tail()
        assert callee_result.ok, callee_result.describe()
        second.peer.check_alive()
    assert time.monotonic() - started < 20
