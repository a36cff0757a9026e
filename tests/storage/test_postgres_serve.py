"""``[storage] cdr = "postgresql://..."``: a call through ``sipline serve``'s SBC is recorded in
PostgreSQL (not in the node's SQLite file), and ``sipline cdr --config`` reads it back."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from postgres_fixture import empty_postgres

from sipline.ops.cli import main
from sipline.ops.config import ConfigError, load_config
from sipline.ops.serve import ConfiguredServer, server_options
from sipline.sip.message import Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "roles" / "b2bua"))

from sbc_peers import HOST, Carrier, RawPeer, in_dialog, is_status, pbx_invite  # noqa: E402


def write_config(tmp_path: Path, carrier_port: int, cdr: str) -> Path:
    path = tmp_path / "sipline.toml"
    path.write_text(f'''
listen = ["udp:{HOST}:0"]
domains = ["sipline.test"]
data_dir = "{tmp_path / 'data'}"

[timers]
t1 = 0.05
t2 = 0.2
t4 = 0.25

[storage]
cdr = "{cdr}"

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


@pytest.fixture
async def peers() -> AsyncIterator[Callable[[str], RawPeer]]:
    made: list[RawPeer] = []

    def make(name: str) -> RawPeer:
        peer = RawPeer(name)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()


@pytest.mark.timeout(60)
async def test_sbc_call_record_lands_in_postgres(
    tmp_path: Path, postgres_url: str, peers: Callable[[str], RawPeer], capsys: pytest.CaptureFixture[str]
) -> None:
    await empty_postgres(postgres_url)
    pbx = peers("pbx")
    pbx.start()
    far = Carrier(peers("carrier"))
    far.start()
    path = write_config(tmp_path, far.port, postgres_url)
    config = load_config(path)
    assert server_options(config).records_url == postgres_url
    server = ConfiguredServer(config)
    await server.start()
    try:
        port = server.listening[0].port
        pbx.send(pbx_invite(pbx, port, "030123"), (HOST, port))
        ok = await pbx.expect(is_status(200))
        assert isinstance(ok, Response)
        pbx.send(in_dialog(pbx, ok, "BYE", port, 2, "z9hG4bKbye1"), (HOST, port))
        await pbx.expect(lambda m: isinstance(m, Response) and m.cseq.method == "BYE" and m.status == 200)
        # The record is written by the call's cleanup, a moment after the BYE is answered.
        assert server.server.storage is not None
        records = server.server.storage.records
        for _ in range(200):
            if await records.query():
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"no call record within 10 s; store: {records!r}")
    finally:
        await server.stop(0.5)

    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT from_trunk, to_trunk, status, callee_normalized, extra FROM call_records")
    finally:
        await conn.close()
    assert [(r["from_trunk"], r["to_trunk"], r["status"], r["callee_normalized"]) for r in rows] == [
        ("pbx1", "carrier-a", "200", "+4930123")]
    # Not in the node's own database.
    with sqlite3.connect(config.data_dir / "sipline.db") as db:
        assert db.execute("SELECT COUNT(*) FROM call_records").fetchone()[0] == 0

    assert await asyncio.to_thread(main, ["cdr", "--config", str(path), "--csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("id,") and "pbx1" in out and "carrier-a" in out
    assert await asyncio.to_thread(main, ["cdr", "--config", str(path), "--since=-1h", "--trunk", "carrier-a",
                                          "--status", "200"]) == 0
    out = capsys.readouterr().out
    assert "+4930123" in out and "200 OK" in out
    assert await asyncio.to_thread(main, ["cdr", "--config", str(path), "--trunk", "nowhere"]) == 0
    assert "(no call records)" in capsys.readouterr().out


async def test_cdr_command_reports_an_unreachable_database(
    tmp_path: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, 5, f"postgresql://sipline:hunter2@127.0.0.1:{free_port}/cdr?timeout=2")
    assert await asyncio.to_thread(main, ["cdr", "--config", str(path)]) != 0
    err = capsys.readouterr().err
    assert "cannot open call records at postgresql://sipline:***@127.0.0.1" in err and "hunter2" not in err


def test_cdr_setting_is_checked(tmp_path: Path) -> None:
    config = load_config(None, {"SIPLINE_STORAGE_CDR": "postgresql://u:p@db/cdr"})
    assert config.storage.cdr == "postgresql://u:p@db/cdr"
    assert load_config(None, {}).storage.cdr == ""
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, 5, "mysql://u:secret@db/cdr"))
    assert "[storage] cdr" in str(info.value) and "secret" not in str(info.value)
