"""Configuration: parsing, precedence, defaults and the operator-facing error messages."""

from __future__ import annotations

import dataclasses
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sipline.ops import config as config_module
from sipline.ops.config import (
    SECTIONS,
    Config,
    ConfigError,
    ListenSpec,
    StaticRoute,
    default_domains,
    dump_toml,
    env_var_name,
    iter_keys,
    load_config,
    load_secret,
)
from sipline.sip.limits import Limits
from sipline.sip.timers import TimerConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "sipline.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sipline.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------
# Listen specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp:127.0.0.1:5060", ("udp", "127.0.0.1", 5060)),
        ("tcp:[::1]:5060", ("tcp", "::1", 5060)),
        ("tls:0.0.0.0:5061", ("tls", "0.0.0.0", 5061)),
        ("TCP:example.com:5080", ("tcp", "example.com", 5080)),
        ("tls:0.0.0.0", ("tls", "0.0.0.0", 5061)),
        ("udp:[2001:db8::5]", ("udp", "2001:db8::5", 5060)),
        ("ws:127.0.0.1:8080", ("ws", "127.0.0.1", 8080)),
        ("wss:[::]:0", ("wss", "::", 0)),
    ],
)
def test_listen_spec_parses(text: str, expected: tuple[str, str, int]) -> None:
    spec = ListenSpec.parse(text)
    assert (spec.transport, spec.host, spec.port) == expected
    assert ListenSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("127.0.0.1:5060", "unknown transport"),
        ("sctp:127.0.0.1:5060", "unknown transport 'sctp'"),
        ("udp:", "want PROTO:HOST:PORT"),
        ("udp::::1:5060", "must be in brackets"),
        ("udp:[::1:5060", "unclosed"),
        ("udp:[nothost]:5060", "not an IPv6 address"),
        ("udp:[::1]x", "unexpected"),
        ("udp:127.0.0.1:99999", "bad port"),
        ("udp:127.0.0.1:http", "bad port"),
        ("udp::5060", "missing host"),
    ],
)
def test_listen_spec_rejects(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        ListenSpec.parse(text)


def test_listen_spec_str_brackets_ipv6() -> None:
    assert str(ListenSpec("tcp", "::1", 5060)) == "tcp:[::1]:5060"
    assert ListenSpec("tls", "::", 5061).secure


# ---------------------------------------------------------------------------------------
# Defaults


def test_no_config_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          machine_domains: tuple[str, ...]) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert [str(s) for s in config.listen] == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    assert config.domains == machine_domains
    assert config.auth.realm == ""  # empty: each domain is its own realm
    assert config.data_dir == tmp_path / "sipline-data"
    assert config.storage_url == f"sqlite://{tmp_path / 'sipline-data' / 'sipline.db'}"
    assert config.auth.algorithms == ("SHA-256", "MD5")
    assert config.registrar.min_expires == 60 and config.registrar.max_expires == 7200
    assert config.logging.level == "info"
    assert config.workers == 1 and config.node_id
    assert not (tmp_path / "sipline-data").exists()  # loading never writes


def test_tls_listener_added_when_cert_set(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    config = load_config(write(tmp_path, f'[tls]\ncert = "{cert}"\n'))
    assert [str(s) for s in config.listen][-1] == "tls:0.0.0.0:5061"


def test_sip_defaults_match_core_defaults() -> None:
    config = load_config()
    assert config.limits.to_limits() == Limits()
    assert config.timers.to_timer_config() == TimerConfig()


def test_to_limits_and_timers_carry_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[limits]\nmax_vias = 10\n[timers]\nt1 = 0.1\ntimer_c = 200\n"))
    assert config.limits.to_limits().max_vias == 10
    timers = config.timers.to_timer_config()
    assert timers.t1 == 0.1 and timers.timer_b == pytest.approx(6.4) and timers.timer_c == 200.0


def test_default_domains_on_this_machine() -> None:
    # The autouse fixture replaced the module attribute; call the real function.
    domains = default_domains()
    assert "127.0.0.1" in domains
    assert socket.gethostname().lower().rstrip(".") in domains
    assert len(set(domains)) == len(domains)
    assert all(d == d.lower() and not d.startswith("[") for d in domains)


def test_domains_provider_argument_wins() -> None:
    assert load_config(domains_provider=lambda: ("a.test",)).domains == ("a.test",)


def test_default_domains_is_replaceable_for_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "default_domains", lambda: ("only.test",))
    assert load_config().domains == ("only.test",)
    assert load_config().auth.realm == ""


def test_domains_normalised() -> None:
    config = load_config(overrides={"domains": ["Example.COM", "[::1]", "example.com"]})
    assert config.domains == ("example.com", "::1")


# ---------------------------------------------------------------------------------------
# Precedence: defaults < file < environment < overrides


PRECEDENCE_CASES: list[tuple[str, str | None, dict[str, str], dict[str, Any], Any]] = [
    # (what, file text, env, overrides, expected value of the probe)
    ("default", None, {}, {}, "info"),
    ("file", '[logging]\nlevel = "debug"\n', {}, {}, "debug"),
    ("env over file", '[logging]\nlevel = "debug"\n', {"SIPLINE_LOGGING_LEVEL": "warning"}, {}, "warning"),
    ("cli over env", '[logging]\nlevel = "debug"\n', {"SIPLINE_LOGGING_LEVEL": "warning"},
     {"logging": {"level": "trace"}}, "trace"),
    ("dotted override", None, {}, {"logging.level": "ERROR"}, "error"),
]


@pytest.mark.parametrize(("what", "text", "env", "overrides", "expected"), PRECEDENCE_CASES,
                         ids=[c[0] for c in PRECEDENCE_CASES])
def test_precedence(tmp_path: Path, what: str, text: str | None, env: dict[str, str],
                    overrides: dict[str, Any], expected: Any) -> None:
    path = write(tmp_path, text) if text is not None else None
    assert load_config(path, env, overrides).logging.level == expected


def test_data_dir_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, f'data_dir = "{tmp_path / "file"}"\n')
    assert load_config(path).data_dir == tmp_path / "file"
    assert load_config(path, {"SIPLINE_DATA": str(tmp_path / "env")}).data_dir == tmp_path / "env"
    assert load_config(path, {"SIPLINE_DATA_DIR": str(tmp_path / "env2")}).data_dir == tmp_path / "env2"
    config = load_config(path, {"SIPLINE_DATA": str(tmp_path / "env")}, {"data_dir": str(tmp_path / "cli")})
    assert config.data_dir == tmp_path / "cli"
    assert config.storage_url == f"sqlite://{tmp_path / 'cli' / 'sipline.db'}"


ENV_CASES: list[tuple[str, str, Any]] = [
    ("SIPLINE_LISTEN", "udp:127.0.0.1:5070, tcp:[::1]:5070",
     (ListenSpec("udp", "127.0.0.1", 5070), ListenSpec("tcp", "::1", 5070))),
    ("SIPLINE_DOMAINS", "a.test,b.test", ("a.test", "b.test")),
    ("SIPLINE_WORKERS", "4", 4),
    ("SIPLINE_REGISTRAR_MIN_EXPIRES", "30", 30),
    ("SIPLINE_TIMERS_T1", "0.25", 0.25),
    ("SIPLINE_PROXY_RECORD_ROUTE", "no", False),
    ("SIPLINE_AUTH_REQUIRE_AUTH_FOR_LOCAL_CALLERS", "off", False),
    ("SIPLINE_AUTH_ALGORITHMS", "md5", ("MD5",)),
    ("SIPLINE_PROXY_FORK_MODE", "Sequential", "sequential"),
    ("SIPLINE_PROXY_REDIRECT_DOMAINS", "old.test", ("old.test",)),
    ("SIPLINE_LOGGING_FILE", "/tmp/x.log", Path("/tmp/x.log")),
    ("SIPLINE_LOGGING_FILE", "", None),
    ("SIPLINE_ADMIN_LISTEN", "[::1]:9000", "[::1]:9000"),
    ("SIPLINE_STORAGE_URL", "memory://", "memory://"),
]


@pytest.mark.parametrize(("var", "value", "expected"), ENV_CASES)
def test_environment_overrides(var: str, value: str, expected: Any) -> None:
    config = load_config(None, {var: value})
    section, _, key = var.removeprefix("SIPLINE_").lower().partition("_")
    if section in SECTIONS and hasattr(getattr(config, section), key):  # not SIPLINE_STORAGE_URL
        got = getattr(getattr(config, section), key)
    else:
        got = getattr(config, var.removeprefix("SIPLINE_").lower())
    assert got == expected


def test_env_var_names_cover_every_key() -> None:
    assert env_var_name("logging", "level") == "SIPLINE_LOGGING_LEVEL"
    assert env_var_name(None, "listen") == "SIPLINE_LISTEN"
    names = [env_var_name(s, f.name) for s, f in iter_keys()]
    assert len(names) == len(set(names))  # no two keys share a variable


def test_unrelated_sipline_variables_are_ignored() -> None:
    env = {"SIPLINE_CONFIG": "/x.toml", "SIPLINE_INTEROP_PEERS": "sipp", "PATH": "/bin"}
    assert load_config(None, env).logging.level == "info"


# ---------------------------------------------------------------------------------------
# Errors: each names the key and the problem


FILE_ERRORS: list[tuple[str, str]] = [
    ('[registrar]\nmin_expires = "abc"\n',
     'config error: [registrar] min_expires: expected an integer, got "abc"'),
    ('[registrar]\nmin_expires = "60"\n',
     'config error: [registrar] min_expires: expected an integer, got "60" (write it without quotes)'),
    ("[registrar]\nmin_expires = 0\n", "config error: [registrar] min_expires: must be at least 1, got 0"),
    ("[registrar]\nmin_expire = 60\n",
     "config error: [registrar] min_expire: unknown key; did you mean min_expires?"),
    ("[registrar]\nmin_expires = 600\nmax_expires = 300\n",
     "config error: [registrar] max_expires: must not be below min_expires (600), got 300"),
    ("[registrar]\ndefault_expires = 10\n",
     "config error: [registrar] default_expires: must lie within min_expires..max_expires (60..7200), got 10"),
    ("[loging]\nlevel = \"debug\"\n", "config error: [loging]: unknown section; did you mean [logging]?"),
    ('level = "debug"\n', "config error: level: unknown key; did you mean [logging] level?"),
    ("logging = 3\n", "config error: [logging]: expected a table, got 3"),
    ('[logging]\nlevel = "verbose"\n',
     'config error: [logging] level: expected one of trace, debug, info, warning, error, got "verbose"'),
    ('[logging]\nlevel = "debugg"\n', 'did you mean "debug"?'),
    ('[logging]\nformat = 1\n', "config error: [logging] format: expected a string, got 1"),
    ('listen = "udp:0.0.0.0:5060"\n',
     'config error: listen: expected a list of strings, got "udp:0.0.0.0:5060" (write ["udp:0.0.0.0:5060"])'),
    ('listen = ["udp:[::1:5060"]\n', "config error: listen: item 1: unclosed '[' in listen address"),
    ('listen = ["tls:0.0.0.0:5061"]\n', "config error: listen: tls:0.0.0.0:5061 needs a certificate: set [tls] cert"),
    ("workers = 0\n", "config error: workers: must be at least 1, got 0"),
    ("workers = true\n", "config error: workers: expected an integer, got true"),
    ("[timers]\nt1 = \"fast\"\n", 'config error: [timers] t1: expected a number, got "fast"'),
    ("[timers]\nt1 = 5.0\n", "config error: [timers] t2: must not be below t1 (5), got 4"),
    ("[timers]\nt1 = inf\n", "config error: [timers] t1: expected a finite number, got inf"),
    ("[tls]\nverify_peer = \"yes\"\n", 'config error: [tls] verify_peer: expected true or false, got "yes"'),
    ('[tls]\ncert = "/nonexistent/cert.pem"\n', "config error: [tls] cert: file not found: /nonexistent/cert.pem"),
    ('[auth]\nalgorithms = ["SHA-1"]\n', "config error: [auth] algorithms: unsupported algorithm 'SHA-1'"),
    ("[auth]\nalgorithms = []\n", "config error: [auth] algorithms: at least one algorithm is needed"),
    ('[auth]\nsecret = "short"\n', "config error: [auth] secret: must be at least 16 bytes long"),
    ('[proxy]\nfork_mode = "serial"\n', "config error: [proxy] fork_mode: expected one of parallel, sequential"),
    ('[proxy]\nrouting_module = "not a module"\n', "config error: [proxy] routing_module: expected a module name"),
    ('[proxy]\nrouting_module = "/nonexistent/route.py"\n',
     "config error: [proxy] routing_module: file not found: /nonexistent/route.py"),
    ('[[proxy.static_routes]]\nmatch = "prefix:+1"\n',
     "config error: [proxy] static_routes: item 1: missing next_hop"),
    ('[[proxy.static_routes]]\nmatch = "number:+1"\nnext_hop = "sip:gw"\n',
     "config error: [proxy] static_routes: item 1: bad match 'number:+1', want prefix:DIGITS or domain:NAME"),
    ('[[proxy.static_routes]]\nmatch = "prefix:+1"\nnext_hop = "tel:+1555"\n',
     "config error: [proxy] static_routes: item 1: next_hop 'tel:+1555' must be a sip: or sips: URI"),
    ('[[proxy.static_routes]]\nmatch = "prefix:+1"\nnext_hop = "sip:gw"\nredirct = true\n',
     "config error: [proxy] static_routes: item 1: unknown key 'redirct'; did you mean redirect?"),
    ('[admin]\nlisten = "0.0.0.0:8080"\n',
     'config error: [admin] listen: must be a loopback address (the endpoint has no authentication), got "0.0.0.0"'),
    ('[admin]\nlisten = "localhost:http"\n', "config error: [admin] listen: bad port 'http'"),
    ('domains = ["exa mple.com"]\n', "config error: domains: bad domain 'exa mple.com'"),
    ("[registrar\n", "is not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), FILE_ERRORS)
def test_file_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)
    if message.startswith("config error:"):
        assert str(info.value).startswith(message)


ENV_ERRORS: list[tuple[dict[str, str], str]] = [
    ({"SIPLINE_REGISTRAR_MIN_EXPIRES": "abc"},
     'config error: [registrar] min_expires: expected an integer, got "abc" (from SIPLINE_REGISTRAR_MIN_EXPIRES)'),
    ({"SIPLINE_LOGGING_LEVL": "debug"},
     "config error: unknown environment variable SIPLINE_LOGGING_LEVL; did you mean SIPLINE_LOGGING_LEVEL?"),
    ({"SIPLINE_LISTN": "udp:127.0.0.1:5060"}, "did you mean SIPLINE_LISTEN?"),
    ({"SIPLINE_PROXY_STATIC_ROUTES": "x"},
     "config error: [proxy] static_routes: static routes can only be set in the config file"),
    ({"SIPLINE_TLS_VERIFY_PEER": "maybe"},
     'config error: [tls] verify_peer: expected true or false, got "maybe" (from SIPLINE_TLS_VERIFY_PEER)'),
    ({"SIPLINE_LISTEN": "udp:[::1"}, "config error: listen: item 1: unclosed '['"),
]


@pytest.mark.parametrize(("env", "message"), ENV_ERRORS)
def test_environment_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env)
    assert message in str(info.value)


def test_override_errors_name_the_command_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides={"listen": ["bogus"]})
    assert str(info.value).endswith("(from the command line)")
    assert info.value.key == "listen"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


# ---------------------------------------------------------------------------------------
# Static routes


def test_static_routes_and_matching(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[[proxy.static_routes]]
match = "prefix:+1 555"
next_hop = "sip:gw1.example.net:5060;transport=udp"

[[proxy.static_routes]]
match = "domain:.example.org"
next_hop = "sip:edge.example.org"
redirect = true
"""))
    first, second = config.proxy.static_routes
    assert first.kind == "prefix" and first.value == "+1 555" and not first.redirect
    assert first.matches("+1-555-0100", "anything") and not first.matches("+1666", "x")
    assert not first.matches(None, "x")
    assert second.redirect and second.matches(None, "sub.example.org")
    assert second.matches("bob", "EXAMPLE.org") and not second.matches("bob", "badexample.org")
    assert StaticRoute("domain:a.test", "sip:b").matches(None, "a.test")


# ---------------------------------------------------------------------------------------
# The example file and dump_toml


def test_example_toml_loads(tmp_path: Path) -> None:
    config = load_config(EXAMPLE)
    assert config.domains == ("example.com", "127.0.0.1")
    assert len(config.proxy.static_routes) == 2


def test_every_key_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    sections = {name: re.search(rf"^\[{name}\]$(.*?)(?=^\[[a-z]+\]$|\Z)", text, re.M | re.S) for name in SECTIONS}
    missing = []
    for section, f in iter_keys():
        body = text.split("\n[", 1)[0] if section is None else (sections[section].group(1) if sections[section] else "")
        if f.name == "static_routes":
            present = f"[[{section}.{f.name}]]" in text  # an array of tables
        else:
            present = bool(re.search(rf"^#? ?{f.name} =", body, re.M))
        if not present:
            missing.append(f"[{section}] {f.name}" if section else f.name)
        assert f.metadata.get("help"), f"{section}.{f.name} has no help text"
    assert not missing, f"not in sipline.example.toml: {missing}"


def test_example_values_are_the_defaults_unless_marked() -> None:
    """The file's uncommented values match the built-in defaults for the plain keys."""
    data = tomllib.loads(EXAMPLE.read_text())
    defaults = load_config()
    for name in SECTIONS:
        if name == "proxy":
            continue  # the example shows static routes
        for key, value in data.get(name, {}).items():
            if name == "auth" and key == "realm":
                continue
            got = getattr(getattr(defaults, name), key)
            assert (list(got) if isinstance(got, tuple) else got) == value, f"[{name}] {key}"


def test_dump_round_trips(tmp_path: Path) -> None:
    original = load_config(EXAMPLE, {"SIPLINE_LOGGING_FILE": str(tmp_path / "log" / "s.log")})
    # Credentials are left out of the dump on purpose (see the next tests).
    expected = dataclasses.replace(original, trunks=tuple(
        {k: v for k, v in trunk.items() if k != "password"} for trunk in original.trunks))
    assert any("password" in trunk for trunk in original.trunks)  # the example has one
    dumped = dump_toml(original)
    again = load_config(write(tmp_path, dumped))
    assert again == expected
    commented = dump_toml(original, comments=True)
    assert load_config(write(tmp_path, commented)) == expected
    assert "# Shortest registration accepted" in commented


def test_dump_never_prints_the_secret(tmp_path: Path) -> None:
    config = load_config(None, {"SIPLINE_AUTH_SECRET": "a-very-secret-value-123"})
    assert config.auth.secret == "a-very-secret-value-123"
    text = dump_toml(config)
    assert "a-very-secret-value-123" not in text
    assert "# secret = (set; not shown)" in text


def test_dump_escapes_strings(tmp_path: Path) -> None:
    config = dataclasses.replace(load_config(), node_id='we"ird\\name\x7f')
    assert tomllib.loads(dump_toml(config))["node_id"] == 'we"ird\\name\x7f'


# ---------------------------------------------------------------------------------------
# Nonce secret


def test_secret_generated_once_and_kept(tmp_path: Path) -> None:
    config = load_config(overrides={"data_dir": str(tmp_path / "data")})
    first = load_secret(config)
    assert len(first) == 32
    assert load_secret(config) == first
    assert (tmp_path / "data" / "secret").stat().st_mode & 0o777 == 0o600


def test_secret_from_config_wins(tmp_path: Path) -> None:
    config = load_config(None, {"SIPLINE_AUTH_SECRET": "0123456789abcdef!"}, {"data_dir": str(tmp_path)})
    assert load_secret(config) == b"0123456789abcdef!"
    assert not (tmp_path / "secret").exists()


def test_secret_file_damaged(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("not hex\n")
    with pytest.raises(ConfigError, match="not a hex secret"):
        load_secret(load_config(overrides={"data_dir": str(tmp_path)}))
    with pytest.raises(FileNotFoundError):
        load_secret(load_config(overrides={"data_dir": str(tmp_path / "none")}), create=False)


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 2  # type: ignore[misc]
    assert isinstance(Config(), Config)


def test_dump_never_prints_trunk_passwords_or_url_passwords(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[storage]
cdr = "postgresql://billing:hunter2-db@db.example.net:5432/cdr"

[[trunks]]
name = "carrier-a"
kind = "carrier"
hosts = ["udp:203.0.113.10:5060"]
username = "acct1"
password = "hunter2-trunk"
"""))
    text = dump_toml(config)
    assert "hunter2" not in text
    assert '# password = (set; not shown)' in text
    assert '# cdr = "postgresql://billing:***@db.example.net:5432/cdr" (password not shown)' in text
    assert 'username = "acct1"' in text
    tomllib.loads(text)  # still valid TOML: the credentials are comments
