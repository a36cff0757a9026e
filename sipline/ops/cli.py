"""The ``sipline`` command: run the server and look after its users and state.

Every subcommand builds the same :class:`~sipline.ops.config.Config` the same way
(``--config FILE`` or $SIPLINE_CONFIG, then SIPLINE_* variables, then flags), so
``sipline users add`` writes to exactly the database ``sipline serve`` reads, and
``sipline config show`` prints exactly what the server would use.

Exit codes: 0 success, 1 a runtime failure (cannot bind, server not running, user not
found), 2 a usage or configuration error.  Programs can also call :func:`run` with a
Config: it is what ``serve`` does after parsing its flags.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.metadata
import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from sipline.ops.admin import (
    CALL_FIELDS,
    REGISTRATION_FIELDS,
    AdminClient,
    status_hint,
    AdminError,
    format_duration,
    format_timestamp,
    read_port_file,
    render_table,
)
from sipline.ops.config import Config, ConfigError, dump_toml, load_config
from sipline.ops.logging import LEVELS, reopen_log_files, setup_logging
from sipline.sip.errors import UsageError

__all__ = ["main", "run", "build_parser", "render_banner", "version", "ServerLike"]

_log = logging.getLogger("sipline.ops.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class _Failure(Exception):
    """A runtime failure already phrased for the operator (exit 1)."""


class _Usage(Exception):
    """A usage mistake phrased for the operator (exit 2)."""


class ServerLike(Protocol):
    """What :func:`run` needs from the server (``sipline.ops.serve.ConfiguredServer``)."""

    @property
    def listening(self) -> Sequence[Any]:
        """Bound addresses (``sipline.sip.transport.Peer``), for the banner."""
        ...

    async def start(self) -> None: ...

    async def stop(self, drain_timeout: float) -> None: ...

    async def wait_closed(self) -> None: ...


def version() -> str:
    try:
        return importlib.metadata.version("sipline")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


# ---------------------------------------------------------------------------------------
# Argument parsing


def build_parser() -> argparse.ArgumentParser:
    # The shared options are accepted before and after the subcommand.  SUPPRESS keeps a
    # subparser from overwriting a value given before the subcommand with its default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", type=Path, default=argparse.SUPPRESS,
                        help="TOML configuration file (default: $SIPLINE_CONFIG, else none)")
    common.add_argument("--data", metavar="DIR", type=Path, default=argparse.SUPPRESS,
                        help="data directory (default: $SIPLINE_DATA or ./sipline-data)")

    parser = argparse.ArgumentParser(
        prog="sipline", parents=[common],
        description="sipline: SIP registrar, proxy and B2BUA.",
        epilog="Run 'sipline serve' to start with built-in defaults.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the server",
                           description="Run the SIP server until SIGINT/SIGTERM.")
    serve.add_argument("--listen", metavar="PROTO:HOST:PORT", action="append",
                       help="listen here instead of the configured addresses (repeatable), "
                            "e.g. udp:0.0.0.0:5060, tcp:[::1]:5060, tls:0.0.0.0:5061")
    serve.add_argument("--domain", metavar="NAME", action="append",
                       help="serve this domain instead of the configured ones (repeatable)")
    serve.add_argument("--log-level", choices=sorted(LEVELS, key=LEVELS.__getitem__),
                       help="override [logging] level")
    serve.add_argument("--check-config", action="store_true",
                       help="validate the configuration, print a summary and exit")
    serve.set_defaults(handler=_cmd_serve)

    users = sub.add_parser("users", parents=[common], help="manage subscribers",
                           description="Add, list, remove users and change passwords.")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION")
    users.set_defaults(handler=lambda args: _help(users))

    add = users_sub.add_parser("add", parents=[common], help="add a user")
    add.add_argument("name", help="alice or alice@example.com (default domain: the first one)")
    add.add_argument("--password", help="password (default: ask, or read a line from stdin)")
    add.add_argument("--domain", help="domain when NAME has none")
    add.add_argument("--display-name", default="", help="name shown to callees")
    add.set_defaults(handler=_cmd_users_add)

    lst = users_sub.add_parser("list", parents=[common], help="list users")
    lst.add_argument("--domain", help="only users of this domain")
    lst.set_defaults(handler=_cmd_users_list)

    rm = users_sub.add_parser("remove", parents=[common], help="remove a user")
    rm.add_argument("name")
    rm.add_argument("--domain", help="domain when NAME has none")
    rm.set_defaults(handler=_cmd_users_remove)

    passwd = users_sub.add_parser("passwd", parents=[common], help="change a password")
    passwd.add_argument("name")
    passwd.add_argument("--password", help="new password (default: ask, or read stdin)")
    passwd.add_argument("--domain", help="domain when NAME has none")
    passwd.set_defaults(handler=_cmd_users_passwd)

    for name, helptext, handler in (
        ("registrations", "show registered contacts (running server)", _cmd_registrations),
        ("calls", "show calls in progress (running server)", _cmd_calls),
    ):
        cmd = sub.add_parser(name, parents=[common], help=helptext, description=helptext)
        cmd.add_argument("--json", action="store_true", help="print the raw JSON list")
        cmd.set_defaults(handler=handler)

    trunks = sub.add_parser("trunks", parents=[common], help="show SBC trunks: channels, CPS, health, answers (running server)",
                            description="State of every SBC trunk: channels in use / cap, calls per second / cap, "
                                        "health of each carrier host, and how many of each final response the "
                                        "trunk saw, with what frequent failures usually mean.")
    trunks.add_argument("--json", action="store_true", help="print the raw JSON list")
    trunks.set_defaults(handler=_cmd_trunks)

    cdr = sub.add_parser("cdr", parents=[common], help="show call records (SBC calls)",
                         description="Call records from the database, oldest first.  Times are "
                                     "YYYY-MM-DD[ HH:MM[:SS]] (local time), a Unix time, or -DURATION "
                                     "like --since=-1h, -30m, -2d (that long ago; note the =).")
    cdr.add_argument("--since", metavar="TIME", help="records of calls started at or after TIME")
    cdr.add_argument("--until", metavar="TIME", help="records of calls started before TIME")
    cdr.add_argument("--trunk", metavar="NAME", help="only calls through this trunk (either side)")
    cdr.add_argument("--status", metavar="CODE", help="only calls that ended with this SIP status")
    cdr.add_argument("--limit", metavar="N", type=int, default=None, help="at most N records")
    cdr.add_argument("--csv", action="store_true", help="write CSV (every field) instead of a table")
    cdr.set_defaults(handler=_cmd_cdr)

    cfg = sub.add_parser("config", parents=[common], help="inspect the configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    cfg.set_defaults(handler=lambda args: _help(cfg))
    show = cfg_sub.add_parser("show", parents=[common], help="print the effective configuration as TOML")
    show.add_argument("--comments", action="store_true", help="explain every key")
    show.set_defaults(handler=_cmd_config_show)

    ver = sub.add_parser("version", parents=[common], help="print the version")
    ver.set_defaults(handler=_cmd_version)

    from .ua_cli import add_ua_commands

    add_ua_commands(sub)
    for name in ("call", "answer"):
        ua_parser = sub.choices[name]
        ua_parser.set_defaults(handler=ua_parser.get_default("func"))
    return parser


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sipline`` console script and ``python -m sipline``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error, already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = getattr(args, "handler", None)
    if handler is None:
        return _help(parser)
    try:
        return int(handler(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except (_Usage, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (_Failure, AdminError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _config_path(args: argparse.Namespace) -> Path | None:
    path = getattr(args, "config", None)
    if path is None and os.environ.get("SIPLINE_CONFIG"):
        path = Path(os.environ["SIPLINE_CONFIG"])
    return path


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "data", None) is not None:
        overrides["data_dir"] = str(args.data)
    if getattr(args, "listen", None):
        overrides["listen"] = list(args.listen)
    if getattr(args, "domain", None) and args.command == "serve":
        overrides["domains"] = list(args.domain)
    if getattr(args, "log_level", None):
        overrides["logging.level"] = args.log_level
    return overrides


def _load(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args), os.environ, _overrides(args))


# ---------------------------------------------------------------------------------------
# serve


def render_banner(config: Config, listening: Sequence[Any], *, config_path: Path | None = None,
                  admin: str | None = None) -> str:
    """The one block printed when the server is up: where, what, where data lives, next step."""
    where = "  ".join(str(peer) for peer in listening) or "(nothing)"
    data_flag = f" --data {config.data_dir}"
    if config_path is not None:
        data_flag = f" --config {config_path}" + data_flag
    rows = [
        ("listening", where),
        ("domains", f"{', '.join(config.domains)}  (realm \"{config.auth.realm or 'each domain'}\")"),
        ("data", f"{config.data_dir}  ({config.storage_url})"),
    ]
    if admin:
        rows.append(("admin", f"http://{admin}"))
    rows.append(("add a user", f"sipline users add alice@{config.domains[0]}{data_flag}"))
    lines = [f"sipline {version()} is running (node {config.node_id})"]
    lines += [f"  {label:<11} {value}" for label, value in rows]
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines) + "\n"


def _cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args)
    path = _config_path(args)
    if args.check_config:
        listening = ", ".join(str(spec) for spec in config.listen)
        print(f"configuration OK ({path or 'built-in defaults'}): listening on {listening}; "
              f"domains {', '.join(config.domains)}; data in {config.data_dir}")
        return EXIT_OK
    return run(config, reload_config=lambda: _load(args), config_path=path)


def _default_server_factory() -> Callable[[Config], ServerLike]:
    from sipline.ops.serve import ConfiguredServer

    return ConfiguredServer


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (faster I/O), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(
    config: Config,
    *,
    server_factory: Callable[[Config], ServerLike] | None = None,
    reload_config: Callable[[], Config] | None = None,
    config_path: Path | None = None,
    out: TextIO | None = None,
    setup_log: bool = True,
) -> int:
    """Run a server with ``config`` until SIGINT/SIGTERM; returns the exit code.

    The first SIGINT/SIGTERM stops listening and drains for ``config.drain_timeout``
    seconds; a second one cancels the drain and exits at once.  SIGHUP calls
    ``reload_config`` and hands the result to ``server.reload(config)`` when the server
    has one; SIGUSR1 reopens the log file.
    """
    if setup_log:
        setup_logging(config.logging)
    if config.workers > 1 and server_factory is None:
        # Forking must happen before any event loop exists.
        from sipline.ops.workers import serve_workers

        return serve_workers(config, run, reload_config=reload_config, config_path=config_path, out=out)
    factory = server_factory or _default_server_factory()
    stream = out if out is not None else sys.stdout
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        try:
            return runner.run(_serve(config, factory, reload_config, config_path, stream))
        except asyncio.CancelledError:
            _log.warning("forced exit before the drain finished")
            return EXIT_FAILURE


async def _serve(
    config: Config,
    factory: Callable[[Config], ServerLike],
    reload_config: Callable[[], Config] | None,
    config_path: Path | None,
    out: TextIO,
) -> int:
    loop = asyncio.get_running_loop()
    server = factory(config)
    stopping = asyncio.Event()
    main_task = asyncio.current_task()
    current = config  # replaced by a successful reload
    signals = 0
    background: set[asyncio.Task[None]] = set()

    def on_stop(name: str) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            _log.info("%s: stopping; draining for up to %gs (repeat to force)", name,
                      current.drain_timeout)
            stopping.set()
        else:
            _log.warning("%s again: forcing exit", name)
            if main_task is not None:
                main_task.cancel()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    async def do_reload() -> None:
        nonlocal current
        if reload_config is None:
            _log.info("SIGHUP: nothing to reload from")
            return
        try:
            new = reload_config()
        except ConfigError as exc:
            _log.error("reload failed, keeping the running configuration: %s", exc)
            return
        if new.listen != current.listen or new.storage_url != current.storage_url:
            _log.warning("listen and storage_url changes take effect after a restart")
        setup_logging(new.logging)
        hook = getattr(server, "reload", None)
        if hook is None:
            _log.warning("this server cannot reload; only logging settings were applied")
        else:
            try:
                result = hook(new)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                _log.exception("reload failed")
                return
        current = new
        _log.info("configuration reloaded")

    handlers: dict[int, Callable[[], None]] = {
        signal.SIGINT: lambda: on_stop("SIGINT"),
        signal.SIGTERM: lambda: on_stop("SIGTERM"),
    }
    if hasattr(signal, "SIGHUP"):
        handlers[signal.SIGHUP] = lambda: spawn(do_reload())
    if hasattr(signal, "SIGUSR1"):
        handlers[signal.SIGUSR1] = lambda: _log.info("SIGUSR1: reopened %d log file(s)", reopen_log_files())
    installed = []
    for signum, callback in handlers.items():
        try:
            loop.add_signal_handler(signum, callback)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows, threads
            pass

    # Handlers go in before start() so that a signal arriving while the sockets open, or
    # right after the banner, is a graceful stop rather than the default abrupt exit.
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            await server.start()
        except OSError as exc:
            _log.error("cannot start: %s", exc)
            await _quiet_stop(server)
            return EXIT_FAILURE
        out.write(render_banner(config, list(server.listening), config_path=config_path,
                                admin=_admin_address(config)))
        out.flush()

        closed = loop.create_task(_await(server.wait_closed()))
        asked = loop.create_task(_await(stopping.wait()))
        tasks += (closed, asked)
        await asyncio.wait({closed, asked}, return_when=asyncio.FIRST_COMPLETED)
        if closed.done() and not stopping.is_set():
            error = closed.exception()
            _log.error("server stopped unexpectedly%s", f": {error}" if error else "")
            return EXIT_FAILURE
        await server.stop(current.drain_timeout)
        await closed
        _log.info("stopped")
        return EXIT_OK
    finally:
        for task in (*tasks, *background):
            task.cancel()
        for signum in installed:
            loop.remove_signal_handler(signum)


def _admin_address(config: Config) -> str | None:
    """Where the started server's admin endpoint listens, for the banner."""
    if not config.admin.enabled:
        return None
    try:
        host, port = read_port_file(config.data_dir)
    except AdminError:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _await(awaitable: Awaitable[Any]) -> None:
    await awaitable


async def _quiet_stop(server: ServerLike) -> None:
    try:
        await server.stop(0)
    except Exception:  # noqa: BLE001 - already failing; the start error is the one to report
        _log.debug("stop after failed start raised", exc_info=True)


# ---------------------------------------------------------------------------------------
# users


def _split_name(name: str, domain: str | None, config: Config) -> tuple[str, str]:
    text = name.strip()
    for scheme in ("sip:", "sips:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    user, at, host = text.rpartition("@")
    if not at:
        user, host = text, ""
    host = host.lower()
    if host and domain and host != domain.lower():
        raise _Usage(f"{name} names domain {host} but --domain says {domain}")
    host = host or (domain or config.domains[0]).lower()
    if not user or any(c.isspace() or c in "@:;<>\"" for c in user):
        raise _Usage(f"bad user name {user!r}")
    return user, host


def _read_password(given: str | None, *, confirm: bool) -> str:
    if given is not None:
        password = given
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat password: ") != password:
            raise _Usage("passwords do not match")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise _Usage("empty password")
    return password


def _sqlite_file(config: Config) -> Path | None:
    url = config.storage_url
    if url.startswith("sqlite://"):
        return Path(url[len("sqlite://"):].split("?", 1)[0])
    if "://" not in url:
        return Path(url)
    return None


def _store_missing(config: Config) -> bool:
    """True when the database does not exist yet (read-only commands must not create it)."""
    path = _sqlite_file(config)
    return path is not None and not path.exists() and not path.is_dir()


async def _with_storage(config: Config, action: Callable[[Any], Awaitable[int]]) -> int:
    from sipline.storage import StorageError, open_storage

    path = _sqlite_file(config)
    if path is not None and path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = await open_storage(config.storage_url)
    except StorageError as exc:
        raise _Failure(f"cannot open storage {config.storage_url}: {exc}") from None
    try:
        return await action(storage)
    finally:
        await storage.close()


def _cmd_users_add(args: argparse.Namespace) -> int:
    config = _load(args)
    user, domain = _split_name(args.name, args.domain, config)
    if domain not in config.domains:
        print(f"note: {domain} is not one of this server's domains ({', '.join(config.domains)})",
              file=sys.stderr)
    password = _read_password(args.password, confirm=True)

    async def action(storage: Any) -> int:
        from sipline.storage import SubscriberExists, make_subscriber

        subscriber = make_subscriber(user, domain, password, config.auth.realm or domain,
                                     display_name=args.display_name)
        try:
            await storage.subscribers.add(subscriber)
        except SubscriberExists:
            if await storage.subscribers.get(user, domain) is not None:
                raise _Failure(f"user {user}@{domain} already exists") from None
            # Digest finds users by (name, realm), so a name is unique within a realm.
            raise _Failure(f"user name {user} is already taken in realm {config.auth.realm} "
                           f"by another domain's user") from None
        print(f"added {user}@{domain} (realm {config.auth.realm or domain})")
        return EXIT_OK

    return asyncio.run(_with_storage(config, action))


def _cmd_users_list(args: argparse.Namespace) -> int:
    config = _load(args)
    if _store_missing(config):
        print(f"no users yet in {config.data_dir}")
        return EXIT_OK

    async def action(storage: Any) -> int:
        subscribers = await storage.subscribers.list(args.domain.lower() if args.domain else None)
        rows = [
            {
                "user": f"{s.username}@{s.domain}",
                "realm": s.realm,
                "display_name": s.display_name,
                "enabled": s.enabled,
                "created": format_timestamp(s.created_at) if s.created_at else None,
            }
            for s in subscribers
        ]
        print(render_table(rows, ["user", "realm", ("display_name", "display name"), "enabled", "created"],
                           empty="(no users)"), end="")
        return EXIT_OK

    return asyncio.run(_with_storage(config, action))


def _cmd_users_remove(args: argparse.Namespace) -> int:
    config = _load(args)
    user, domain = _split_name(args.name, args.domain, config)
    if _store_missing(config):
        raise _Failure(f"no user {user}@{domain} (no database in {config.data_dir})")

    async def action(storage: Any) -> int:
        if not await storage.subscribers.remove(user, domain):
            raise _Failure(f"no user {user}@{domain}")
        print(f"removed {user}@{domain}")
        return EXIT_OK

    return asyncio.run(_with_storage(config, action))


def _cmd_users_passwd(args: argparse.Namespace) -> int:
    config = _load(args)
    user, domain = _split_name(args.name, args.domain, config)
    if _store_missing(config):
        raise _Failure(f"no user {user}@{domain} (no database in {config.data_dir})")

    async def action(storage: Any) -> int:
        from sipline.storage import SubscriberNotFound

        if await storage.subscribers.get(user, domain) is None:
            raise _Failure(f"no user {user}@{domain}")
        password = _read_password(args.password, confirm=True)
        try:
            await storage.subscribers.set_password(user, domain, password)
        except SubscriberNotFound:
            raise _Failure(f"no user {user}@{domain}") from None
        print(f"password changed for {user}@{domain}")
        return EXIT_OK

    return asyncio.run(_with_storage(config, action))


# ---------------------------------------------------------------------------------------
# registrations, calls, config, version


def _print_rows(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool, empty: str,
                convert: Mapping[str, Callable[[Any], Any]] | None = None) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    convert = convert or {}
    shown = [{key: convert.get(key, lambda v: v)(row.get(key)) for key in columns} for row in rows]
    print(render_table(shown, [(key, key.replace("_", " ")) for key in columns], empty=empty), end="")


def _cmd_registrations(args: argparse.Namespace) -> int:
    config = _load(args)
    rows = AdminClient.from_data_dir(config.data_dir).registrations()
    _print_rows(rows, REGISTRATION_FIELDS, args.json, "(no registrations)")
    return EXIT_OK


def _cmd_calls(args: argparse.Namespace) -> int:
    config = _load(args)
    rows = AdminClient.from_data_dir(config.data_dir).calls()
    # With several workers, which process holds each call (for logs and py-spy).
    columns = (*CALL_FIELDS, "worker") if any("worker" in row for row in rows) else CALL_FIELDS
    _print_rows(rows, columns, args.json, "(no calls)",
                {"started": format_timestamp, "duration": format_duration})
    return EXIT_OK


def _finals_text(finals: Mapping[str, Any]) -> str:
    return " ".join(f"{status}:{count}" for status, count in finals.items()) or "-"


def _cmd_trunks(args: argparse.Namespace) -> int:
    config = _load(args)
    rows = AdminClient.from_data_dir(config.data_dir).trunks()
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    shown = []
    for row in rows:
        cap = row.get("max_channels") or 0
        cps_cap = row.get("max_cps") or 0
        hosts = " ".join(f"{h.get('host')}={h.get('state')}" for h in row.get("hosts") or ())
        registration = row.get("registration")
        if registration:
            hosts += " registered" if registration.get("registered") else                 f" NOT registered ({registration.get('last_status') or 'no answer'})"
        shown.append({
            "name": row.get("name"), "kind": row.get("kind"),
            "channels": f"{row.get('channels', 0)}/{cap or '-'}",
            "cps": f"{row.get('cps', 0):g}/{cps_cap or '-'}",
            "hosts": hosts.strip() or None,
            "finals": _finals_text(row.get("finals") or {}),
        })
    print(render_table(shown, ["name", "kind", "channels", "cps", "hosts", ("finals", "final responses")],
                       empty="(no trunks: add [[trunks]] to the configuration)"), end="")
    # Explain the failures an operator should look at: the frequent ones first.
    seen: dict[int, int] = {}
    for row in rows:
        for status, count in (row.get("finals") or {}).items():
            if str(status).isdigit() and int(status) not in (200,):
                seen[int(status)] = seen.get(int(status), 0) + int(count)
    notes = [(status, status_hint(status)) for status, _ in sorted(seen.items(), key=lambda x: -x[1])]
    notes = [(s, h) for s, h in notes if h]
    if notes:
        print()
        for status, hint in notes:
            print(f"{status or 'no answer'}: {hint}")
    return EXIT_OK


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_time(text: str | None, what: str) -> float | None:
    import time as _time
    from datetime import datetime

    if text is None:
        return None
    value = text.strip()
    if value.startswith("-") and value[1:-1].replace(".", "", 1).isdigit() and value[-1] in _UNITS:
        return _time.time() - float(value[1:-1]) * _UNITS[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).timestamp()
        except ValueError:
            continue
    raise _Usage(f"--{what}: cannot read {text!r} as a time (YYYY-MM-DD[ HH:MM[:SS]], Unix time or -1h)")


async def _with_records(config: Config, action: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``action`` on the store holding call records: ``[storage] cdr`` when set (PostgreSQL
    or an SQLite file of their own), else the main storage.  ``action`` gets an object whose
    ``records`` is the store."""
    if not config.storage.cdr:
        return await _with_storage(config, action)
    import types

    from sipline.storage import StorageError, open_records
    from sipline.storage._logic import redact_url

    try:
        records, close = await open_records(config.storage.cdr)
    except (StorageError, OSError) as exc:
        raise _Failure(f"cannot open call records at {redact_url(config.storage.cdr)}: {exc}") from None
    try:
        return await action(types.SimpleNamespace(records=records))
    finally:
        await close()


def _cmd_cdr(args: argparse.Namespace) -> int:
    config = _load(args)
    since, until = _parse_time(args.since, "since"), _parse_time(args.until, "until")
    if args.limit is not None and args.limit < 1:
        raise _Usage("--limit must be at least 1")
    cdr = config.storage.cdr
    missing = Path(cdr[len("sqlite://"):].split("?", 1)[0]) if cdr.startswith("sqlite://") else None
    if (_store_missing(config) if not cdr else missing is not None and not missing.exists()):
        if not args.csv:
            print(f"no call records yet in {missing or config.data_dir}")
        return EXIT_OK

    async def action(storage: Any) -> int:
        records = storage.records
        if args.csv:
            if args.limit is None:
                await records.export_csv(sys.stdout, since, until, args.trunk, args.status)
                return EXIT_OK
            import csv as _csv
            import dataclasses as _dc

            found = await records.query(since, until, args.trunk, args.status, args.limit)
            names = [f.name for f in _dc.fields(found[0])] if found else ["id"]
            writer = _csv.writer(sys.stdout)
            writer.writerow(names)
            for record in found:
                writer.writerow([json.dumps(dict(v)) if isinstance(v, Mapping) else ("" if v is None else v)
                                 for v in (getattr(record, n) for n in names)])
            return EXIT_OK
        found = await records.query(since, until, args.trunk, args.status, args.limit)
        rows = [{
            "start": format_timestamp(r.start), "caller": r.caller, "callee": r.callee_normalized or r.callee,
            "from": r.from_trunk, "to": r.to_trunk, "status": f"{r.status} {r.reason}".strip(),
            "pdd": f"{r.pdd:.2f}" if r.pdd is not None else None, "duration": format_duration(r.duration),
            "hangup": r.hangup_by,
        } for r in found]
        print(render_table(rows, ["start", "caller", "callee", ("from", "from trunk"), ("to", "to trunk"),
                                  "status", "pdd", "duration", ("hangup", "hung up by")],
                           empty="(no call records)"), end="")
        return EXIT_OK

    return asyncio.run(_with_records(config, action))


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"sipline {version()}")
    return EXIT_OK


def _cmd_config_show(args: argparse.Namespace) -> int:
    config = _load(args)
    print(dump_toml(config, comments=args.comments), end="")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
