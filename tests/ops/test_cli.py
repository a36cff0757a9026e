"""The ``sipline`` command line: users, config, admin queries, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sipline.ops.admin import write_port_file
from sipline.ops.cli import main
from sipline.ops.config import load_config

PASSWORD = "Tr0ub4dor&3-unique-pw"
NEW_PASSWORD = "correct-horse-battery-staple-42"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def database_bytes(data: Path) -> bytes:
    """Everything SQLite may have written: the database, its WAL and journal."""
    return b"".join(p.read_bytes() for p in sorted(data.iterdir()) if p.name.startswith("sipline.db"))


def test_users_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    d = ("--data", str(data))

    code, out, _ = run_cli(capsys, "users", "list", *d)
    assert code == 0 and "no users" in out
    assert not data.exists()  # listing does not create anything

    code, out, _ = run_cli(capsys, "users", "add", "alice", "--password", PASSWORD, *d)
    assert (code, out) == (0, "added alice@pbx (realm pbx)\n")
    code, out, err = run_cli(capsys, "users", "add", "bob@Example.com", "--password", "pw-bob-123",
                             "--display-name", "Bob B", *d)
    assert code == 0 and "added bob@example.com" in out
    assert "example.com is not one of this server's domains" in err

    code, out, _ = run_cli(capsys, "users", "list", *d)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["USER", "REALM", "DISPLAY"]
    assert lines[1].startswith("bob@example.com") and "Bob B" in lines[1]
    assert lines[2].startswith("alice@pbx")
    code, out, _ = run_cli(capsys, "users", "list", "--domain", "EXAMPLE.COM", *d)
    assert "alice" not in out and "bob@example.com" in out

    code, _, err = run_cli(capsys, "users", "add", "alice@pbx", "--password", "x", *d)
    assert code == 1 and err == "error: user alice@pbx already exists\n"
    # Each domain is its own realm: the same name in another domain is another user.
    code, out, err = run_cli(capsys, "users", "add", "alice@other.test", "--password", "x", *d)
    assert code == 0 and "realm other.test" in out

    assert PASSWORD.encode() not in database_bytes(data)

    store = load_config(overrides={"data_dir": str(data)})
    ha1_before = _ha1(store.storage_url, "alice", "pbx")
    code, out, _ = run_cli(capsys, "users", "passwd", "alice", "--password", NEW_PASSWORD, *d)
    assert (code, out) == (0, "password changed for alice@pbx\n")
    assert _ha1(store.storage_url, "alice", "pbx") != ha1_before
    assert NEW_PASSWORD.encode() not in database_bytes(data)

    code, _, err = run_cli(capsys, "users", "passwd", "nobody", "--password", "x", *d)
    assert code == 1 and err == "error: no user nobody@pbx\n"

    code, out, _ = run_cli(capsys, "users", "remove", "sip:alice@pbx", *d)
    assert (code, out) == (0, "removed alice@pbx\n")
    code, _, err = run_cli(capsys, "users", "remove", "alice", *d)
    assert code == 1 and "no user alice@pbx" in err


def _ha1(url: str, user: str, domain: str) -> str:
    import asyncio

    from sipline.storage import open_storage

    async def read() -> str:
        storage = await open_storage(url)
        try:
            subscriber = await storage.subscribers.get(user, domain)
            assert subscriber is not None
            return subscriber.ha1_sha256
        finally:
            await storage.close()

    return asyncio.run(read())


def test_users_password_from_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code, out, _ = run_cli(capsys, "users", "add", "carol", "--data", str(tmp_path))
    assert code == 0 and "added carol@pbx" in out
    assert PASSWORD.encode() not in database_bytes(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    code, _, err = run_cli(capsys, "users", "add", "dave", "--data", str(tmp_path))
    assert code == 2 and err == "error: empty password\n"


def test_users_prompt_on_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["pw-one-1234", "pw-two-1234"])
    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, _, err = run_cli(capsys, "users", "add", "erin", "--data", str(tmp_path))
    assert code == 2 and err == "error: passwords do not match\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["users", "add", "bad name", "--password", "x"], "error: bad user name 'bad name'"),
        (["users", "add", "a@x.test", "--domain", "y.test", "--password", "x"],
         "error: a@x.test names domain x.test but --domain says y.test"),
        (["users", "add", "@x.test", "--password", "x"], "error: bad user name ''"),
    ],
)
def test_users_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                            message: str) -> None:
    code, _, err = run_cli(capsys, *argv, "--data", str(tmp_path))
    assert code == 2 and err.strip() == message


def test_config_show(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPLINE_REGISTRAR_MAX_EXPIRES", "3600")
    config_file = tmp_path / "s.toml"
    config_file.write_text('[logging]\nlevel = "debug"\n')
    code, out, _ = run_cli(capsys, "config", "show", "--config", str(config_file), "--data", str(tmp_path / "d"))
    assert code == 0
    shown = tomllib.loads(out)
    assert shown["logging"]["level"] == "debug"
    assert shown["registrar"]["max_expires"] == 3600
    assert shown["data_dir"] == str(tmp_path / "d")
    assert shown["listen"] == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    # Options before the subcommand work too; SIPLINE_CONFIG names the file.
    monkeypatch.setenv("SIPLINE_CONFIG", str(config_file))
    code, out2, _ = run_cli(capsys, "--data", str(tmp_path / "d"), "config", "show", "--comments")
    assert code == 0 and tomllib.loads(out2) == shown and "# Least severe level" in out2


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve", "--check-config", "--listen", "udp:[::1"], {},
         "config error: listen: item 1: unclosed '[' in listen address 'udp:[::1' (from the command line)"),
        (["serve", "--check-config"], {"SIPLINE_REGISTRAR_MIN_EXPIRES": "abc"},
         'config error: [registrar] min_expires: expected an integer, got "abc" (from SIPLINE_REGISTRAR_MIN_EXPIRES)'),
        (["serve", "--check-config", "--listen", "tls:0.0.0.0:5061"], {},
         "config error: listen: tls:0.0.0.0:5061 needs a certificate: set [tls] cert (from the command line)"),
        (["config", "show"], {"SIPLINE_LOGGING_LEVL": "x"},
         "config error: unknown environment variable SIPLINE_LOGGING_LEVL; did you mean SIPLINE_LOGGING_LEVEL?"),
        (["users", "list", "--config", "/nonexistent/sipline.toml"], {},
         "config error: config file not found: /nonexistent/sipline.toml"),
    ],
)
def test_config_errors_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                              argv: list[str], env: dict[str, str], message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and err.strip() == message


def test_check_config_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[registrar]\nmin_expires = \"abc\"\n")
    code, _, err = run_cli(capsys, "serve", "--check-config", "--config", str(path))
    assert code == 2
    assert err == 'config error: [registrar] min_expires: expected an integer, got "abc"\n'


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "serve", "--check-config", "--data", str(tmp_path),
                           "--listen", "udp:127.0.0.1:5080", "--listen", "tcp:[::1]:5080",
                           "--domain", "sip.example.test", "--log-level", "trace")
    assert code == 0
    assert out == (f"configuration OK (built-in defaults): listening on udp:127.0.0.1:5080, "
                   f"tcp:[::1]:5080; domains sip.example.test; data in {tmp_path}\n")


@pytest.mark.parametrize(
    "argv",
    [[], ["users"], ["config"], ["serve", "--log-level", "loud"], ["frobnicate"], ["users", "add"]],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "usage:" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "serve", "--help")
    assert code == 0 and "--check-config" in out and "--listen" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "version")
    assert code == 0 and out.startswith("sipline ")


# ---------------------------------------------------------------------------------------
# registrations and calls


@pytest.fixture
def admin_endpoint(tmp_path: Path) -> Iterator[Path]:
    payloads = {
        "/registrations": [{"aor": "sip:alice@pbx", "contact": "sip:alice@192.0.2.4:5062",
                            "expires_in": 120, "received": "udp:192.0.2.4:5062",
                            "transport": "udp", "user_agent": "phone/1.0", "extra": 1}],
        "/calls": [{"call_id": "abc@1", "from": "sip:alice@pbx", "to": "sip:bob@pbx",
                    "state": "answered", "started": 1_800_000_000, "duration": 3725}],
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps(payloads.get(self.path, [])).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    write_port_file(tmp_path, "127.0.0.1", server.server_address[1])
    try:
        yield tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_registrations_table(admin_endpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "registrations", "--data", str(admin_endpoint))
    header, row = out.splitlines()
    assert code == 0
    assert header.split() == ["AOR", "CONTACT", "EXPIRES", "IN", "RECEIVED", "TRANSPORT", "USER", "AGENT"]
    assert row.split() == ["sip:alice@pbx", "sip:alice@192.0.2.4:5062", "120", "udp:192.0.2.4:5062",
                           "udp", "phone/1.0"]


def test_calls_table_and_json(admin_endpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "calls", "--data", str(admin_endpoint))
    assert code == 0 and "abc@1" in out and "answered" in out and "1:02:05" in out
    code, out, _ = run_cli(capsys, "calls", "--json", "--data", str(admin_endpoint))
    assert code == 0 and json.loads(out)[0]["duration"] == 3725


@pytest.mark.parametrize("command", ["registrations", "calls"])
def test_admin_commands_without_server(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, err = run_cli(capsys, command, "--data", str(tmp_path))
    assert code == 1 and out == ""
    assert err == f"error: the sipline server is not running (no admin.port in {tmp_path})\n"


# ---------------------------------------------------------------------------------------
# The real entry points


def test_python_m_sipline(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SIPLINE_DOMAINS": "sub.test"}
    result = subprocess.run(
        [sys.executable, "-m", "sipline", "users", "add", "zoe", "--data", str(tmp_path)],
        input=PASSWORD + "\n", capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "added zoe@sub.test (realm sub.test)\n"
    assert PASSWORD.encode() not in database_bytes(tmp_path)
    result = subprocess.run([sys.executable, "-m", "sipline", "serve", "--check-config", "--listen", "x"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 2 and result.stderr.startswith("config error: listen: item 1: bad listen")
