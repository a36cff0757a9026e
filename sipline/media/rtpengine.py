"""Media anchoring by rtpengine, over its ng control protocol, for when the built-in relay
is not enough (kernel forwarding, transcoding, SRTP/ICE bridging, many thousands of calls).

The ng protocol: one UDP datagram per command, ``<cookie> <bencoded dictionary>``; the
answer repeats the cookie.  A call is identified by ``call-id`` and its two parties by
``from-tag`` / ``to-tag``.  We need three commands:

* ``offer``  -- SDP an endpoint offers; rtpengine allocates ports and returns the SDP to
  send to the other party;
* ``answer`` -- the other party's answer, with both tags; returns the SDP for the offerer;
* ``delete`` -- the call ended; rtpengine frees the ports and reports statistics.

:class:`RtpengineRelay` has the interface of :class:`sipline.media.relay.MediaRelay`
(``open(name)`` giving an object with ``rewrite(sdp, side, kind)``, ``reset_side`` and
``close()``), so the SBC selects one or the other by configuration.  Run rtpengine in
userspace mode (``--table=-1``) when the kernel module is not loaded; nothing here needs
root.  Each side's tag is derived from the call name, so the commands are idempotent
across retransmissions.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Mapping
from typing import Any

from sipline.media.errors import MediaError, PortsExhausted

__all__ = ["bencode", "bdecode", "NgError", "NgClient", "RtpengineRelay", "RtpengineCall"]

log = logging.getLogger("sipline.media.rtpengine")


class NgError(MediaError):
    """rtpengine answered ``result: error`` or did not answer."""


# -- bencode (BitTorrent encoding, what ng speaks) --------------------------------------------

def bencode(value: Any) -> bytes:
    """Integers ``i42e``, strings ``4:spam``, lists ``l...e``, dictionaries ``d...e`` (sorted keys)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, Mapping):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """The value in ``data``; strings come back as ``str`` when UTF-8, else ``bytes``."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise NgError(f"trailing bytes after bencoded value at {end}")
    return value


def _decode(data: bytes, i: int) -> tuple[Any, int]:
    try:
        head = data[i:i + 1]
        if head == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1:end]), end + 1
        if head == b"l":
            out, i = [], i + 1
            while data[i:i + 1] != b"e":
                item, i = _decode(data, i)
                out.append(item)
            return out, i + 1
        if head == b"d":
            table, i = {}, i + 1
            while data[i:i + 1] != b"e":
                key, i = _decode(data, i)
                table[key if isinstance(key, str) else key.decode("latin-1")], i = _decode(data, i)
            return table, i + 1
        colon = data.index(b":", i)
        length = int(data[i:colon])
        raw = data[colon + 1:colon + 1 + length]
        if len(raw) != length:
            raise NgError("truncated bencoded string")
        try:
            return raw.decode(), colon + 1 + length
        except UnicodeDecodeError:
            return raw, colon + 1 + length
    except (ValueError, IndexError) as exc:
        raise NgError(f"malformed bencode at {i}: {exc}") from None


# -- the client ---------------------------------------------------------------------------------

class _NgProtocol(asyncio.DatagramProtocol):
    def __init__(self, client: NgClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.client._received(data)


class NgClient:
    """Commands to one rtpengine; each waits for its answer, retransmitting on loss."""

    def __init__(self, address: tuple[str, int], *, timeout: float = 1.0, attempts: int = 3) -> None:
        self.address = address
        self.timeout = timeout
        self.attempts = attempts
        self._transport: asyncio.DatagramTransport | None = None
        self._waiting: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex().encode()

    async def _ensure(self) -> asyncio.DatagramTransport:
        if self._transport is None or self._transport.is_closing():
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(lambda: _NgProtocol(self),
                                                               remote_addr=self.address)
            self._transport = transport
        return self._transport

    def _received(self, data: bytes) -> None:
        cookie, sep, body = data.partition(b" ")
        future = self._waiting.get(cookie)
        if not sep or future is None or future.done():
            return
        try:
            value = bdecode(body)
        except NgError as exc:
            future.set_exception(exc)
            return
        if not isinstance(value, dict):
            future.set_exception(NgError("answer is not a dictionary"))
        else:
            future.set_result(value)

    async def command(self, name: str, **params: Any) -> dict[str, Any]:
        """Send ``command: name`` with ``params``; the answer, or NgError."""
        transport = await self._ensure()
        cookie = self._prefix + b"_%d" % next(self._ids)
        payload = cookie + b" " + bencode({"command": name, **params})
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[cookie] = future
        try:
            for _ in range(self.attempts):
                transport.sendto(payload)
                try:
                    answer = await asyncio.wait_for(asyncio.shield(future), self.timeout)
                    break
                except asyncio.TimeoutError:
                    continue
            else:
                raise NgError(f"rtpengine at {self.address[0]}:{self.address[1]} did not answer {name}")
        finally:
            self._waiting.pop(cookie, None)
        if answer.get("result") == "error":
            reason = str(answer.get("error-reason", "unknown error"))
            if "port" in reason.lower() and "alloc" in reason.lower():
                raise PortsExhausted(reason)
            raise NgError(f"rtpengine {name}: {reason}")
        return answer

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class RtpengineCall:
    """One call's media in rtpengine (the interface of :class:`~sipline.media.relay.RelayCall`)."""

    def __init__(self, relay: RtpengineRelay, name: str) -> None:
        self.relay = relay
        self.call_id = name or os.urandom(8).hex()
        self._tags = {"a": f"{self.call_id}-a", "b": f"{self.call_id}-b1"}
        self._forks = 1
        self._offerer: str | None = None
        self.used = False
        self.closed = False

    def reset_side(self, side: str) -> None:
        """A new callee (failover): rtpengine treats it as another fork of the call."""
        if side == "b" and self.used:
            self._forks += 1
            self._tags["b"] = f"{self.call_id}-b{self._forks}"

    async def rewrite(self, body: bytes, from_side: str, kind: str = "offer") -> bytes:
        """``offer`` or ``answer`` ``body`` from ``from_side``; the SDP for the other side."""
        other = "b" if from_side == "a" else "a"
        params: dict[str, Any] = {"call-id": self.call_id, "sdp": body, "replace": ["origin", "session-connection"],
                                  "ICE": "remove"}
        if self.relay.address:
            params["media-address"] = self.relay.address
        if kind == "answer":
            params["from-tag"], params["to-tag"] = self._tags[other], self._tags[from_side]
        else:
            params["from-tag"] = self._tags[from_side]
            if self.used:
                params["to-tag"] = self._tags[other]
        answer = await self.relay.ng.command(kind, **params)
        self.used = True
        sdp = answer.get("sdp")
        if isinstance(sdp, str):
            return sdp.encode()
        if isinstance(sdp, bytes):
            return sdp
        raise NgError(f"rtpengine {kind} returned no SDP")

    def stats(self) -> dict[str, Any]:
        return {"engine": "rtpengine"}

    async def close(self) -> dict[str, Any]:
        if self.closed or not self.used:
            self.closed = True
            return self.stats()
        self.closed = True
        try:
            answer = await self.relay.ng.command("delete", **{"call-id": self.call_id, "from-tag": self._tags["a"]})
        except NgError as exc:
            log.info("rtpengine delete %s: %s", self.call_id, exc)
            return self.stats()
        totals = answer.get("totals", {}) if isinstance(answer.get("totals"), dict) else {}
        out = self.stats()
        rtp = totals.get("RTP", {}) if isinstance(totals, dict) else {}
        if isinstance(rtp, dict):
            out.update({k: rtp[k] for k in ("packets", "bytes", "errors") if k in rtp})
        return out


class RtpengineRelay:
    """The SBC's media anchor backed by an rtpengine at ``address`` (its ``listen-ng``)."""

    def __init__(self, control: tuple[str, int], *, address: str | None = None) -> None:
        self.ng = NgClient(control)
        self.address = address

    def open(self, name: str = "") -> RtpengineCall:
        return RtpengineCall(self, name)

    async def ping(self) -> bool:
        return (await self.ng.command("ping")).get("result") == "pong"

    async def close(self) -> None:
        self.ng.close()
