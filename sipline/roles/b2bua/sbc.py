"""The SBC: the transaction user that turns an incoming INVITE into a two-legged call.

For each new INVITE it answers four questions, in this order, and refuses the call with the
status that names the first one that fails:

1. *Who is calling?*  A carrier host (a DID call), or a customer trunk recognised by source
   address (ACL) or by digest user (407 challenge, RFC 3261 §22.3).  Otherwise 403.
2. *What number?*  Caller and callee as dialled, normalized to E.164 with the source trunk's
   number plan (:mod:`sipline.sip.b2bua.numbers`, ``phonenumbers`` injected).  A customer may
   only call its allowed destinations (403); a number without E.164 form gets 484.
3. *May it start now?*  One channel and one CPS token on the source trunk; otherwise ``503``
   with ``Retry-After`` and a ``Reason`` naming the limit (never a silent drop).
4. *Where to?*  Carriers from the route table (longest prefix, priorities, weights), each
   host that the OPTIONS monitor reports up, each carrier's own channel and CPS caps; or, for a
   DID, the customer trunk, user or URI the DID names.

Then a :class:`~.call.B2BCall` runs the call, fails over between targets and writes the call
record.  Requests inside a dialog are handed to the leg that owns the dialog, by Call-ID and
our tag, so the two legs never share an identifier.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...runtime import dispatch
from ...runtime.endpoint import Endpoint
from ...runtime.ids import SecureIdSource
from ...runtime.transport import Origin, TransportManager
from ...sip.auth import DigestClient, DigestServer, NonceFactory, parse_credentials
from ...sip.b2bua.numbers import E164Parser, NumberFormat, NumberPlan, dial_digits, from_e164, to_e164
from ...sip.b2bua.routing import Pick, RouteTable
from ...sip.b2bua.topology import (
    caller_identity,
    limit_rejection,
    number_of,
    privacy_requested,
    rewrite_diversion,
)
from ...sip.b2bua.trunk import CarrierTrunk, CustomerTrunk, TrunkSet
from ...sip.errors import ProtocolError
from ...sip.ids import IdSource
from ...sip.message import NameAddr, Params, Request, Response, SipURI, parse_uri
from ...sip.message.builders import response_to
from ...sip.methods import ACK, CANCEL, INVITE, OPTIONS
from ...sip.timers import DEFAULT_TIMERS, TimerConfig
from ...sip.transaction.keys import TransactionKey
from ...sip.transport import Peer
from ...storage import Storage, open_storage
from ...storage.models import compute_ha1
from .call import B2BCall, CallInfo, Release, Target
from .e164 import complete_plan, parse_e164
from .legs import InboundLeg, OutboundLeg
from .owned_ids import owned_ids
from .stats import StatsBook

__all__ = ["Sbc", "SbcOptions", "UNLIMITED"]

log = logging.getLogger("sipline.b2bua")

#: The channel limit used to count channels on a trunk without a cap.
UNLIMITED = 2**31 - 1
#: How long stopping waits for ended calls to release their channels and write their records.
STOP_SETTLE_TIMEOUT = 5.0
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY"


def _weighted(rng: random.Random) -> Pick:
    def pick(weights: Sequence[int]) -> int:
        return rng.choices(range(len(weights)), weights=weights)[0]
    return pick


@dataclass(frozen=True, slots=True)
class SbcOptions:
    """What the SBC needs to run (the ``[[trunks]]``, ``[[dids]]`` and ``[[routes]]`` config)."""

    trunks: TrunkSet
    routes: RouteTable = field(default_factory=RouteTable)
    listen: tuple[Peer, ...] = (Peer("udp", "127.0.0.1", 5060),)
    #: Address put in Via, Contact and SDP o= (default: the listener's).
    advertise: str | None = None
    realm: str = "sipline"
    #: Domain of registered users reached by ``user:`` DIDs.
    user_domain: str = "localhost"
    timers: TimerConfig = DEFAULT_TIMERS
    ring_timeout: float = 120.0
    #: Retry-After (seconds) on calls refused by a channel or CPS cap.
    retry_after: int = 5
    #: Digest algorithms offered to customer trunks, strongest first.
    auth_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    storage_url: str = "memory://"
    health_checks: bool = True
    secret: bytes = b""
    #: Weighted route choice; None draws at random.
    pick: Pick | None = None
    #: E.164 parser; None uses phonenumbers.
    parser: E164Parser | None = None
    #: Media anchoring: "relay" (built-in), "rtpengine" or "off" (SDP addresses untouched).
    media: str = "off"
    #: Address the relay binds and writes in SDP (default: :attr:`Sbc.address`).
    media_address: str | None = None
    #: The relay's RTP port range, inclusive.
    rtp_ports: tuple[int, int] = (20000, 29999)
    #: rtpengine's ng control address for media = "rtpengine".
    rtpengine: tuple[str, int] = ("127.0.0.1", 2223)
    #: Built-in relay: hang up answered calls without RTP either way for this long; 0 = off.
    media_timeout: float = 0.0


class Sbc:
    """The B2BUA/SBC role (see module docstring)."""

    def __init__(self, options: SbcOptions, *, storage: Storage | None = None) -> None:
        self.options = options
        self.trunks = options.trunks
        # Worker mode: the Call-IDs we originate must hash to this worker (see owned_ids).
        group = dispatch.current()
        #: This process's worker index and the number of workers (0, 1 without workers).
        self.worker = (group.index, group.count) if group is not None else (0, 1)
        self.ids: IdSource = owned_ids(SecureIdSource(), *self.worker)
        self.timers = options.timers
        self.retry_after = options.retry_after
        self.storage = storage
        self._own_storage = storage is None
        self.endpoint: Endpoint = None  # type: ignore[assignment]  # set by start()
        self.listening: list[Peer] = []
        self.calls: dict[TransactionKey, B2BCall] = {}
        self._legs: dict[tuple[str, str], InboundLeg | OutboundLeg] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pick = options.pick or _weighted(random.Random())
        self._parser = options.parser or parse_e164
        self._plans: dict[str, NumberPlan] = {}
        #: CANCELs that arrived before their INVITE's call object existed.
        self._cancelled: set[TransactionKey] = set()
        secret = options.secret or self.ids.token(32).encode()
        nonces = NonceFactory(secret, 300.0, make_salt=lambda: self.ids.token(4))
        self.digest = DigestServer(options.realm, nonces, algorithms=options.auth_algorithms)
        self.health: Any = None
        self.stats = StatsBook()
        #: The media relay (built-in or rtpengine), None when media is not anchored.
        self.relay: Any = None
        self.registrations: Any = None
        #: INVITE transactions handed to us whose call object does not exist yet.
        self._pending: set[TransactionKey] = set()
        self._shared = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, endpoint: Endpoint | None = None, listening: Sequence[Peer] = ()) -> None:
        """Open the listeners and start health checks; with ``endpoint``, share that endpoint
        (and its ``listening`` addresses) instead: the owner then hands us the requests that
        :meth:`claims` (see :mod:`sipline.ops.serve`)."""
        if self.storage is None:
            self.storage = await open_storage(self.options.storage_url)

        def factory(on_message: Any, on_error: Any) -> TransportManager:
            return TransportManager(on_message, on_error=on_error, tag_source=self.ids.tag)

        if endpoint is not None:
            self.endpoint, self._shared = endpoint, True
            self.listening.extend(listening)
        else:
            self.endpoint = Endpoint(factory, self, ids=self.ids, timers=self.timers)
            for spec in self.options.listen:
                self.listening.append(await self.endpoint.transports.listen(spec.transport, spec.host, spec.port))
        self._start_media()
        # One binding per trunk: every worker registering the same Contact under its own
        # Call-ID would make the carrier's registrar replace the binding on every refresh.
        if self.worker[0] == 0 and any(t.auth is not None and t.auth.register for t in self.trunks.carriers):
            from .register import CarrierRegistrations

            self.registrations = CarrierRegistrations(self)
            self.registrations.start()
        if self.options.health_checks:
            from .health import HealthPinger

            self.health = HealthPinger(self)
            self.health.start()

    def _start_media(self) -> None:
        mode = self.options.media
        address = self.options.media_address or self.address
        if mode == "relay":
            from ...media.ports import PortAllocator
            from ...media.relay import MediaRelay

            first, last = self.options.rtp_ports
            self.relay = MediaRelay(address, PortAllocator(first, last), media_timeout=self.options.media_timeout)
        elif mode == "rtpengine":
            from ...media.rtpengine import RtpengineRelay

            self.relay = RtpengineRelay(self.options.rtpengine, address=address)
        elif mode != "off":
            raise ValueError(f"unknown media mode {mode!r}")

    async def stop(self) -> None:
        if self.health is not None:
            self.health.stop()
        if self.registrations is not None:
            await self.registrations.stop()
        calls = list(self.calls.values())
        for call in calls:
            call.shut_down(self.options.retry_after)
        # A restart must lose no call record: let every call release its channels and
        # write its record before the remaining tasks (lingering legs) are cancelled.
        settling = [asyncio.ensure_future(call.settled.wait()) for call in calls]
        if settling:
            _, pending = await asyncio.wait(settling, timeout=STOP_SETTLE_TIMEOUT)
            for waiter in pending:
                waiter.cancel()
            if pending:
                log.error("stopping with %d call(s) whose record was not written within %.0f s",
                          len(pending), STOP_SETTLE_TIMEOUT)
        for task in list(self._tasks):
            task.cancel()
        if self.relay is not None and hasattr(self.relay, "close"):
            await self.relay.close()
        if self.endpoint is not None and not self._shared:
            await self.endpoint.close()
        if self.storage is not None and self._own_storage:
            await self.storage.close()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("b2bua task failed", exc_info=task.exception())

    # -- LegHost ----------------------------------------------------------------------------------

    def _local(self, transport: str) -> Peer:
        for peer in self.listening:
            if peer.transport == transport:
                return peer
        return self.listening[0]

    @property
    def address(self) -> str:
        local = self.listening[0]
        if self.options.advertise:
            return self.options.advertise
        return local.host if local.host not in ("0.0.0.0", "::", "") else "127.0.0.1"

    def via(self, transport: str) -> str:
        local = self._local(transport)
        return f"SIP/2.0/{local.transport.upper()} {self.address}:{local.port};branch={self.ids.branch()};rport"

    def contact(self, transport: str) -> NameAddr:
        local = self._local(transport)
        params = Params((("transport", local.transport),)) if local.transport != "udp" else Params()
        return NameAddr(SipURI("sip", "sbc", None, self.address, local.port, params))

    async def resolve(self, uri: object, transport: str) -> Peer:
        if not isinstance(uri, SipURI):
            raise ProtocolError(f"cannot route to {uri}", status=416)
        proto = (uri.transport or transport or "udp").lower()
        host = uri.maddr or uri.host
        port = uri.port or (5061 if proto == "tls" else 5060)
        return Peer(proto, await self._address(host), port)

    async def _address(self, host: str) -> str:
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            return str(infos[0][4][0])

    def attach(self, call_id: str, tag: str, leg: InboundLeg | OutboundLeg) -> None:
        self._legs[(call_id, tag)] = leg

    def detach(self, call_id: str, tag: str) -> None:
        self._legs.pop((call_id, tag), None)

    # -- sharing an endpoint ----------------------------------------------------------------------

    def claims(self, request: Request, origin: Origin) -> bool:
        """Whether a request on a shared listener is the SBC's.

        In-dialog requests are ours when they name one of our legs (Call-ID and our tag).  A
        new INVITE is ours when it comes from a carrier host or from an address of a
        customer trunk's ACL, carries credentials of a customer trunk's user, or is for a
        number listed as a DID; everything else stays with the registrar and proxy.
        """
        try:
            to_tag = request.to.tag
        except ProtocolError:
            return False
        if to_tag:
            return (request.call_id, to_tag) in self._legs
        if request.method != INVITE:
            return False
        source = origin.peer.host
        trunks = self.trunks
        if trunks.carrier_for_source(source) is not None:
            return True
        if any(t.acl for t in trunks.customers_for_source(source)):
            return True
        for value in request.headers.get_all("Proxy-Authorization"):
            try:
                if trunks.customer_for_user(parse_credentials(value, header="Proxy-Authorization").username):
                    return True
            except ProtocolError:
                continue
        uri = request.uri
        user = (uri.user_unescaped or uri.user) if isinstance(uri, SipURI) else None
        if user and trunks.dids:
            return self.trunks.did_for(dial_digits(user)) is not None
        return False

    def claims_invite(self, invite_key: TransactionKey) -> bool:
        """Whether the INVITE a CANCEL refers to is one of our calls."""
        return invite_key in self.calls or invite_key in self._pending

    def claims_ack(self, ack: Request) -> bool:
        try:
            return (ack.call_id, ack.to.tag or "") in self._legs
        except ProtocolError:
            return False

    def claims_response(self, response: Response) -> bool:
        try:
            return (response.call_id, response.from_.tag or "") in self._legs
        except ProtocolError:
            return False

    # -- state for operators ------------------------------------------------------------------------

    async def trunk_rows(self) -> list[dict[str, Any]]:
        """One row per trunk for ``GET /trunks`` (see :mod:`sipline.ops.admin`)."""
        now = time.time()
        states = self.health.states() if self.health is not None else {}
        rows: list[dict[str, Any]] = []
        trunks: tuple[CarrierTrunk | CustomerTrunk, ...] = (*self.trunks.carriers, *self.trunks.customers)
        for trunk in trunks:
            row: dict[str, Any] = {
                "name": trunk.name,
                "kind": "carrier" if isinstance(trunk, CarrierTrunk) else "customer",
                "channels": await self.channels(trunk.name) if self.storage is not None else 0,
                "max_channels": trunk.max_channels,
                "max_cps": trunk.max_cps,
                **self.stats.snapshot(trunk.name, now),
            }
            if isinstance(trunk, CarrierTrunk):
                row["hosts"] = [{"host": str(h), "state": getattr(states.get((trunk.name, str(h))), "value", "up")
                                 if trunk.options_interval > 0 and self.health is not None else "unchecked"}
                                for h in trunk.hosts]
                if self.registrations is not None:
                    row["registration"] = self.registrations.state(trunk.name)
            rows.append(row)
        return rows

    # -- TransactionUser --------------------------------------------------------------------------

    def respond(self, key: TransactionKey, request: Request, status: int, reason: str | None = None,
                headers: Sequence[tuple[str, str]] = ()) -> None:
        self.endpoint.respond(key, response_to(request, status, reason, to_tag=self.ids.tag(), headers=headers))

    def on_request(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        try:
            to_tag = request.to.tag
        except ProtocolError as exc:
            self.respond(key, request, exc.status, exc.reason[:60])
            return
        if to_tag:
            leg = self._legs.get((request.call_id, to_tag))
            if leg is None:
                self.respond(key, request, 481, "Call/Transaction Does Not Exist")
            else:
                leg.on_request(request, key)
            return
        if request.method == INVITE:
            self._pending.add(key)
            self.spawn(self._new_call(request, key, origin))
        elif request.method == OPTIONS:
            self.respond(key, request, 200, "OK", (("Allow", ALLOW), ("Accept", "application/sdp")))
        elif request.method == CANCEL:
            self.respond(key, request, 481, "Call/Transaction Does Not Exist")
        else:
            self.respond(key, request, 405 if request.method != ACK else 400, None, (("Allow", ALLOW),))

    def on_cancel(self, cancel: Request, invite_key: TransactionKey, origin: Origin) -> None:
        call = self.calls.get(invite_key)
        if call is not None:
            call.inbound.on_cancel()
        else:
            self._cancelled.add(invite_key)

    def on_ack(self, ack: Request, origin: Origin | None) -> None:
        leg = self._legs.get((ack.call_id, ack.to.tag or ""))
        if leg is not None:
            leg.on_ack(ack)

    def on_stray_response(self, response: Response, origin: Origin | None) -> None:
        try:
            leg = self._legs.get((response.call_id, response.from_.tag or ""))
        except ProtocolError:
            return
        if isinstance(leg, OutboundLeg):
            leg.on_stray_response(response)

    # -- admission --------------------------------------------------------------------------------

    def _trunk(self, name: str | None) -> CarrierTrunk | CustomerTrunk | None:
        if name is None:
            return None
        return self.trunks.carrier(name) or self.trunks.customer(name)

    async def acquire(self, name: str | None) -> tuple[Release | None, str]:
        """A channel and a CPS token on trunk ``name``: (release, "") or (None, "trunk:limit")."""
        trunk = self._trunk(name)
        if trunk is None or self.storage is None:
            async def nothing() -> None:
                return None
            return nothing, ""
        counters = self.storage.counters
        if trunk.max_cps > 0:
            burst = trunk.cps_burst or max(1.0, trunk.max_cps)
            if not await counters.take(f"trunk:{trunk.name}:cps", trunk.max_cps, burst, time.time()):
                return None, f"{trunk.name}:CPS"
        key = f"trunk:{trunk.name}:channels"
        if not await counters.acquire(key, trunk.max_channels or UNLIMITED):
            return None, f"{trunk.name}:channel"
        released = False

        async def release() -> None:
            nonlocal released
            if not released:
                released = True
                await counters.release(key)

        return release, ""

    async def channels(self, name: str) -> int:
        assert self.storage is not None
        return await self.storage.counters.value(f"trunk:{name}:channels")

    def plan(self, plan: NumberPlan) -> NumberPlan:
        key = repr(plan)
        done = self._plans.get(key)
        if done is None:
            done = self._plans[key] = complete_plan(plan)
        return done

    # -- new calls ----------------------------------------------------------------------------------

    async def _new_call(self, request: Request, key: TransactionKey, origin: Origin) -> None:
        info = CallInfo()
        media = self.relay.open(request.call_id) if self.relay is not None else None
        call = B2BCall(self, request, key, origin.peer.transport, info=info,
                       records=self.storage.records if self.storage else None, acquire=self.acquire,
                       sdp_address=self.address, ring_timeout=self.options.ring_timeout,
                       on_end=lambda c: self._forget(key), on_host_failure=self._host_failed,
                       media=media, stats=self.stats, transfers=self)
        self.calls[key] = call
        self._pending.discard(key)
        if key in self._cancelled:
            self._cancelled.discard(key)
            call.inbound.on_cancel()
            return
        try:
            await self._setup(call, request, origin)
        except ProtocolError as exc:
            call.fail(exc.status, exc.reason[:80])
        except Exception:
            log.exception("[%s] call setup failed", request.call_id)
            call.fail(500, "Server Internal Error")

    def _forget(self, key: TransactionKey) -> None:
        self.calls.pop(key, None)

    def _host_failed(self, host_key: object) -> None:
        if self.health is not None and host_key is not None:
            self.health.suspect(host_key)

    async def _setup(self, call: B2BCall, request: Request, origin: Origin) -> None:
        source = origin.peer.host
        # A carrier's own host and port first; then customers (ACL, digest); then any port of
        # a carrier host (carriers may send from other ports than they listen on).
        carrier = self.trunks.carrier_for_source(source, origin.peer.port)
        customer: CustomerTrunk | None = None
        if carrier is None and not self.trunks.customers_for_source(source):
            carrier = self.trunks.carrier_for_source(source)
        if carrier is None:
            customer = self._identify_customer(call, request, source)
            if customer is None:
                return
        trunk: CarrierTrunk | CustomerTrunk = carrier or customer  # type: ignore[assignment]
        info = call.info
        info.from_trunk = trunk.name
        info.caller_policy = trunk.headers
        info.media_bypass = trunk.media_bypass
        self.stats.attempt(trunk.name, time.time())
        plan = self.plan(trunk.plan)
        uri = request.uri
        info.callee = (uri.user_unescaped or uri.user or "") if isinstance(uri, SipURI) else number_of(NameAddr(uri)) or ""
        info.caller = number_of(request.from_) or ""
        callee = to_e164(info.callee, plan, self._parser)
        caller = to_e164(info.caller, plan, self._parser) if info.caller else None
        info.callee_normalized = callee or ""
        info.caller_normalized = caller or ""
        if callee is None:
            call.fail(484, "Address Incomplete")
            return
        if customer is not None and not customer.may_call(callee):
            call.fail(403, "Destination Not Allowed")
            return
        release, limit = await self.acquire(trunk.name)
        if release is None:
            name, _, kind = limit.partition(":")
            status, phrase, headers = limit_rejection(kind, name, self.options.retry_after)
            call.fail(status, phrase, headers)
            return
        call.hold(release)
        if call.ended is not None:  # cancelled meanwhile
            return
        if carrier is not None:
            targets = await self._did_targets(request, callee, caller, plan)
            if not targets:
                call.fail(404, "Not Found")
                return
        else:
            targets = await self._carrier_targets(request, callee, caller, plan)
            if not targets:
                call.fail(503 if self.options.routes.matching(callee) else 404,
                          "No Route Available" if self.options.routes.matching(callee) else "Not Found",
                          (("Retry-After", str(self.options.retry_after)),))
                return
        await call.route(targets)

    def _identify_customer(self, call: B2BCall, request: Request, source: str) -> CustomerTrunk | None:
        candidates = self.trunks.customers_for_source(source)
        by_acl = [t for t in candidates if t.acl and t.auth is None]
        if by_acl:
            return by_acl[0]
        if not any(t.auth is not None for t in candidates):
            call.fail(403, "Forbidden")
            return None
        now = time.time()
        for value in request.headers.get_all("Proxy-Authorization"):
            try:
                creds = parse_credentials(value, header="Proxy-Authorization")
            except ProtocolError:
                continue
            trunk = self.trunks.customer_for_user(creds.username)
            if trunk is None or trunk.auth is None or not trunk.admits(source):
                continue
            password = trunk.auth.password

            def lookup(user: str, realm: str, algorithm: str, _pw: str = password, _t: CustomerTrunk = trunk) -> str | None:
                if _t.auth is None or user != _t.auth.username:
                    return None
                return compute_ha1(user, realm, _pw, algorithm)

            result = self.digest.verify(creds, INVITE, request.uri_text, now, lookup, request.body)
            if result.ok:
                return trunk
            if result.challenges:
                self._challenge(call, [str(c) for c in result.challenges])
                return None
        self._challenge(call, [str(c) for c in self.digest.challenge(now)])
        return None

    def _challenge(self, call: B2BCall, challenges: list[str]) -> None:
        call.fail(407, "Proxy Authentication Required", [("Proxy-Authenticate", c) for c in challenges])

    # -- transfers (see .transfer) -------------------------------------------------------------

    def refer_policy(self, trunk_name: str | None) -> str:
        """The ``refer`` policy of a call side's trunk; sides without a trunk (DIDs to users
        or URIs) may not transfer: their new calls would be placed on the operator's trunks."""
        trunk = self._trunk(trunk_name)
        return trunk.refer if trunk is not None else "reject"

    def _number_plan(self, trunk_name: str | None) -> tuple[NumberPlan, NumberFormat]:
        trunk = self._trunk(trunk_name)
        if trunk is None:
            return NumberPlan(), NumberFormat()
        return self.plan(trunk.plan), trunk.format

    def refer_number(self, number: str, from_trunk: str | None, to_trunk: str | None) -> str:
        """A Refer-To number as the side receiving the passed REFER writes numbers."""
        plan, _ = self._number_plan(from_trunk)
        e164 = to_e164(number, plan, self._parser)
        if e164 is None:
            return number
        to_plan, fmt = self._number_plan(to_trunk)
        return from_e164(e164, fmt, to_plan) or e164

    async def transfer_targets(self, call: B2BCall, target: Any, side: str) -> tuple[list[Target], tuple[int, str]]:
        """Where a transfer from ``side`` to ``target`` (a Refer-To URI) goes: the targets, or
        none and the status for the final NOTIFY."""
        number = number_of(NameAddr(target))
        name = call.trunk_of(side)
        plan, _ = self._number_plan(name)
        e164 = to_e164(number, plan, self._parser) if number else None
        if e164 is None:
            return [], (484, "Address Incomplete")
        trunk = self._trunk(name)
        if isinstance(trunk, CustomerTrunk) and not trunk.may_call(e164):
            return [], (403, "Destination Not Allowed")
        info = call.info
        shown = info.caller_normalized if side == "b" else info.callee_normalized
        if self.trunks.did_for(e164) is not None:
            targets = await self._did_targets(call.invite, e164, shown or None, plan)
        else:
            targets = await self._carrier_targets(call.invite, e164, shown or None, plan)
        return targets, (404, "Not Found")

    # -- targets --------------------------------------------------------------------------------

    def _carrier_usable(self, name: str) -> bool:
        trunk = self.trunks.carrier(name)
        if trunk is None:
            return False
        return any(self._host_up(trunk, i) for i in range(len(trunk.hosts)))

    def _host_up(self, trunk: CarrierTrunk, index: int) -> bool:
        return self.health is None or self.health.is_up((trunk.name, str(trunk.hosts[index])))

    async def _carrier_targets(self, request: Request, callee: str, caller: str | None,
                               source_plan: NumberPlan) -> list[Target]:
        targets: list[Target] = []
        for name in self.options.routes.carriers_for(callee, self._pick, usable=self._carrier_usable):
            trunk = self.trunks.carrier(name)
            assert trunk is not None
            plan = self.plan(trunk.plan)
            number = from_e164(callee, trunk.format, plan)
            shown = self._shown_caller(request, trunk, caller, source_plan)
            anonymous = {"id": True, "none": False}.get(trunk.caller_id.privacy, privacy_requested(request))
            identity = caller_identity(from_e164(shown, trunk.format, plan) if shown else None,
                                       request.from_.display_name, domain=self.address, anonymous=anonymous,
                                       send_pai=trunk.caller_id.send_pai)
            headers = list(identity.headers)
            if trunk.caller_id.diversion == "pass":
                headers.extend(("Diversion", v) for v in rewrite_diversion(
                    request.headers.get_all("Diversion"),
                    lambda n: self._format(n, source_plan, trunk.format, plan), self.address))
            digest = None
            if trunk.auth is not None:
                digest = DigestClient(trunk.auth.username, password=trunk.auth.password, realm=trunk.auth.realm,
                                      make_cnonce=lambda: self.ids.token(8))
            for i, host in enumerate(trunk.hosts):
                if not self._host_up(trunk, i):
                    continue
                peer = Peer(host.transport, await self._address(host.host), host.port)
                domain = trunk.domain or (f"{host.host}:{host.port}" if ":" not in host.host else f"[{host.host}]:{host.port}")
                targets.append(Target(
                    trunk=name, peer=peer, uri=f"sip:{number}@{domain}",
                    from_=identity.from_, to=NameAddr(parse_uri(f"sip:{number}@{domain}")),
                    headers=tuple(headers), policy=trunk.headers, digest=digest, host_key=(name, str(host)),
                    codecs=trunk.codecs, media_bypass=trunk.media_bypass,
                ))
        return targets

    def _shown_caller(self, request: Request, trunk: CarrierTrunk, caller: str | None,
                      source_plan: NumberPlan) -> str | None:
        policy = trunk.caller_id
        if policy.mode == "fixed":
            return policy.number
        if policy.mode == "pai":
            pai = request.headers.get_all("P-Asserted-Identity")
            if pai:
                try:
                    from ...sip.message import parse_name_addr

                    number = number_of(parse_name_addr(pai[0]))
                except ProtocolError:
                    number = None
                asserted = to_e164(number, source_plan, self._parser) if number else None
                if asserted:
                    return asserted
        return caller or policy.number or None

    def _format(self, number: str, source: NumberPlan, fmt: NumberFormat, plan: NumberPlan) -> str | None:
        e164 = to_e164(number, source, self._parser)
        return from_e164(e164, fmt, plan) if e164 else None

    async def _did_targets(self, request: Request, callee: str, caller: str | None,
                           source_plan: NumberPlan) -> list[Target]:
        did = self.trunks.did_for(callee)
        if did is None:
            return []
        trunk_name: str = ""
        fmt, plan = NumberFormat(), NumberPlan()
        policy = None
        if did.kind == "trunk":
            customer = self.trunks.customer(did.target)
            if customer is None or not customer.contact:
                return []
            trunk_name, fmt, plan, policy = customer.name, customer.format, self.plan(customer.plan), customer.headers
            base = parse_uri(customer.contact)
        elif did.kind == "uri":
            base = parse_uri(did.target)
        else:
            assert self.storage is not None
            bindings = await self.storage.location.lookup(f"sip:{did.target}@{self.options.user_domain}", time.time())
            if not bindings:
                return []
            base = parse_uri(bindings[0].contact)
        if not isinstance(base, SipURI):
            return []
        number = from_e164(callee, fmt, plan) if plan.country_code or fmt.form != "national" else callee
        uri = base.replace(user=number) if did.kind != "user" else base
        shown = from_e164(caller, fmt, plan) if caller and (plan.country_code or fmt.form != "national") else None
        identity = caller_identity(shown, request.from_.display_name, domain=self.address,
                                   anonymous=privacy_requested(request), send_pai=True)
        peer = await self.resolve(uri, "udp")
        to = NameAddr(SipURI("sip", number, None, base.host, base.port))
        kwargs: dict[str, Any] = {"policy": policy} if policy is not None else {}
        if did.kind == "trunk" and customer is not None and customer.media_bypass:
            kwargs["media_bypass"] = True
        return [Target(trunk=trunk_name or f"did:{did.number}", peer=peer, uri=str(uri), from_=identity.from_,
                       to=to, headers=identity.headers, **kwargs)]
