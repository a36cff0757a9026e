"""The admin protocol: port file, client against a real HTTP server, table rendering."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sipline.ops.admin import (
    ADMIN_PORT_FILE,
    CALL_FIELDS,
    REGISTRATION_FIELDS,
    AdminClient,
    AdminError,
    AdminUnavailable,
    format_duration,
    format_timestamp,
    read_port_file,
    registration_row,
    remove_port_file,
    render_table,
    write_port_file,
)
from sipline.storage.models import Binding, Source

REGISTRATIONS = [
    {
        "aor": "sip:alice@example.com",
        "contact": "sip:alice@192.0.2.4:5062;transport=udp",
        "expires_in": 3599,
        "received": "udp:192.0.2.4:5062",
        "transport": "udp",
        "user_agent": "softphone 1.0",
    }
]
CALLS = [
    {"call_id": "a84b4c76e66710", "from": "sip:alice@example.com", "to": "sip:bob@example.com",
     "state": "answered", "started": 1_800_000_000.0, "duration": 75.2},
]


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        status, body = self.routes.get(self.path, (404, b'{"error": "not found"}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def admin_server() -> Iterator[tuple[str, int, dict[str, tuple[int, bytes]]]]:
    routes = {
        "/registrations": (200, json.dumps(REGISTRATIONS).encode()),
        "/calls": (200, json.dumps(CALLS).encode()),
    }
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1], routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_client_reads_both_lists(admin_server: tuple[str, int, dict[str, Any]], tmp_path: Path) -> None:
    host, port, _ = admin_server
    write_port_file(tmp_path, host, port)
    client = AdminClient.from_data_dir(tmp_path)
    assert client.registrations() == REGISTRATIONS
    assert client.calls() == CALLS
    assert set(REGISTRATIONS[0]) == set(REGISTRATION_FIELDS)
    assert set(CALLS[0]) == set(CALL_FIELDS)


def test_client_errors(admin_server: tuple[str, int, dict[str, Any]]) -> None:
    host, port, routes = admin_server
    client = AdminClient(host, port)
    with pytest.raises(AdminError, match="HTTP 404"):
        client.get("/nothing")
    routes["/calls"] = (200, b"not json")
    with pytest.raises(AdminError, match="not JSON"):
        client.calls()
    routes["/calls"] = (200, b'{"calls": []}')
    with pytest.raises(AdminError, match="expected a JSON list of objects"):
        client.calls()


def test_client_server_not_running() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(AdminUnavailable, match="not running or not answering"):
        AdminClient("127.0.0.1", port, timeout=2).registrations()


def test_port_file(tmp_path: Path) -> None:
    with pytest.raises(AdminUnavailable, match="not running"):
        read_port_file(tmp_path)
    write_port_file(tmp_path, "::1", 4000)
    assert (tmp_path / ADMIN_PORT_FILE).read_text() == "[::1]:4000\n"
    assert read_port_file(tmp_path) == ("::1", 4000)
    assert AdminClient("::1", 4000).base_url == "http://[::1]:4000"
    (tmp_path / ADMIN_PORT_FILE).write_text("4001\n")
    assert read_port_file(tmp_path) == ("127.0.0.1", 4001)
    (tmp_path / ADMIN_PORT_FILE).write_text("garbage")
    with pytest.raises(AdminError, match="damaged"):
        read_port_file(tmp_path)
    remove_port_file(tmp_path)
    remove_port_file(tmp_path)
    assert not (tmp_path / ADMIN_PORT_FILE).exists()


def test_registration_row_from_binding() -> None:
    binding = Binding(aor="sip:alice@example.com", contact="sip:alice@192.0.2.4:5062",
                      expires_at=1000.4, received=Source("tcp", "192.0.2.4", 5062),
                      user_agent="phone")
    row = registration_row(binding, now=400.0)
    assert row == {"aor": "sip:alice@example.com", "contact": "sip:alice@192.0.2.4:5062",
                   "expires_in": 601, "received": "tcp:192.0.2.4:5062", "transport": "tcp",
                   "user_agent": "phone"}
    bare = registration_row(Binding(aor="a", contact="b", expires_at=1.0), now=5.0)
    assert bare["received"] is None and bare["transport"] is None and bare["expires_in"] == 0
    json.dumps(row)


TABLE_CASES = [
    (
        [{"a": "x", "b": 1}, {"a": "longer", "b": None}],
        ["a", ("b", "bee")],
        "A       BEE\nx       1\nlonger  -\n",
    ),
    ([], ["aor", "contact"], "AOR  CONTACT\n(none)\n"),
    ([{"n": 1.25, "ok": True, "s": "two\nlines"}], ["n", "ok", "s"], "N    OK   S\n1.2  yes  two lines\n"),
    ([{"x": ""}], ["x", "missing"], "X  MISSING\n-  -\n"),
]


@pytest.mark.parametrize(("rows", "columns", "expected"), TABLE_CASES)
def test_render_table(rows: list[dict[str, Any]], columns: list[Any], expected: str) -> None:
    assert render_table(rows, columns) == expected


def test_render_table_custom_empty() -> None:
    assert render_table([], ["a"], empty="(no calls)").endswith("(no calls)\n")


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (75.9, "1:15"), (3725, "1:02:05"), (-3, "0:00")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_passthrough() -> None:
    assert format_duration(None) is None and format_timestamp("x") == "x"
    assert len(format_timestamp(0)) == 19
