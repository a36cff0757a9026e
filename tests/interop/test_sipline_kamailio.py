"""Calls that cross sipline and a neighbouring Kamailio proxy, in both directions.

Kamailio runs bench/kamailio-proxy.cfg: a stateful record-routing proxy that
sends every new call to one next hop.  Each direction is one chain of two
record-routing proxies, so the caller's ACK and BYE carry two Route entries
and each proxy must pop its own and forward to the other (RFC 3261 16.4,
16.12):

- outbound: SIPp alice -> sipline (``[[proxy.static_routes]]`` sends numbers
  starting with 1 to Kamailio) -> Kamailio -> SIPp UAS;
- inbound: SIPp alice -> Kamailio (next hop: sipline) -> sipline (location
  service) -> SIPp UAS registered as bob with digest auth.

In both, sipline challenges alice's INVITE (407), which in the inbound case
travels back through Kamailio, and SIPp answers it.
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

ALICE = ("alice", "secret")
BOB = ("bob", "hunter2")
CALLS = 2


def _start_kamailio(binary: str, workdir: Path, next_hop: str) -> harness.Server:
    return harness.start_kamailio(
        workdir, harness.BENCH / "kamailio-proxy.cfg", binary=binary,
        defines={"NEXT_HOP": f'"{next_hop}"', "LOG_LEVEL": "1", "WORKERS": "1"})


def _explain(result: harness.SippResult, *servers: harness.Server) -> str:
    logs = [f"--- {server.kind}\n{server.peer.log_tail()}" for server in servers]
    return "\n".join([result.describe(), *logs])


def _route_set(result: harness.SippResult) -> list[str]:
    """The Route values of alice's in-dialog requests (first BYE's, in order)."""
    assert result.messages_log is not None
    text = result.messages_log.read_text(errors="replace")
    bye = text[text.index("\nBYE "):]
    bye = bye[:bye.index("\n\n")]
    # SIPp writes the route set as one comma-separated Route header.
    return [value.strip() for line in bye.splitlines() if line.startswith("Route:")
            for value in line.split(":", 1)[1].split(",")]


@pytest.mark.timeout(40)
def test_call_from_sipline_to_kamailio_by_static_route(require_peer: Callable[[str], str],
                                                       tmp_path: Path) -> None:
    require_peer("sipp")
    kamailio_binary = require_peer("kamailio")
    started = time.monotonic()
    uas_port = harness.free_port()
    kamailio = _start_kamailio(kamailio_binary, tmp_path / "kamailio",
                               f"sip:{harness.LOOPBACK}:{uas_port}")
    with harness.running(kamailio):
        config = harness.sipline_config(
            drain_timeout=1.0,
            static_routes=[("prefix:1", f"sip:{kamailio.address};transport=udp")])
        sipline = harness.start_sipline(tmp_path / "sipline", config=config, users=[ALICE])
        with harness.running(sipline):
            callee = harness.start_uas("uas_answer", tmp_path / "uas", port=uas_port,
                                       user="1000", calls=CALLS)
            try:
                result = harness.run_sipp("uac_call", tmp_path / "uac", target=sipline.address,
                                          service="1000", calls=CALLS, rate=10,
                                          duration_ms=100, auth=ALICE)
            finally:
                callee_result = callee.wait(timeout=10)
            assert result.ok, _explain(result, sipline, kamailio)
            assert callee_result.ok, _explain(callee_result, sipline, kamailio)
            sipline.peer.check_alive()
    assert result.stats is not None and result.stats.successful == CALLS
    routes = _route_set(result)
    assert len(routes) >= 2 and sipline.address in routes[0], routes
    assert any(kamailio.address in route for route in routes[1:]), routes
    assert time.monotonic() - started < 20


@pytest.mark.timeout(40)
def test_call_from_kamailio_to_registered_user_on_sipline(require_peer: Callable[[str], str],
                                                          tmp_path: Path) -> None:
    require_peer("sipp")
    kamailio_binary = require_peer("kamailio")
    started = time.monotonic()
    sipline = harness.start_sipline(tmp_path / "sipline", users=[ALICE, BOB],
                                    config=harness.sipline_config(drain_timeout=1.0))
    with harness.running(sipline):
        kamailio = _start_kamailio(kamailio_binary, tmp_path / "kamailio",
                                   f"sip:{sipline.address}")
        with harness.running(kamailio):
            uas_port = harness.free_port()
            registered = harness.sipp_register(sipline, [BOB], tmp_path / "register",
                                               port=uas_port)
            assert registered.ok, _explain(registered, sipline)
            callee = harness.start_uas("uas_answer", tmp_path / "uas", port=uas_port,
                                       calls=CALLS)
            try:
                result = harness.run_sipp("uac_call", tmp_path / "uac",
                                          target=kamailio.address, service="bob",
                                          calls=CALLS, rate=10, duration_ms=100, auth=ALICE)
            finally:
                callee_result = callee.wait(timeout=10)
            assert result.ok, _explain(result, kamailio, sipline)
            assert callee_result.ok, _explain(callee_result, kamailio, sipline)
            sipline.peer.check_alive()
    assert result.stats is not None and result.stats.successful == CALLS
    assert result.messages_log is not None
    assert "SIP/2.0 407 Proxy Authentication Required" in result.messages_log.read_text()
    routes = _route_set(result)
    assert len(routes) >= 2 and kamailio.address in routes[0], routes
    assert any(sipline.address in route for route in routes[1:]), routes
    assert time.monotonic() - started < 20
