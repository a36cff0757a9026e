"""The SBC's part of the configuration: [[trunks]], [[dids]], [[routes]], route_table, [sbc].

Parsing is the trunk and routing modules' job; what is tested here is that the loader
hands them the tables, reports their errors as ConfigError naming the key, checks what
crosses sections (a route naming an unknown carrier) and prints it all back.
"""

from __future__ import annotations

import dataclasses

import tomllib
from pathlib import Path

import pytest

from sipline.ops.config import ConfigError, build_routes, build_trunks, dump_toml, load_config

TRUNKS = """
[[trunks]]
name = "carrier-a"
hosts = ["udp:198.51.100.1:5060"]
username = "acct"
password = "pw"
register = true
codecs = ["PCMA"]
max_channels = 2
caller_id = {mode = "fixed", number = "+4930999"}
headers = {add = {X-Carrier = "a b"}}

[[trunks]]
name = "pbx1"
kind = "customer"
acl = ["10.0.0.0/24"]
media_bypass = true

[[dids]]
number = "+4930123"
target = "trunk:pbx1"

[[routes]]
prefix = "+49"
carrier = "carrier-a"
"""


def write(tmp_path: Path, text: str, name: str = "sipline.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_trunks_dids_routes_load(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TRUNKS))
    trunks = build_trunks(config)
    carrier = trunks.carrier("carrier-a")
    assert carrier is not None and carrier.max_channels == 2 and carrier.auth is not None
    assert carrier.auth.register and carrier.codecs == ("PCMA",)
    customer = trunks.customer("pbx1")
    assert customer is not None and customer.media_bypass
    assert trunks.did_for("+4930123") is not None
    assert build_routes(config).carriers_for("+4930555") == ["carrier-a"]
    assert config.sbc.media == "relay"


def test_no_trunks_by_default() -> None:
    config = load_config()
    assert config.trunks == () and not build_trunks(config).carriers
    assert len(build_routes(config)) == 0


def test_route_table_csv_is_added(tmp_path: Path) -> None:
    csv = write(tmp_path, "prefix,carrier,priority,description\n+1,carrier-a,1,US\n", "rates.csv")
    config = load_config(write(tmp_path, f'route_table = "{csv}"\n' + TRUNKS))
    routes = build_routes(config)
    assert len(routes) == 2 and routes.carriers_for("+1555") == ["carrier-a"]


@pytest.mark.parametrize(("text", "key", "problem"), [
    ('[[trunks]]\nname = "c"\nhosts = []\n', "trunks[0]", "at least one host"),
    ('[[trunks]]\nname = "c"\nhosts = ["udp:h:99999"]\n', "trunks[0]", "out of range"),
    ('[[trunks]]\nname = "c"\nhosts = ["h"]\nmax_channel = 3\n', "trunks[0].max_channel",
     "did you mean max_channels"),
    ('[[trunks]]\nname = "c"\nhosts = ["h"]\n[[trunks]]\nname = "c"\nhosts = ["h"]\n', "trunks",
     "duplicate trunk names"),
    ('[[trunks]]\nname = "p"\nkind = "customer"\n', "trunks[0]", "acl or a digest user"),
    ('[[trunks]]\nname = "c"\nkind = "pbx"\nhosts = ["h"]\n', "trunks[0]", "kind must be"),
    ('[[dids]]\nnumber = "+49"\ntarget = "trunk:nobody"\n', "dids", "unknown customer trunk"),
    ('[[dids]]\nnumber = "030"\ntarget = "user:a"\n', "dids[0]", "must be E.164"),
    ('[[trunks]]\nname = "c"\nhosts = ["h"]\n[[routes]]\nprefix = "+49"\ncarrier = "d"\n', "routes[0]",
     "'d' is not a carrier trunk"),
    ('[[routes]]\nprefix = "49x"\ncarrier = "c"\n', "routes[0]", "digits"),
    ('[[routes]]\nprefix = "+49"\n', "routes[0]", "missing 'carrier'"),
    ('route_table = "/nonexistent.csv"\n', "route_table", "file not found"),
    ("trunks = 5\n", "trunks", "expected a list of tables"),
    ("trunks = [5]\n", "trunks", "expected a table"),
    ("[sbc]\nmedia = \"rtp\"\n", "[sbc] media", "expected one of relay, rtpengine, off"),
    ("[sbc]\nrtp_port_min = 20000\nrtp_port_max = 20001\n", "[sbc] rtp_port_max", "at least"),
    ("[sbc]\nrtpengine = \"[::1\"\n", "[sbc] rtpengine", "unclosed"),
    ("[sbc]\nlisten = [\"ws:127.0.0.1:80\"]\n", "[sbc] listen", "udp, tcp or tls"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == key, str(info.value)
    assert problem in info.value.problem


def test_bad_csv_names_the_file(tmp_path: Path) -> None:
    csv = write(tmp_path, "prefix,carrier\n+1,\n", "rates.csv")
    with pytest.raises(ConfigError, match="rates.csv: route CSV line 2") as info:
        load_config(write(tmp_path, f'route_table = "{csv}"\n'))
    assert info.value.key == "route_table"


def test_tables_are_file_only() -> None:
    with pytest.raises(ConfigError, match=r"\[\[trunks\]\] tables can only be set in the config file"):
        load_config(None, {"SIPLINE_TRUNKS": "x"})
    assert load_config(None, {"SIPLINE_SBC_MEDIA": "off"}).sbc.media == "off"


def test_dump_round_trips_tables(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TRUNKS))
    text = dump_toml(config, comments=True)
    assert tomllib.loads(text)["trunks"][0]["headers"] == {"add": {"X-Carrier": "a b"}}
    # Everything but the credentials comes back; passwords are never printed.
    assert '# password = (set; not shown)' in text
    without_passwords = dataclasses.replace(config, trunks=tuple(
        {k: v for k, v in trunk.items() if k != "password"} for trunk in config.trunks))
    assert load_config(write(tmp_path, text, "again.toml")) == without_passwords
