"""Dialog state (RFC 3261 §12): identity, route set, remote target and sequence numbers.

A dialog is the peer-to-peer relationship that outlives the transaction that created it.
Everything a UA needs to send a request *inside* it, or to accept one, is a handful of
values fixed at creation and a few that move:

* the dialog id (Call-ID, local tag, remote tag) -- fixed;
* the route set, from Record-Route of the creating request or response -- fixed once the
  dialog is confirmed (§12.1.2; an early dialog recomputes it from the 2xx, §13.2.2.4);
* the remote target, from Contact -- refreshed by target refresh requests (re-INVITE,
  UPDATE) and their 2xx (§12.2);
* the local and remote CSeq numbers -- the local one grows with each request we send,
  the remote one rejects requests arriving out of order with 500 (§12.2.2).

This module holds the state and the rules, nothing else: no transaction, no clock and no
identifier generation (the caller passes the Via with its branch).  Usages (INVITE, REFER)
sit on top in :mod:`.invite` and :mod:`.refer`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ProtocolError, UsageError
from ..message.address import NameAddr
from ..message.builders import make_request
from ..message.fields import MAX_CSEQ, Via
from ..message.model import Request, Response
from ..message.params import Params
from ..message.uri import URI, SipURI
from ..methods import ACK, CANCEL, INVITE, TARGET_REFRESH

__all__ = [
    "Dialog",
    "DialogId",
    "DialogState",
    "incoming_request_id",
    "response_id",
]

#: URI parameters that must not travel in a Request-URI (RFC 3261 §19.1.1 table).
_NOT_IN_REQUEST_URI = frozenset({"method", "maddr", "ttl", "transport", "lr"})
_RELIABLE_VIA = frozenset({"TLS", "WSS", "TLS-SCTP"})


@dataclass(frozen=True, slots=True)
class DialogId:
    """The identity of a dialog from *our* side (§12): Call-ID, local tag, remote tag."""

    call_id: str
    local_tag: str
    #: Empty for an early UAC dialog of a peer that gave no To tag (RFC 2543 peers).
    remote_tag: str

    def __str__(self) -> str:
        return f"{self.call_id};local={self.local_tag};remote={self.remote_tag}"


class DialogState(str, enum.Enum):
    """§12: a dialog is early after a 1xx with a tag, confirmed after a 2xx."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def incoming_request_id(request: Request) -> DialogId:
    """The id of the dialog an incoming request belongs to (§12.2.2): local tag = To tag."""
    return DialogId(request.call_id, request.to.tag or "", request.from_.tag or "")


def response_id(response: Response) -> DialogId:
    """The id of the dialog a response to one of our requests belongs to: local = From tag."""
    return DialogId(response.call_id, response.from_.tag or "", response.to.tag or "")


def _contact_uri(message: Request | Response) -> URI | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


def _is_secure(request: Request) -> bool:
    """§12.1.1/§12.1.2: sips Request-URI over TLS.  The top Via names the transport used."""
    uri = request.uri
    if not (isinstance(uri, SipURI) and uri.secure):
        return False
    try:
        return request.via.transport.upper() in _RELIABLE_VIA
    except ProtocolError:
        return False


def _strip_route_params(uri: URI) -> URI:
    """A route URI turned into a Request-URI for a strict router (§12.2.1.1)."""
    if not isinstance(uri, SipURI):
        return uri
    kept = tuple((k, v) for k, v in uri.params if k.lower() not in _NOT_IN_REQUEST_URI)
    return uri.replace(params=Params(kept), headers=())


class Dialog:
    """The state of one dialog (§12.1, §12.2).

    Create with :meth:`uac` (from our request and the 1xx/2xx with a To tag) or :meth:`uas`
    (from the request and the response we answered with).  The object is mutable because a
    dialog lives: its CSeq grows, its target moves, it gets confirmed and terminated.
    """

    __slots__ = (
        "id",
        "state",
        "local_seq",
        "remote_seq",
        "local_uri",
        "remote_uri",
        "remote_target",
        "route_set",
        "secure",
        "local_contact",
        "is_uac",
    )

    def __init__(
        self,
        dialog_id: DialogId,
        *,
        state: DialogState,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        remote_target: URI,
        route_set: tuple[NameAddr, ...] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        secure: bool = False,
        local_contact: NameAddr | None = None,
        is_uac: bool = True,
    ) -> None:
        self.id = dialog_id
        self.state = state
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        #: Our From (UAC) / To (UAS) address, tag included.
        self.local_uri = local_uri
        #: The peer's address, tag included.
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        #: Route values in the order our in-dialog requests list them.
        self.route_set = route_set
        #: True when every hop must be TLS (§12.1.1 "secure flag").
        self.secure = secure
        self.local_contact = local_contact
        self.is_uac = is_uac

    # -- creation -------------------------------------------------------------------

    @classmethod
    def uac(cls, request: Request, response: Response) -> Dialog:
        """Our request and a 101-299 response with a To tag create the dialog (§12.1.2).

        The route set is the response's Record-Route *reversed*; the remote target its
        Contact.  Raises :class:`UsageError` for a response that cannot create a dialog.
        """
        if not 101 <= response.status <= 299:
            raise UsageError(f"a {response.status} response does not create a dialog")
        contact = _contact_uri(response)
        if contact is None:
            # RFC 3261 requires Contact in dialog-creating 2xx; early dialogs from sloppy
            # peers get the Request-URI so that a later 2xx can still fix the target.
            if response.status >= 200:
                raise ProtocolError("dialog-creating 2xx without Contact", header="Contact")
            contact = request.uri
        state = DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY
        return cls(
            DialogId(request.call_id, request.from_.tag or "", response.to.tag or ""),
            state=state,
            local_uri=request.from_,
            remote_uri=response.to,
            remote_target=contact,
            route_set=tuple(reversed(response.record_routes)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=_is_secure(request),
            local_contact=request.contacts[0] if request.contacts else None,
            is_uac=True,
        )

    @classmethod
    def uas(cls, request: Request, response: Response) -> Dialog:
        """The request we received and the 101-299 response we sent (§12.1.1).

        The route set is the request's Record-Route in order; the remote target its
        Contact; the remote CSeq the request's.  The local CSeq starts empty.
        """
        if not 101 <= response.status <= 299:
            raise UsageError(f"a {response.status} response does not create a dialog")
        local_tag = response.to.tag
        if not local_tag:
            raise UsageError("the response creating a dialog needs our To tag")
        contact = _contact_uri(request)
        if contact is None:
            raise ProtocolError("dialog-creating request without Contact", header="Contact")
        return cls(
            DialogId(request.call_id, local_tag, request.from_.tag or ""),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_uri=response.to,
            remote_uri=request.from_,
            remote_target=contact,
            route_set=tuple(request.record_routes),
            local_seq=None,
            remote_seq=request.cseq.seq,
            secure=_is_secure(request),
            local_contact=response.contacts[0] if response.contacts else None,
            is_uac=False,
        )

    # -- state ----------------------------------------------------------------------

    @property
    def confirmed(self) -> bool:
        return self.state is DialogState.CONFIRMED

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    def terminate(self) -> None:
        """BYE sent or received, or the creating transaction failed (§12.3, §15)."""
        self.state = DialogState.TERMINATED

    def receive_response(self, response: Response) -> None:
        """A response to a request we sent in this dialog (or to the creating INVITE).

        A 2xx confirms an early dialog and recomputes its route set (§13.2.2.4).  1xx and
        2xx to a target refresh request (INVITE, UPDATE...) move the remote target to their
        Contact (§12.2.1.2).  A 481 or 408 to an in-dialog request ends a confirmed dialog
        (§12.2.1.2); a final failure of the INVITE ends an early one (§12.3).
        """
        if self.terminated:
            return
        status = response.status
        method = response.cseq.method
        if status >= 300 and (
            (self.state is DialogState.EARLY and method == INVITE)
            or (self.confirmed and status in (408, 481))
        ):
            # §12.3: a failed INVITE ends its early dialogs; §12.2.1.2: 408/481 in a dialog.
            self.terminate()
            return
        if not 101 <= status <= 299:
            return
        if self.state is DialogState.EARLY and status >= 200 and method == INVITE:
            self.state = DialogState.CONFIRMED
            self.route_set = tuple(reversed(response.record_routes))
            if response.to.tag:
                self.remote_uri = response.to
        if method in TARGET_REFRESH:
            contact = _contact_uri(response)
            if contact is not None:
                self.remote_target = contact

    def receive_request(self, request: Request) -> None:
        """Check and absorb an in-dialog request from the peer (§12.2.2).

        Raises :class:`ProtocolError` with status 500 for a request whose CSeq is lower
        than the last one (out of order), and 481 when it does not belong to this dialog.
        ACK and CANCEL carry the CSeq of the request they refer to and are not checked.
        A target refresh request moves the remote target to its Contact.
        """
        if incoming_request_id(request) != self.id:
            raise ProtocolError("request does not belong to this dialog", status=481)
        if self.terminated:
            raise ProtocolError("dialog already terminated", status=481)
        if request.method in (ACK, CANCEL):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            raise ProtocolError(
                f"CSeq {seq} lower than the dialog's remote sequence {self.remote_seq}", status=500
            )
        self.remote_seq = seq
        if request.method in TARGET_REFRESH:
            contact = _contact_uri(request)
            if contact is not None:
                self.remote_target = contact

    # -- sending ----------------------------------------------------------------------

    def next_cseq(self, initial: int = 1) -> int:
        """Advance and return the local CSeq (§12.2.1.1).  ``initial`` when still empty."""
        if self.local_seq is None:
            self.local_seq = initial
        else:
            if self.local_seq >= MAX_CSEQ:
                raise UsageError("local CSeq space exhausted")
            self.local_seq += 1
        return self.local_seq

    def request_target(self) -> tuple[URI, tuple[NameAddr, ...]]:
        """(Request-URI, Route values) per loose/strict routing (§12.2.1.1).

        Empty route set: the remote target, no Route.  First route loose (``lr``): the
        remote target and the route set as is.  First route strict: that route's URI as
        Request-URI, the other routes and then the remote target as the last Route.
        """
        routes = self.route_set
        if not routes:
            return self.remote_target, ()
        first = routes[0].uri
        if isinstance(first, SipURI) and first.lr:
            return self.remote_target, routes
        return _strip_route_params(first), (*routes[1:], NameAddr(self.remote_target))

    def next_hop(self) -> URI:
        """Where the request goes first: the top Route, else the Request-URI (§8.1.2)."""
        uri, routes = self.request_target()
        return routes[0].uri if routes else uri

    def create_request(
        self,
        method: str,
        *,
        via: Via | str,
        cseq: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        contact: NameAddr | None = None,
    ) -> Request:
        """A request inside the dialog (§12.2.1.1).

        To/From/Call-ID come from the dialog, the CSeq is the next local number (``cseq``
        overrides it, e.g. to reuse the INVITE's for its ACK), Route and Request-URI follow
        :meth:`request_target`.  ``via`` carries the fresh branch chosen by the caller.
        Target refresh requests get our Contact.
        """
        if self.terminated:
            raise UsageError(f"dialog {self.id} is terminated")
        if method == ACK:
            raise UsageError("build the ACK with ack_for_2xx()")
        seq = cseq if cseq is not None else self.next_cseq()
        uri, routes = self.request_target()
        extra = [("Route", str(r)) for r in routes]
        extra.extend(headers)
        if contact is None and method in TARGET_REFRESH:
            contact = self.local_contact
        return make_request(
            method,
            uri,
            from_=self.local_uri,
            to=self.remote_uri,
            call_id=self.id.call_id,
            cseq=seq,
            via=via,
            contact=contact,
            headers=extra,
            body=body,
            content_type=content_type,
        )

    def ack_for_2xx(
        self,
        invite: Request,
        *,
        via: Via | str,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """The ACK for a 2xx to *invite* (§13.2.2.4): end-to-end, a new branch, the INVITE's
        CSeq number, routed like any in-dialog request; Authorization headers of the INVITE
        are copied (§22.1).  It carries the answer when the 2xx held the offer."""
        if invite.method != INVITE:
            raise UsageError(f"ACK acknowledges an INVITE, not {invite.method}")
        if self.terminated:
            raise UsageError(f"dialog {self.id} is terminated")
        uri, routes = self.request_target()
        extra = [("Route", str(r)) for r in routes]
        for name in ("Authorization", "Proxy-Authorization"):
            extra.extend((name, v) for v in invite.headers.get_all(name))
        return make_request(
            ACK,
            uri,
            from_=self.local_uri,
            to=self.remote_uri,
            call_id=self.id.call_id,
            cseq=invite.cseq.seq,
            via=via,
            headers=extra,
            body=body,
            content_type=content_type,
        )

    def bye(self, *, via: Via | str, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """A BYE ending the dialog (§15.1.1).  The dialog stays usable until :meth:`terminate`."""
        return self.create_request("BYE", via=via, headers=headers)

    def __repr__(self) -> str:
        return f"<Dialog {self.id} {self.state.value}>"
