"""The RFC 3264 offer/answer model: build offers and answers, and read the outcome.

Three questions a user agent or B2BUA asks, and where they are answered:

* "What do I offer?" -- :func:`build_offer` turns local capabilities (:class:`LocalSession`)
  into SDP.  Re-offers go through :func:`next_version` (RFC 3264 §8: ``o=`` stays the same
  except the version, which grows by one only when something changed); :func:`hold` and
  :func:`resume` are re-offers built from the previous one.
* "How do I answer?" -- :func:`build_answer` walks the offered m-lines in order (the answer
  must mirror them, §6), accepts each one that a local stream can serve and rejects the rest
  with port 0.  Payload type numbers are the offerer's (§6.1 lets the answerer renumber, but
  echoing them avoids a whole class of interop bugs with dynamic types).
* "What was agreed?" -- :func:`negotiate` pairs an offer with its answer and gives the media
  layer, from *our* side, where to send, which payload types to use and whether to send or
  receive at all.

Codec identity is (encoding name case-insensitively, clock rate, channels with absent = 1).
``telephone-event`` (RFC 4733) is never the voice codec: it is negotiated on the side and
paired with the chosen codec's clock rate when the offer carries several.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import ProtocolError, UsageError
from .model import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    Timing,
)

__all__ = [
    "TELEPHONE_EVENT",
    "Codec",
    "CodecOrder",
    "MediaCapabilities",
    "LocalSession",
    "NegotiatedStream",
    "build_offer",
    "build_answer",
    "negotiate",
    "next_version",
    "is_hold",
    "hold",
    "resume",
]

TELEPHONE_EVENT = "telephone-event"
_DYNAMIC_PTS = range(96, 128)
_NOT_ACCEPTABLE = 488
# Stands in for "no session-level defaults" when a media section is judged on its own.
_NO_SESSION = SessionDescription(Origin("-", "0", 0, "-"), times=())


class CodecOrder(str, enum.Enum):
    """Whose preference orders the codecs of an answer."""

    LOCAL = "local"
    OFFER = "offer"


@dataclass(frozen=True, slots=True)
class Codec:
    """A payload format we can handle.  ``payload_type`` None: static number if the RFC 3551
    table knows the codec, else one allocated from the dynamic range (96-127)."""

    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None
    payload_type: int | None = None

    def __post_init__(self) -> None:
        # Reuse RtpMap's validation: a codec must be writable as an rtpmap line.
        RtpMap(self.payload_type or 0, self.name, self.clock_rate, self.channels)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.name.lower(), self.clock_rate, self.channels or 1)


@dataclass(frozen=True, slots=True)
class MediaCapabilities:
    """One local stream: what we can receive and where (RFC 3264 §5)."""

    port: int
    codecs: tuple[Codec, ...]
    media: str = "audio"
    proto: str = "RTP/AVP"
    #: media-level ``c=`` when this stream's address differs from the session address
    address: str | None = None
    telephone_event: bool = True
    telephone_event_fmtp: str | None = "0-16"
    telephone_event_pt: int = 101
    ptime: int | None = None
    maxptime: int | None = None
    direction: Direction = Direction.SENDRECV
    extra_attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        if not self.codecs:
            raise UsageError("a media stream needs at least one codec")
        if not 0 < self.port <= 65535:
            raise UsageError(f"bad port {self.port}")


@dataclass(frozen=True, slots=True)
class LocalSession:
    """Everything needed to write our side of an offer or answer."""

    address: str
    session_id: str
    session_version: int
    streams: tuple[MediaCapabilities, ...]
    username: str = "-"
    session_name: str = "-"

    def origin(self) -> Origin:
        return Origin(self.username, self.session_id, self.session_version, self.address,
                      addr_type=Connection.for_address(self.address).addr_type)


@dataclass(frozen=True, slots=True)
class NegotiatedStream:
    """The outcome for one m-line, from our point of view.

    Payload types are the *remote* side's numbers, i.e. what we put in RTP we send; both
    sides use the same numbers when the answer echoed the offer's.
    """

    index: int
    media: str
    active: bool
    direction: Direction
    remote_address: str | None = None
    remote_port: int = 0
    codec: RtpMap | None = None
    fmtp: str | None = None
    codecs: tuple[RtpMap, ...] = ()
    telephone_event: RtpMap | None = None
    ptime: int | None = None
    remote_hold: bool = False


def _static_pt(codec: Codec) -> int | None:
    for pt, rtp in STATIC_PAYLOAD_TYPES.items():
        if rtp.key == codec.key:
            return pt
    return None


class _PtAllocator:
    """Hands out payload types: reserved (explicit or static) numbers first, then 96-127."""

    def __init__(self, reserved: list[int | None]) -> None:
        taken = [pt for pt in reserved if pt is not None]
        if len(set(taken)) != len(taken):
            raise UsageError("duplicate payload type in local codecs")
        self.used: set[int] = set(taken)

    def dynamic(self) -> int:
        for pt in _DYNAMIC_PTS:
            if pt not in self.used:
                self.used.add(pt)
                return pt
        raise UsageError("ran out of dynamic payload types")


def _media_section(
    caps: MediaCapabilities,
    proto: str,
    formats: list[tuple[RtpMap, str | None]],
    direction: Direction,
) -> MediaDescription:
    """Write an m= section: rtpmap (+fmtp) per format, ptime, maxptime, direction, extras."""
    attrs: list[Attribute] = []
    for rtp, fmtp in formats:
        attrs.append(Attribute("rtpmap", str(rtp)))
        if fmtp is not None:
            attrs.append(Attribute("fmtp", f"{rtp.payload_type} {fmtp}"))
    if caps.ptime is not None:
        attrs.append(Attribute("ptime", str(caps.ptime)))
    if caps.maxptime is not None:
        attrs.append(Attribute("maxptime", str(caps.maxptime)))
    attrs.append(Attribute(direction.value))
    attrs.extend(caps.extra_attributes)
    return MediaDescription(
        media=caps.media,
        port=caps.port,
        proto=proto,
        formats=tuple(str(rtp.payload_type) for rtp, _ in formats),
        connections=() if caps.address is None else (Connection.for_address(caps.address),),
        attributes=tuple(attrs),
    )


def _session(local: LocalSession, media: list[MediaDescription]) -> SessionDescription:
    return SessionDescription(
        origin=local.origin(),
        session_name=local.session_name,
        connection=Connection.for_address(local.address),
        times=(Timing(0, 0),),
        media=tuple(media),
    )


def build_offer(local: LocalSession) -> SessionDescription:
    """An initial offer listing every local stream with all its codecs (RFC 3264 §5)."""
    sections = []
    for caps in local.streams:
        wanted = [c.payload_type if c.payload_type is not None else _static_pt(c) for c in caps.codecs]
        events = caps.telephone_event and caps.media == "audio"
        pts = _PtAllocator([*wanted, caps.telephone_event_pt if events else None])
        formats = [
            (RtpMap(pts.dynamic() if pt is None else pt, c.name, c.clock_rate, c.channels), c.fmtp)
            for c, pt in zip(caps.codecs, wanted)
        ]
        if events:
            # One telephone-event per codec clock rate (RFC 4733 §2.1); the configured
            # number goes to 8 kHz, the rate nearly every peer expects it at.
            rates = list(dict.fromkeys(c.clock_rate for c in caps.codecs))
            rates.sort(key=lambda rate: rate != 8000)
            for i, rate in enumerate(rates):
                pt = caps.telephone_event_pt if i == 0 else pts.dynamic()
                formats.append((RtpMap(pt, TELEPHONE_EVENT, rate), caps.telephone_event_fmtp))
        sections.append(_media_section(caps, caps.proto, formats, caps.direction))
    return _session(local, sections)


def _rejected(offered: MediaDescription) -> MediaDescription:
    """Port 0, same media/proto/formats, nothing else (RFC 3264 §6)."""
    return MediaDescription(offered.media, 0, offered.proto, offered.formats)


def _null_connection(session: SessionDescription, media: MediaDescription) -> bool:
    """``c=0.0.0.0`` meaning "do not send to me" (RFC 3264 §8.4).

    With ICE (RFC 8839) the address is a placeholder and candidates carry the real ones, so
    WebRTC's customary 0.0.0.0 is not a hold.
    """
    connection = session.effective_connection(media)
    if connection is None or not connection.is_null:
        return False
    return media.attribute("ice-ufrag") is None and session.attribute("ice-ufrag") is None


def _offer_direction(offer: SessionDescription, media: MediaDescription) -> Direction:
    direction = offer.effective_direction(media)
    if _null_connection(offer, media):
        # RFC 2543 hold: the offerer does not want to receive, whatever the attribute says.
        direction = direction.intersect(Direction.SENDONLY)
    return direction


def _answer_stream(
    offer: SessionDescription,
    offered: MediaDescription,
    caps: MediaCapabilities,
    order: CodecOrder,
    single_codec: bool,
) -> MediaDescription | None:
    local_rank = {codec.key: i for i, codec in enumerate(caps.codecs)}
    local_codec = {codec.key: codec for codec in caps.codecs}
    matched = [rtp for rtp in offered.rtpmaps
               if rtp.encoding.lower() != TELEPHONE_EVENT and rtp.key in local_rank]
    if not matched:
        return None
    if order is CodecOrder.LOCAL:
        matched.sort(key=lambda rtp: local_rank[rtp.key])
    if single_codec:
        matched = matched[:1]
    formats: list[tuple[RtpMap, str | None]] = []
    for rtp in matched:
        fmtp = local_codec[rtp.key].fmtp
        formats.append((rtp, fmtp if fmtp is not None else offered.fmtp(rtp.payload_type)))
    if caps.telephone_event:
        events = [rtp for rtp in offered.rtpmaps if rtp.encoding.lower() == TELEPHONE_EVENT]
        same_rate = [rtp for rtp in events if rtp.clock_rate == matched[0].clock_rate]
        chosen = (same_rate or events)[:1]
        formats.extend((rtp, caps.telephone_event_fmtp) for rtp in chosen)
    direction = caps.direction.intersect(_offer_direction(offer, offered).reversed())
    return _media_section(caps, offered.proto, formats, direction)


def build_answer(
    offer: SessionDescription,
    local: LocalSession,
    *,
    order: CodecOrder = CodecOrder.LOCAL,
    single_codec: bool = False,
) -> SessionDescription:
    """Answer ``offer`` with one m-line per offered m-line, in the same order (RFC 3264 §6).

    Each offered stream takes the first unused local stream of the same media type and
    transport that shares a codec with it; streams without one are rejected with port 0
    (format list copied, RFC 3264 §6).  Codecs keep the offerer's payload type numbers;
    ``order`` picks whose preference sorts them and ``single_codec`` keeps only the best.
    A codec's fmtp is the local one when configured, else the offer's is echoed (so that
    e.g. G.729 ``annexb=no`` is not silently turned back on).
    Raises :class:`ProtocolError` (488) when the offer had live streams and none is
    acceptable, since an answer refusing everything is useless to both sides.
    """
    free = list(local.streams)
    sections: list[MediaDescription] = []
    for offered in offer.media:
        answer: MediaDescription | None = None
        if not offered.is_rejected:
            for caps in free:
                if caps.media.lower() == offered.media.lower() and caps.proto.upper() == offered.proto.upper():
                    answer = _answer_stream(offer, offered, caps, order, single_codec)
                    if answer is not None:
                        free.remove(caps)
                        break
        sections.append(answer if answer is not None else _rejected(offered))
    if any(not m.is_rejected for m in offer.media) and all(m.is_rejected for m in sections):
        raise ProtocolError("no acceptable media stream in offer", status=_NOT_ACCEPTABLE)
    return _session(local, sections)


def _agreed(
    remote: MediaDescription,
    offered: MediaDescription,
    answered: MediaDescription,
) -> tuple[list[RtpMap], RtpMap | None]:
    """Codecs present in both, answer order, renumbered to the remote side's payload types."""
    remote_by_key: dict[tuple[str, int, int], RtpMap] = {}
    for rtp in remote.rtpmaps:
        remote_by_key.setdefault(rtp.key, rtp)
    offer_keys = {rtp.key for rtp in offered.rtpmaps}
    common = [remote_by_key[rtp.key] for rtp in answered.rtpmaps
              if rtp.key in offer_keys and rtp.key in remote_by_key]
    codecs = [rtp for rtp in common if rtp.encoding.lower() != TELEPHONE_EVENT]
    events = [rtp for rtp in common if rtp.encoding.lower() == TELEPHONE_EVENT]
    if codecs:
        events = [rtp for rtp in events if rtp.clock_rate == codecs[0].clock_rate] or events
    return codecs, (events[0] if events else None)


def negotiate(
    offer: SessionDescription,
    answer: SessionDescription,
    *,
    we_offered: bool,
) -> tuple[NegotiatedStream, ...]:
    """Pair an offer with its answer and describe each stream from our side.

    ``we_offered`` says which of the two is ours.  The direction is ours: we send only if
    we said we would and the peer said it will receive (and did not give ``c=0.0.0.0``).
    Raises :class:`ProtocolError` (488) when the answer does not mirror the offer.
    """
    if len(answer.media) != len(offer.media):
        raise ProtocolError(
            f"SDP answer has {len(answer.media)} m-lines, offer had {len(offer.media)}",
            status=_NOT_ACCEPTABLE,
        )
    local_sdp, remote_sdp = (offer, answer) if we_offered else (answer, offer)
    result = []
    for index, (offered, answered) in enumerate(zip(offer.media, answer.media)):
        if offered.media.lower() != answered.media.lower():
            raise ProtocolError(f"SDP answer m-line {index + 1} changed the media type",
                                status=_NOT_ACCEPTABLE)
        if offered.is_rejected or answered.is_rejected:
            result.append(NegotiatedStream(index, offered.media, False, Direction.INACTIVE))
            continue
        local_m, remote_m = (offered, answered) if we_offered else (answered, offered)
        codecs, event = _agreed(remote_m, offered, answered)
        remote_conn = remote_sdp.effective_connection(remote_m)
        direction = local_sdp.effective_direction(local_m).intersect(
            remote_sdp.effective_direction(remote_m).reversed())
        if remote_conn is None or _null_connection(remote_sdp, remote_m):
            direction = direction.intersect(Direction.RECVONLY)
        if _null_connection(local_sdp, local_m):
            direction = direction.intersect(Direction.SENDONLY)
        codec = codecs[0] if codecs else None
        result.append(NegotiatedStream(
            index=index,
            media=offered.media,
            active=codec is not None,
            direction=direction if codec is not None else Direction.INACTIVE,
            remote_address=None if remote_conn is None else remote_conn.address,
            remote_port=remote_m.port,
            codec=codec,
            fmtp=None if codec is None else remote_m.fmtp(codec.payload_type),
            codecs=tuple(codecs),
            telephone_event=event,
            ptime=remote_m.ptime,
            remote_hold=is_hold(remote_m, remote_sdp),
        ))
    return tuple(result)


def next_version(previous: SessionDescription, candidate: SessionDescription) -> SessionDescription:
    """``candidate`` as the next revision of ``previous`` (RFC 3264 §8).

    The ``o=`` line is always the previous one (same username, id and address); its version
    grows by one only if anything else differs, so an unchanged re-offer (a session refresh)
    keeps the version and the peer knows nothing changed.
    """
    unchanged = candidate.with_origin(previous.origin)
    if unchanged == previous:
        return previous
    return unchanged.with_origin(previous.origin.bumped())


def is_hold(target: SessionDescription | MediaDescription, session: SessionDescription | None = None) -> bool:
    """Whether a description puts the peer on hold (RFC 3264 §8.4).

    A stream is on hold when its author will not receive: ``sendonly`` or ``inactive``, or the
    legacy ``c=0.0.0.0`` (unless ICE is in use).  Rejected streams (port 0) are not on hold.  For a media section,
    pass its ``session`` to honour session-level direction and connection.  A whole session
    is on hold when it has live streams and every one of them is.
    """
    if isinstance(target, SessionDescription):
        live = [m for m in target.media if not m.is_rejected]
        return bool(live) and all(is_hold(m, target) for m in live)
    if target.is_rejected:
        return False
    context = session if session is not None else _NO_SESSION
    return not context.effective_direction(target).receives or _null_connection(context, target)


def hold(previous: SessionDescription, *, inactive: bool = False) -> SessionDescription:
    """Re-offer putting every live stream on hold: sendonly (music on hold possible), or
    inactive; a stream that was recvonly becomes inactive.  Version bumped if changed."""
    streams = []
    for media in previous.media:
        if not media.is_rejected:
            current = previous.effective_direction(media)
            target = Direction.INACTIVE if inactive else current.intersect(Direction.SENDONLY)
            media = media.with_direction(target)
        streams.append(media)
    return next_version(previous, previous.replace(media=tuple(streams)))


def resume(previous: SessionDescription, direction: Direction = Direction.SENDRECV) -> SessionDescription:
    """Re-offer taking every live stream off hold (to ``direction``).  Version bumped if changed."""
    streams = tuple(m if m.is_rejected else m.with_direction(direction) for m in previous.media)
    return next_version(previous, previous.replace(media=streams))
