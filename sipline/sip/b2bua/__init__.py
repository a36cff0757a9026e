"""The pure half of the B2BUA/SBC: trunks, numbers, routing, topology hiding and health.

Nothing here sends or waits: :mod:`sipline.roles.b2bua` drives these rules on the runtime.
"""

from __future__ import annotations

from .health import HealthChange, HealthMonitor, HealthSettings, HostState, probe_succeeded
from .numbers import E164Parser, NumberFormat, NumberPlan, dial_digits, from_e164, to_e164, translate
from .routing import FailoverAction, Route, RouteTable, failover_action, final_reason, first_pick
from .topology import HeaderPolicy, caller_identity, limit_rejection, relay_headers, scrub_sdp
from .trunk import CallerIdPolicy, CarrierHost, CarrierTrunk, CustomerTrunk, Did, DigestAccount, TrunkConfigError, TrunkSet

__all__ = [
    "CallerIdPolicy",
    "CarrierHost",
    "CarrierTrunk",
    "CustomerTrunk",
    "Did",
    "DigestAccount",
    "E164Parser",
    "FailoverAction",
    "HeaderPolicy",
    "HealthChange",
    "HealthMonitor",
    "HealthSettings",
    "HostState",
    "NumberFormat",
    "NumberPlan",
    "Route",
    "RouteTable",
    "TrunkConfigError",
    "TrunkSet",
    "caller_identity",
    "dial_digits",
    "failover_action",
    "final_reason",
    "first_pick",
    "from_e164",
    "limit_rejection",
    "probe_succeeded",
    "relay_headers",
    "scrub_sdp",
    "to_e164",
    "translate",
]
