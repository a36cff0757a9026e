"""The SBC in ``sipline serve`` with ``workers = 2``: SIPp PBX -> SBC -> SIPp carrier.

Every message arriving on the shared port is handled by the worker its Call-ID hashes to,
and the SBC's outbound leg has a Call-ID of its own.  Responses to the SBC's requests come
back to the worker's own port, but a request the carrier sends in the dialog (its BYE, to
the SBC's Contact) reaches the worker that made the leg only because that worker picked
an outbound Call-ID it owns (sipline.roles.b2bua.owned_ids).  So each batch of calls,
spread over both workers, must be answered and hung up cleanly -- by the PBX, and by the
carrier -- and leave no channel held.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from test_sbc_sipp import Sbc, carrier_trunk, carriers, explain, pbx_call, pbx_trunk, sbc_config, statuses  # noqa: E402

from sipline.runtime.dispatch import call_id_owner  # noqa: E402

pytestmark = pytest.mark.interop

CALLS = 50


@pytest.mark.timeout(60)
@pytest.mark.parametrize("hangs_up", ["pbx", "carrier"])
def test_calls_through_the_sbc_with_two_workers(require_peer: Callable[[str], str], tmp_path: Path,
                                               hangs_up: str) -> None:
    require_peer("sipp")
    carrier_scenario, pbx_scenario = {"pbx": ("sbc_carrier", "sbc_pbx_call"),
                                      "carrier": ("sbc_carrier_hangup", "sbc_pbx_hungup")}[hangs_up]
    with carriers(tmp_path, "carrier-a") as (a,):
        trunks = [carrier_trunk("carrier-a", a.port), pbx_trunk()]
        config = "workers = 2\n" + sbc_config(trunks, [{"prefix": "+49", "carrier": "carrier-a"}])
        with harness.running(harness.start_sipline(tmp_path / "sipline", config=config)) as server:
            sbc = Sbc(server, tmp_path / "sipline" / "data")
            a.start(tmp_path, carrier_scenario)
            pbx = pbx_call(sbc, tmp_path / "pbx", calls=CALLS, rate=25, hold_ms=200, timeout_s=30,
                           scenario=pbx_scenario)
            assert pbx.ok, explain(pbx, sbc)
            assert statuses(pbx) == [200] * CALLS, explain(pbx, sbc)
            sbc.wait_for("channels free", lambda: all(row["channels"] == 0 for row in sbc.trunks().values()),
                         timeout=5)
            assert sbc.trunks()["pbx"]["finals"] == {"200": CALLS}, explain(sbc)
            a.stop()
    got = [m for m in a.messages() if not m.sent]
    invites = {m.header("Call-ID")[0] for m in got if m.first_line.startswith("INVITE ")}
    # The BYEs the carrier received, or the 200s to the BYEs it sent.
    hangups = {m.header("Call-ID")[0] for m in got
               if m.first_line.startswith("BYE ") or m.header("CSeq")[0].endswith(" BYE")}
    assert len(invites) == CALLS and hangups == invites, explain(a.result)
    # Both workers originated outbound legs (each leg's Call-ID names its maker).
    assert {call_id_owner(call_id, 2) for call_id in invites} == {0, 1}
