"""Trunk declarations: parsing from TOML tables, validation and the SBC's lookups."""

from __future__ import annotations

import ipaddress
import tomllib

import pytest

from sipline.sip.b2bua.numbers import NumberFormat, NumberPlan
from sipline.sip.b2bua.topology import HeaderPolicy
from sipline.sip.b2bua.trunk import (
    CallerIdPolicy,
    CarrierHost,
    CarrierTrunk,
    CustomerTrunk,
    Did,
    TrunkConfigError,
    TrunkSet,
    help_text,
)

CONFIG = """
[[trunks]]
name = "carrier-a"
kind = "carrier"
hosts = ["udp:198.51.100.1:5060", "tcp:198.51.100.2", "tls:[2001:db8::1]"]
username = "acct1"
password = "secret"
register = true
max_channels = 30
max_cps = 5
codecs = ["PCMU", "PCMA"]
caller_id = {mode = "fixed", number = "+4930999", privacy = "none"}
numbers = {region = "DE", country_code = "49"}
format = {form = "e164-noplus", add_prefix = "1234#"}
headers = {strip = ["Subject"], pass = ["X-Account"], add = {X-Carrier = "a"}}

[[trunks]]
name = "pbx1"
kind = "customer"
acl = ["10.0.0.0/24", "10.0.0.7"]
max_channels = 2
allowed_destinations = ["+49", "+1 800"]
contact = "sip:pbx1.example.net"

[[trunks]]
name = "dialer"
kind = "customer"
username = "dialer"
password = "pw"

[[dids]]
number = "+49 30 123"
target = "trunk:pbx1"

[[dids]]
number = "+4930555*"
target = "user:alice"
"""


def test_parse_full_config() -> None:
    doc = tomllib.loads(CONFIG)
    trunks = TrunkSet.from_toml(doc["trunks"], doc["dids"])
    a = trunks.carrier("carrier-a")
    assert a is not None
    assert a.hosts == (CarrierHost("198.51.100.1", 5060, "udp"), CarrierHost("198.51.100.2", 5060, "tcp"),
                       CarrierHost("2001:db8::1", 5061, "tls"))
    assert str(a.hosts[2]) == "tls:[2001:db8::1]:5061"
    assert a.auth is not None and a.auth.register and "secret" not in repr(a.auth)
    assert a.caller_id == CallerIdPolicy(mode="fixed", number="+4930999", privacy="none")
    assert a.plan == NumberPlan("DE", "49") and a.format == NumberFormat("e164-noplus", "1234#")
    assert a.headers == HeaderPolicy(strip=("Subject",), passed=("X-Account",), add=(("X-Carrier", "a"),))
    assert a.allows_codec("pcma") and not a.allows_codec("G729")
    assert a.request_domain == "198.51.100.1"
    pbx = trunks.customer("pbx1")
    assert pbx is not None and pbx.admits("10.0.0.99") and not pbx.admits("10.0.1.1") and not pbx.admits("x")
    assert pbx.may_call("+4930") and pbx.may_call("+1800123") and not pbx.may_call("+44")
    assert trunks.customer_for_user("dialer") is trunks.customer("dialer")
    assert trunks.customer_for_user("nobody") is None
    assert [t.name for t in trunks.customers_for_source("10.0.0.7")] == ["pbx1", "dialer"]
    assert [t.name for t in trunks.customers_for_source("192.0.2.1")] == ["dialer"]
    assert trunks.carrier_for_source("198.51.100.2") is a
    assert trunks.carrier_for_source("198.51.100.1", 5060) is a
    assert trunks.carrier_for_source("198.51.100.1", 5999) is None
    assert trunks.carrier_for_source("203.0.113.1") is None
    assert trunks.did_for("+4930123") == Did("+4930123", "trunk", "pbx1")
    assert trunks.did_for("+49305551") == Did("+4930555*", "user", "alice")
    assert trunks.did_for("+4940") is None
    assert "Concurrent calls" in help_text(CarrierTrunk, "max_channels")
    with pytest.raises(KeyError):
        help_text(CarrierTrunk, "nope")


def test_most_specific_acl_first() -> None:
    wide = CustomerTrunk("wide", acl=(ipaddress.ip_network("10.0.0.0/8"),))
    narrow = CustomerTrunk("narrow", acl=(ipaddress.ip_network("10.1.0.0/16"),))
    trunks = TrunkSet(customers=(wide, narrow))
    assert [t.name for t in trunks.customers_for_source("10.1.2.3")] == ["narrow", "wide"]
    assert trunks.customers_for_source("not-an-ip") == []


@pytest.mark.parametrize(
    ("trunks", "dids", "message"),
    [
        ([{"kind": "carrier", "name": "a"}], [], "at least one host"),
        ([{"kind": "carrier", "name": "a", "hosts": "x"}], [], "hosts must be a list"),
        ([{"kind": "carrier", "name": "a", "hosts": ["sctp:x"]}], [], "port"),
        ([{"kind": "carrier", "name": "a", "hosts": ["udp:x:99999"]}], [], "out of range"),
        ([{"kind": "carrier", "name": "a", "hosts": ["[::1"]}], [], "unclosed"),
        ([{"kind": "carrier", "hosts": ["x"]}], [], "missing key 'name'"),
        ([{"kind": "carrier", "name": "a b", "hosts": ["x"]}], [], "bad trunk name"),
        ([{"kind": "carrier", "name": "a", "hosts": ["x"], "max_channels": -1}], [], "negative"),
        ([{"kind": "carrier", "name": "a", "hosts": ["x"], "up_threshold": 0}], [], "thresholds"),
        ([{"kind": "carrier", "name": "a", "hosts": ["x"], "caller_id": {"mode": "fixed"}}], [], "E.164"),
        ([{"kind": "carrier", "name": "a", "hosts": ["x"], "caller_id": {"mode": "x"}}], [], "mode"),
        ([{"kind": "carrier", "name": "a", "hosts": ["x"], "caller_id": {"privacy": "x"}}], [], "privacy"),
        ([{"kind": "carrier", "name": "a", "hosts": ["x"], "caller_id": {"diversion": "x"}}], [], "diversion"),
        ([{"kind": "carrier", "name": "a", "hosts": ["x"], "headers": {"pass": ["Via"]}}], [], "cannot be passed"),
        ([{"kind": "carrier", "name": "a", "hosts": [{"host": "x", "transport": "ws"}]}], [], "transport"),
        ([{"kind": "carrier", "name": "a", "hosts": [7]}], [], "bad host"),
        ([{"kind": "customer", "name": "c"}], [], "acl or a digest user"),
        ([{"kind": "customer", "name": "c", "acl": ["10.0.0.300/8"]}], [], "does not appear"),
        ([{"kind": "peer", "name": "c"}], [], "carrier or customer"),
        ([{"kind": "customer", "name": "c", "acl": ["10.0.0.1"]}] * 2, [], "duplicate"),
        ([], [{"number": "4930", "target": "user:a"}], "E.164"),
        ([], [{"number": "+4930", "target": "alice"}], "target must be"),
        ([], [{"number": "+4930", "target": "room:a"}], "kind"),
        ([], [{"number": "+4930", "target": "trunk:"}], "no target"),
        ([], [{"number": "+4930", "target": "trunk:ghost"}], "unknown customer trunk"),
        ([], [{"target": "trunk:x"}], "missing key 'number'"),
    ],
)
def test_config_errors(trunks: list[dict[str, object]], dids: list[dict[str, object]], message: str) -> None:
    with pytest.raises(TrunkConfigError, match=message):
        TrunkSet.from_toml(trunks, dids)


def test_error_names_the_trunk() -> None:
    with pytest.raises(TrunkConfigError) as info:
        TrunkSet.from_toml([{"kind": "carrier", "name": "ok", "hosts": ["x"]},
                            {"kind": "carrier", "name": "a", "hosts": ["udp:x:0"]}])
    assert info.value.key == "trunks[1]"
    assert str(info.value).startswith("trunks[1]")


def test_host_parse_forms() -> None:
    assert CarrierHost.parse("gw.example.net") == CarrierHost("gw.example.net", 5060, "udp")
    assert CarrierHost.parse("gw:5080") == CarrierHost("gw", 5080, "udp")
    assert CarrierHost.parse("[::1]:5070") == CarrierHost("::1", 5070, "udp")
    assert CarrierHost.parse("::1") == CarrierHost("::1", 5060, "udp")
    with pytest.raises(TrunkConfigError):
        CarrierHost.parse("gw:port")
    with pytest.raises(TrunkConfigError):
        CarrierHost("")
