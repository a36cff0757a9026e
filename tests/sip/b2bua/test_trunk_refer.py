"""The per-trunk REFER policy key."""

from __future__ import annotations

import pytest

from sipline.sip.b2bua.trunk import TrunkConfigError, TrunkSet


def test_refer_policy_parses_defaults_and_refuses_typos() -> None:
    trunks = TrunkSet.from_toml([
        {"name": "c", "kind": "carrier", "hosts": ["198.51.100.1"], "refer": "pass"},
        {"name": "p", "kind": "customer", "acl": ["192.0.2.0/24"]},
    ])
    assert trunks.carriers[0].refer == "pass" and trunks.customers[0].refer == "terminate"
    with pytest.raises(TrunkConfigError) as info:
        TrunkSet.from_toml([{"name": "p", "kind": "customer", "acl": ["192.0.2.0/24"], "refer": "forward"}])
    assert "refer" in str(info.value) and "terminate, pass or reject" in str(info.value)
