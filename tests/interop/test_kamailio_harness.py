"""The interop harness proven against Kamailio, which plays sipline's server roles.

If these pass, a failure of the same scenarios against ``sipline serve`` is
sipline's, not the harness's: the SIPp scenarios, the SIPp UAS registration
step, the Kamailio launcher (bench/*.cfg, no root, private runtime dir) and
the headless baresip driver all work against a reference implementation.
Each test stays well under 20 s.
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

USERS = [("alice", "secret"), ("bob", "hunter2"), ("carol", "s3cret")]
CALLS = 2


@pytest.fixture(scope="module")
def kamailio(require_peer: Callable[[str], str]) -> str:
    require_peer("sipp")
    return require_peer("kamailio")


@pytest.fixture(scope="module")
def proxy(kamailio: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[harness.Server, int]]:
    """bench/kamailio-proxy.cfg forwarding every new call to one SIPp UAS port."""
    uas_port = harness.free_port()
    workdir = tmp_path_factory.mktemp("kamailio-proxy")
    server = harness.start_kamailio(
        workdir, harness.BENCH / "kamailio-proxy.cfg", binary=kamailio,
        defines={"NEXT_HOP": f'"sip:{harness.LOOPBACK}:{uas_port}"', "LOG_LEVEL": "1",
                 "WORKERS": "1"})
    with harness.running(server):
        yield server, uas_port


@pytest.fixture(scope="module")
def registrar(kamailio: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Server]:
    """bench/kamailio-registrar.cfg with digest auth for REGISTER and INVITE."""
    workdir = tmp_path_factory.mktemp("kamailio-registrar")
    url = harness.write_kamailio_dbtext(workdir / "db", USERS)
    server = harness.start_kamailio(
        workdir, harness.BENCH / "kamailio-registrar.cfg", binary=kamailio,
        defines={"WITH_INVITE_AUTH": None, "DBURL": f'"{url}"', "LOG_LEVEL": "1",
                 "WORKERS": "1", "INV_TIMEOUT": "2000"})
    with harness.running(server):
        yield server


@pytest.mark.timeout(30)
def test_call_through_record_routing_proxy(proxy: tuple[harness.Server, int],
                                           tmp_path: Path) -> None:
    server, uas_port = proxy
    started = time.monotonic()
    uas = harness.start_uas("uas_answer", tmp_path / "uas", port=uas_port, calls=CALLS)
    result = harness.run_sipp("uac_call", tmp_path / "uac", target=server.address,
                              service="bob", calls=CALLS, rate=10, duration_ms=100)
    uas_result = uas.wait(timeout=10)
    assert result.ok, result.describe() + "\n--- kamailio\n" + server.peer.log_tail()
    assert uas_result.ok, uas_result.describe()
    assert result.stats is not None and result.stats.successful == CALLS
    # ACK and BYE went through the proxy with the recorded route set.
    assert result.messages_log is not None
    sent = result.messages_log.read_text()
    assert f"Route: <sip:{server.address};lr>" in sent
    assert time.monotonic() - started < 20


@pytest.mark.timeout(30)
def test_cpu_seconds_counts_kamailio_workers(proxy: tuple[harness.Server, int]) -> None:
    server, _ = proxy
    assert len(harness.process_tree(server.pid)) > 1
    assert harness.cpu_seconds(server.pid) >= 0.0


PAIRS = [
    ("uac_call", "uas_answer"),
    ("uac_reinvite", "uas_answer"),
    ("uac_call_busy", "uas_busy"),
    ("uac_cancel", "uas_noanswer"),
    ("uac_call_noanswer", "uas_noanswer"),
]


@pytest.mark.timeout(40)
@pytest.mark.parametrize(("uac", "uas"), PAIRS, ids=[pair[0] for pair in PAIRS])
def test_registered_sipp_uas_scenarios(registrar: harness.Server, tmp_path: Path,
                                       uac: str, uas: str) -> None:
    """SIPp bob registers its own address (digest), then SIPp alice calls it (407 answered)."""
    started = time.monotonic()
    uas_port = harness.free_port()
    registered = harness.sipp_register(registrar, [USERS[1]], tmp_path / "register",
                                       port=uas_port)
    assert registered.ok, registered.describe()
    callee = harness.start_uas(uas, tmp_path / "uas", port=uas_port, calls=CALLS)
    result = harness.run_sipp(uac, tmp_path / "uac", target=registrar.address,
                              service="bob", calls=CALLS, rate=10, duration_ms=100,
                              auth=USERS[0])
    callee_result = callee.wait(timeout=10)
    assert result.ok, result.describe() + "\n--- kamailio\n" + registrar.peer.log_tail()
    assert callee_result.ok, callee_result.describe()
    assert time.monotonic() - started < 20


@pytest.mark.timeout(30)
def test_register_many_users(registrar: harness.Server, tmp_path: Path) -> None:
    result = harness.sipp_register(registrar, USERS, tmp_path, rate=50)
    assert result.ok, result.describe()
    assert result.stats is not None and result.stats.successful == len(USERS)


@pytest.mark.timeout(30)
def test_register_wrong_password_fails(registrar: harness.Server, tmp_path: Path) -> None:
    result = harness.sipp_register(registrar, [("alice", "wrong")], tmp_path, timeout_s=4)
    assert not result.ok


def _baresip_call(binary: str, server: harness.Server, workdir: Path,
                  passwords: dict[str, str | None]) -> None:
    bob = harness.Baresip.start(workdir / "bob", user="bob", password=passwords["bob"],
                                server=server, binary=binary)
    try:
        alice = harness.Baresip.start(workdir / "alice", user="alice",
                                      password=passwords["alice"], server=server,
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


@pytest.mark.timeout(40)
def test_baresip_calls_baresip(kamailio: str, require_peer: Callable[[str], str],
                               tmp_path: Path) -> None:
    """Two headless baresip register (no auth), one calls the other, who auto-answers."""
    baresip = require_peer("baresip")
    server = harness.start_kamailio(
        tmp_path / "kamailio", harness.BENCH / "kamailio-registrar.cfg", binary=kamailio,
        defines={"LOG_LEVEL": "1", "WORKERS": "1"})
    with harness.running(server):
        _baresip_call(baresip, server, tmp_path, {"alice": None, "bob": None})


@pytest.mark.timeout(40)
def test_baresip_calls_baresip_with_digest(registrar: harness.Server,
                                           require_peer: Callable[[str], str],
                                           tmp_path: Path) -> None:
    """The same with digest auth on REGISTER (401) and on the INVITE (407)."""
    baresip = require_peer("baresip")
    _baresip_call(baresip, registrar, tmp_path, dict(USERS))  # type: ignore[arg-type]
