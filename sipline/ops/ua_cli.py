"""``sipline call`` and ``sipline answer``: the user agent from the command line.

The main CLI (``sipline/ops/cli.py``, owned separately) calls :func:`add_ua_commands` with
its ``argparse`` sub-parsers object; each sub-command stores ``func(args) -> int`` (the
process exit code) in its defaults, so the main CLI runs ``sys.exit(args.func(args))``.

Exit codes of ``sipline call`` tell scripts what happened without parsing output:

====  ==========================================
0     answered (and ended normally)
1     other failure (4xx/5xx/6xx not listed)
2     usage error
3     busy (486, 600)
4     not found (404, 604, 484)
5     no answer / timeout / cancelled (408, 480, 487)
6     network: target unreachable (503 or DNS)
7     authentication refused (401, 403, 407)
====  ==========================================
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any, TextIO

__all__ = ["add_ua_commands", "run_call", "run_answer", "exit_code_for"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_NETWORK, EXIT_AUTH = range(8)


def exit_code_for(status: int | None, answered: bool) -> int:
    """Map a call outcome to the documented exit code."""
    if answered:
        return EXIT_OK
    if status in (486, 600):
        return EXIT_BUSY
    if status in (404, 604, 484):
        return EXIT_NOT_FOUND
    if status in (408, 480, 487) or status is None:
        return EXIT_TIMEOUT
    if status == 503:
        return EXIT_NETWORK
    if status in (401, 403, 407):
        return EXIT_AUTH
    return EXIT_FAILED


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="our identity: alice or alice@example.com")
    parser.add_argument("--password", help="digest password for 401/407 challenges")
    parser.add_argument("--proxy", help="outbound proxy / registrar, e.g. sip:127.0.0.1:5060")
    parser.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    parser.add_argument("--listen", default="0.0.0.0", help="SIP listen address (default all)")
    parser.add_argument("--port", type=int, default=0, help="SIP listen port (0: ephemeral)")
    parser.add_argument("--rtp-ports", default="20000-29999", help="RTP port range FIRST-LAST")
    parser.add_argument("--codecs", default="PCMU,PCMA", help="codec preference, comma separated")
    parser.add_argument("--play", help="WAV file to send once the call is answered")
    parser.add_argument("--record", help="WAV file receiving the far side's audio")


def add_ua_commands(subparsers: Any) -> None:
    """Register ``call`` and ``answer`` on the main CLI's sub-parsers."""
    call = subparsers.add_parser("call", help="place a call and report progress and media stats")
    call.add_argument("target", help="sip:bob@host, bob@host or bob")
    _common(call)
    call.add_argument("--dtmf", help="digits to send (RFC 4733) after answer")
    call.add_argument("--duration", type=float, default=10.0, help="seconds to stay connected")
    call.add_argument("--ring-timeout", type=float, default=60.0, help="give up ringing after this")
    call.set_defaults(func=lambda args: _run(run_call(args)))
    answer = subparsers.add_parser("answer", help="register and answer incoming calls automatically")
    _common(answer)
    answer.add_argument("--echo", action="store_true", help="send back what the caller says")
    answer.add_argument("--max-calls", type=int, default=0, help="exit after this many calls (0: never)")
    answer.add_argument("--no-register", action="store_true", help="do not REGISTER (direct calls only)")
    answer.set_defaults(func=lambda args: _run(run_answer(args)))


def _run(coro: Any) -> int:
    try:
        return int(asyncio.run(coro))
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _make_ua(args: argparse.Namespace, **extra: Any) -> Any:
    from ..roles.ua import UserAgent

    first, _, last = args.rtp_ports.partition("-")
    return UserAgent(
        args.user, password=args.password, proxy=args.proxy, transport=args.transport,
        listen_host=args.listen, listen_port=args.port, rtp_ports=(int(first), int(last or first)),
        codecs=tuple(c.strip() for c in args.codecs.split(",") if c.strip()), **extra,
    )


def _line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _stats_text(stats: Any) -> str:
    if stats is None:
        return "no media"
    return (f"sent {stats.packets_sent} pkts, received {stats.packets_received} pkts, "
            f"lost {stats.packets_lost} ({stats.fraction_lost:.1%}), jitter {stats.jitter_ms:.1f} ms, "
            f"MOS {stats.mos:.2f}")


async def run_call(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """``sipline call``: progress lines, then a summary; returns the exit code."""
    ua = _make_ua(args)
    async with ua:
        call = await ua.call(args.target)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        try:
            loop.add_signal_handler(signal.SIGINT, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass

        async def progress() -> None:
            async for event in call.events():
                detail = f" {event.status} {event.reason}".rstrip() if event.status else ""
                _line(out, f"[{loop.time() - call.started_at:6.2f}s] {event.kind}{detail}")

        printer = asyncio.ensure_future(progress())
        if args.record:
            call.record(args.record)
        answered = False
        try:
            answered = await asyncio.wait_for(call.wait_answered(), args.ring_timeout)
        except asyncio.TimeoutError:
            await call.hangup()
        if answered:
            tasks = []
            if args.play:
                tasks.append(asyncio.ensure_future(call.play(args.play)))
            if args.dtmf:
                tasks.append(asyncio.ensure_future(call.send_dtmf(args.dtmf)))
            deadline = loop.time() + args.duration
            while not call.ended and not stop.is_set() and loop.time() < deadline:
                try:
                    await asyncio.wait_for(call.wait_ended(), min(1.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    stats = call.stats()
                    _line(out, f"[{loop.time() - call.started_at:6.2f}s] connected "
                               f"{loop.time() - (call.answered_at or loop.time()):.0f}s: {_stats_text(stats)}")
            for task in tasks:
                task.cancel()
            await call.hangup()
        await call.wait_ended(timeout=10)
        await asyncio.wait_for(printer, 2)
        summary = call.summary()
        _line(out, f"summary: {summary.direction} call to {summary.remote}: final status "
                   f"{summary.final_status} {summary.reason}; answered={summary.answered}; "
                   f"duration {summary.duration:.1f}s; ended by {summary.ended_by or '-'}")
        _line(out, f"media: {_stats_text(summary.stats)}")
        return exit_code_for(summary.final_status, summary.answered)


async def run_answer(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """``sipline answer``: register, answer every call, play/record/echo; Ctrl-C to stop."""
    ua = _make_ua(args)
    handled = 0
    async with ua:
        _line(out, f"listening on {ua.transport}:{ua.host}:{ua.port}")
        if args.proxy and not args.no_register:
            await ua.register()
            _line(out, f"registered {ua.aor.uri} at {args.proxy}")
        async for call in ua.incoming():
            handled += 1
            _line(out, f"incoming call from {call.remote_identity}")
            if args.record:
                call.record(args.record)
            await call.answer()
            _line(out, "answered")
            if args.play:
                ua.spawn(call.play(args.play))
            if args.echo:
                ua.spawn(_echo(call))
            await call.wait_ended()
            _line(out, f"ended: {_stats_text(call.summary().stats)}")
            if args.max_calls and handled >= args.max_calls:
                break
    return EXIT_OK


async def _echo(call: Any) -> None:
    async for frame in call.audio_frames():
        await call.send_audio(frame)
