"""`sipline serve` with trunks: the SBC shares the server's listeners (or has its own), trunk
traffic reaches it while registrations still reach the registrar, and ``GET /trunks`` /
``sipline trunks`` / ``sipline cdr`` show its state and records."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from sipline.ops.admin import AdminClient
from sipline.ops.cli import main
from sipline.ops.config import load_config
from sipline.ops.serve import ConfiguredServer
from sipline.sip.message import Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "roles" / "b2bua"))

from sbc_peers import HOST, Carrier, RawPeer, in_dialog, is_status, pbx_invite  # noqa: E402


def config_text(tmp_path: Path, carrier_port: int, *, own_listener: int | None = None, media: str = "off") -> Path:
    listen = f'listen = ["udp:{HOST}:{own_listener}"]\n' if own_listener else ""
    path = tmp_path / "sipline.toml"
    path.write_text(f'''
listen = ["udp:{HOST}:0"]
domains = ["sipline.test"]
data_dir = "{tmp_path / 'data'}"

[timers]
t1 = 0.05
t2 = 0.2
t4 = 0.25

[sbc]
media = "{media}"
rtp_port_min = 43000
rtp_port_max = 43099
{listen}
[[trunks]]
name = "carrier-a"
hosts = ["udp:{HOST}:{carrier_port}"]
options_interval = 0.0
numbers = {{region = "DE"}}

[[trunks]]
name = "pbx1"
kind = "customer"
acl = ["127.0.0.0/8"]
numbers = {{region = "DE"}}

[[routes]]
prefix = "+49"
carrier = "carrier-a"
''')
    return path


async def call_through(server: ConfiguredServer, pbx: RawPeer, port: int) -> Response:
    pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
    ok = await pbx.expect(is_status(200))
    assert isinstance(ok, Response)
    pbx.send(in_dialog(pbx, ok, "BYE", port, 2, "z9hG4bKbye1"), (HOST, port))
    await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "BYE" and m.status == 200)
    return ok


REGISTER = (
    "REGISTER sip:sipline.test SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bKreg1;rport\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:alice@sipline.test>;tag=r1\r\nTo: <sip:alice@sipline.test>\r\n"
    "Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@{host}:{port}>\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.timeout(30)
async def test_shared_listeners(tmp_path: Path, peers: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"))
    far.start()
    config = load_config(config_text(tmp_path, far.port, media="relay"))
    server = ConfiguredServer(config)
    await server.start()
    try:
        assert server.sbc is not None
        port = server.listening[0].port
        ok = await call_through(server, pbx, port)
        assert b"c=IN IP4 127.0.0.1" in ok.body and b"m=audio 430" in ok.body
        # A REGISTER from the same address is the registrar's, not the SBC's.
        pbx.send(REGISTER.format(host=HOST, port=pbx.port).encode(), (HOST, port))
        challenged = await pbx.expect(lambda m: isinstance(m, Response) and m.call_id == "reg-1")
        assert isinstance(challenged, Response) and challenged.status == 401

        async def trunk_rows() -> Any:
            return await asyncio.to_thread(AdminClient.from_data_dir(config.data_dir).get, "/trunks")

        for _ in range(100):
            rows = {row["name"]: row for row in await trunk_rows()}
            if rows["pbx1"]["finals"].get("200") == 1:
                break
            await asyncio.sleep(0.05)
        assert rows["carrier-a"]["finals"] == {"200": 1} and rows["carrier-a"]["channels"] == 0
        code = await asyncio.to_thread(main, ["trunks", "--data", str(config.data_dir)])
        out = capsys.readouterr().out
        assert code == 0 and "carrier-a" in out and "200:1" in out
    finally:
        await server.stop(0.5)
    # The record was written to the server's SQLite database: `sipline cdr` reads it.
    assert await asyncio.to_thread(main, ["cdr", "--data", str(config.data_dir), "--csv"]) == 0
    out = capsys.readouterr().out
    assert "pbx1" in out and "carrier-a" in out and out.startswith("id,")
    assert await asyncio.to_thread(main, ["cdr", "--data", str(config.data_dir), "--since=-1h",
                                          "--trunk", "carrier-a", "--status", "200", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "+4930123" in out and "200 OK" in out


@pytest.mark.timeout(30)
async def test_own_listener(tmp_path: Path, peers: Any, free_port: int) -> None:
    pbx: RawPeer = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"))
    far.start()
    config = load_config(config_text(tmp_path, far.port, own_listener=free_port))
    server = ConfiguredServer(config)
    await server.start()
    try:
        assert any(p.port == free_port for p in server.listening)
        await call_through(server, pbx, free_port)
        assert len(far.invites) == 1
    finally:
        await server.stop(0.5)


@pytest.fixture
async def peers() -> Any:
    made: list[RawPeer] = []

    def make(name: str) -> RawPeer:
        peer = RawPeer(name)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()
