"""Registration against a scripted registrar (digest, refresh, unregister), attended
transfer, and the CLI's call command end to end."""

from __future__ import annotations

import argparse
import asyncio
import io
from typing import Any

import pytest

from sipline.media.tone import sine
from sipline.media.wav import read_wav, write_wav
from sipline.ops.ua_cli import add_ua_commands, exit_code_for, run_call
from sipline.sip.message import Request, parse_message
from sipline.sip.message.builders import response_to


class FakeRegistrar(asyncio.DatagramProtocol):
    """Challenges a REGISTER without credentials, grants 2 s to one with them."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg = parse_message(data)
        assert isinstance(msg, Request)
        self.requests.append(msg)
        if msg.headers.get("Authorization") is None:
            resp = response_to(msg, 401, to_tag="reg", headers=[
                ("WWW-Authenticate", 'Digest realm="example.com", nonce="n1", qop="auth", algorithm=MD5')])
        else:
            resp = response_to(msg, 200, to_tag="reg", headers=[
                ("Contact", f"{msg.headers.get('Contact')};expires={0 if msg.expires == 0 else 2}")])
        self.transport.sendto(bytes(resp), addr)


@pytest.mark.timeout(20)
async def test_register_digest_refresh_unregister(make_ua: Any) -> None:
    loop = asyncio.get_running_loop()
    transport, registrar = await loop.create_datagram_endpoint(FakeRegistrar, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        ua = await make_ua("alice@example.com", password="pw", proxy=f"sip:127.0.0.1:{port}")
        reg = await ua.register(expires=60)
        assert reg.registered and reg.granted == 2
        first = registrar.requests[1]
        assert 'username="alice"' in (first.headers.get("Authorization") or "")
        await asyncio.sleep(1.4)  # refreshed at max(1 s, 80% of 2 s - ...) = 1 s
        assert len(registrar.requests) >= 3
        assert {r.call_id for r in registrar.requests} == {first.call_id}
        seqs = [r.cseq.seq for r in registrar.requests]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        await ua.unregister()
        assert registrar.requests[-1].expires == 0
    finally:
        transport.close()


@pytest.mark.timeout(20)
async def test_register_failure_backs_off(make_ua: Any) -> None:
    from sipline.roles.ua import RegistrationError

    loop = asyncio.get_running_loop()
    transport, registrar = await loop.create_datagram_endpoint(FakeRegistrar, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        ua = await make_ua("alice@example.com", proxy=f"sip:127.0.0.1:{port}")  # no password
        with pytest.raises(RegistrationError) as err:
            await ua.register()
        assert err.value.status == 401
        assert ua._registration.failures == 1 and not ua._registration.registered
    finally:
        transport.close()


def uri(ua: Any) -> str:
    return f"sip:{ua.identity.user}@127.0.0.1:{ua.port}"


@pytest.mark.timeout(20)
async def test_attended_transfer(make_ua: Any) -> None:
    alice = await make_ua("alice@example.com")
    bob = await make_ua("bob@example.com", auto_answer=True)
    carol = await make_ua("carol@example.com", auto_answer=True)
    a_b = await alice.call(uri(bob))
    assert await a_b.wait_answered(timeout=5)
    a_c = await alice.call(uri(carol))
    assert await a_c.wait_answered(timeout=5)
    b_side = await bob.next_call(timeout=5)
    c_side = await carol.next_call(timeout=5)
    assert await a_b.transfer(a_c)
    replacement = await carol.next_call(timeout=5)  # Bob's INVITE with Replaces
    assert replacement.replaces is c_side
    await c_side.wait_ended(timeout=5)
    await a_c.wait_ended(timeout=5)
    await b_side.wait_ended(timeout=5)
    assert replacement.answered and b_side.transferred_to is not None
    await replacement.hangup()


@pytest.mark.timeout(25)
async def test_cli_call_answered_and_busy(make_ua: Any, tmp_path: Any) -> None:
    bob = await make_ua("bob@example.com")
    wav = tmp_path / "hello.wav"
    write_wav(wav, sine(440, 0.5))
    record = tmp_path / "out.wav"

    async def answer_then_reject() -> None:
        call = await bob.next_call(timeout=5)
        await call.answer()
        await call.play(sine(1000, 0.6))
        second = await bob.next_call(timeout=10)
        second.reject(486)

    helper = asyncio.ensure_future(answer_then_reject())
    parser = argparse.ArgumentParser()
    add_ua_commands(parser.add_subparsers())
    args = parser.parse_args(["call", uri(bob), "--user", "alice@example.com", "--listen", "127.0.0.1",
                              "--play", str(wav), "--record", str(record), "--dtmf", "12",
                              "--duration", "1.2", "--rtp-ports", "38000-38999"])
    assert callable(args.func)
    out = io.StringIO()
    assert await run_call(args, out) == 0
    text = out.getvalue()
    assert "answered 200" in text and "summary:" in text and "final status 200" in text
    assert "media: sent" in text
    assert len(read_wav(record)) > 4000
    args.record = None
    out = io.StringIO()
    assert await run_call(args, out) == 3
    assert "final status 486" in out.getvalue()
    await helper


def test_exit_codes() -> None:
    assert exit_code_for(200, True) == 0
    assert exit_code_for(486, False) == 3 and exit_code_for(404, False) == 4
    assert exit_code_for(487, False) == 5 and exit_code_for(None, False) == 5
    assert exit_code_for(503, False) == 6 and exit_code_for(407, False) == 7
    assert exit_code_for(500, False) == 1
