"""OPTIONS keepalives towards carrier hosts, driving the pure :class:`HealthMonitor`.

One asyncio timer follows the monitor's next deadline; at each wake-up the hosts that are due
get an OPTIONS (a fresh Call-ID per probe, Max-Forwards 70), and every answer or failure is
recorded.  Up/down decisions, damping and probe timeouts are the monitor's; this module only
sends, listens and logs the changes.  A call attempt that fails on transport or timeout makes
the host due at once (:meth:`HealthPinger.suspect`), so a dead host is found before the next
scheduled probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING

from ...runtime.endpoint import ClientCallbacks, Destination
from ...sip.b2bua.trunk import CarrierHost
from ...sip.b2bua.health import HealthMonitor, HealthSettings, HostState, probe_succeeded
from ...sip.message import NameAddr, SipURI
from ...sip.message.builders import make_request
from ...sip.methods import OPTIONS
from ...sip.transport import Peer

if TYPE_CHECKING:
    from .sbc import Sbc

__all__ = ["HealthPinger"]

log = logging.getLogger("sipline.b2bua.health")


class HealthPinger:
    """Probes every host of every carrier trunk with ``options_interval`` > 0."""

    def __init__(self, sbc: Sbc) -> None:
        self.sbc = sbc
        self.monitor = HealthMonitor()
        self._hosts: dict[Hashable, CarrierHost] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._seq = 0
        loop = asyncio.get_running_loop()
        now = loop.time()
        for trunk in sbc.trunks.carriers:
            if trunk.options_interval <= 0:
                continue
            settings = HealthSettings(trunk.options_interval, trunk.options_timeout,
                                      trunk.up_threshold, trunk.down_threshold)
            for host in trunk.hosts:
                key = (trunk.name, str(host))
                self.monitor.add(key, settings, now)
                self._hosts[key] = host

    def is_up(self, key: Hashable) -> bool:
        return self.monitor.is_up(key)

    def states(self) -> dict[Hashable, HostState]:
        return {key: self.monitor.state(key) for key in self.monitor.hosts()}

    def start(self) -> None:
        self._rearm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def suspect(self, key: Hashable) -> None:
        """A call attempt to this host got no answer: probe it now."""
        if key in self.monitor:
            self.monitor.probe_now(key, asyncio.get_running_loop().time())
            self._rearm()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.monitor.next_deadline()
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        for key in self.monitor.due(now):
            self.sbc.spawn(self._probe(key))
        self._log_changes()
        self._rearm()

    def _log_changes(self) -> None:
        for change in self.monitor.drain_changes():
            log.warning("carrier host %s is %s", change.host, change.state.value)

    async def _probe(self, key: Hashable) -> None:
        sbc = self.sbc
        target = self._hosts[key]
        host, port, transport = target.host, target.port, target.transport
        loop = asyncio.get_running_loop()
        try:
            peer = Peer(transport, await sbc._address(host), port)
        except OSError:
            self.monitor.record(key, False, loop.time())
            self._log_changes()
            return
        self._seq += 1
        uri = SipURI("sip", None, None, host, port)
        request = make_request(
            OPTIONS, uri, from_=NameAddr(SipURI("sip", "ping", None, sbc.address, None)).with_tag(sbc.ids.tag()),
            to=NameAddr(uri), call_id=sbc.ids.call_id(), cseq=self._seq % 2**31, via=sbc.via(transport),
            headers=(("Accept", "application/sdp"),),
        )

        def on_response(response: object) -> None:
            status = getattr(response, "status", 0)
            if status >= 200:
                self.monitor.record(key, probe_succeeded(status), loop.time())
                self._log_changes()

        def on_failure(status: int) -> None:
            self.monitor.record(key, False, loop.time())
            self._log_changes()

        try:
            sbc.endpoint.send_request(request, Destination(peer), ClientCallbacks(on_response, on_failure))
        except Exception as exc:  # transaction limit, closed endpoint
            log.debug("OPTIONS to %s not sent: %s", peer, exc)
