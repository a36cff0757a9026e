"""Which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3, §9.2).

Matching is a dictionary lookup: every message maps to a hashable :class:`TransactionKey`,
and a transaction is stored under the key of the request that created it.  The rules the
key encodes:

* Client side (§17.1.3): a response matches the request whose top-Via branch and CSeq method
  it carries.  The method matters because a CANCEL shares its INVITE's branch.
* Server side (§17.2.3): branch, sent-by and method of the top Via/request, where an ACK
  looks for the INVITE it acknowledges.  sent-by is part of the key because two clients
  could pick the same branch.
* Peers predating RFC 3261 (no ``z9hG4bK`` cookie in the branch) get the RFC 2543 rule: the
  Request-URI, From tag, To tag, Call-ID, CSeq number and the whole top Via.  The To tag
  of an ACK is the one the server put in its response, which the INVITE did not have,
  hence :func:`ack_keys` yields two candidates and the layer checks the tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ids import BRANCH_MAGIC
from ..message.model import Message, Request
from ..methods import ACK, INVITE

__all__ = ["TransactionKey", "client_key", "server_key", "cancel_target_key", "ack_keys"]


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """Identity of one transaction, as matching sees it.

    Exactly one of ``branch`` (RFC 3261 peers) or ``legacy`` (RFC 2543 peers) is set.
    """

    #: True for server transactions; a UA may hold a client and a server transaction with
    #: the same branch (a request looped back to itself), they must not collide.
    server: bool
    #: The request method; ACK is folded into INVITE on the server side.
    method: str
    #: Top Via branch, magic cookie included.
    branch: str = ""
    #: Top Via sent-by, host lower-cased (server side only).
    sent_by: str = ""
    #: RFC 2543 fields: Request-URI, To tag, From tag, Call-ID, CSeq number, top Via.
    legacy: tuple[str, ...] = ()
    #: The hash, computed once: a key is looked up in several tables per message.
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.server, self.method, self.branch, self.sent_by, self.legacy)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        side = "server" if self.server else "client"
        ident = self.branch if self.branch else "2543:" + "|".join(self.legacy)
        return f"{side}:{self.method}:{ident}"


def client_key(message: Message) -> TransactionKey | None:
    """Key of the client transaction a request creates or a response belongs to.

    None when the top Via has no branch: such a response cannot match a transaction we
    created, because we never send a request without one.  Raises ParseError on a message
    without a usable Via or CSeq.
    """
    branch = message.via.branch
    if not branch:
        return None
    method = message.method if isinstance(message, Request) else message.cseq.method
    return TransactionKey(False, method, branch=branch)


def _server_key(request: Request, method: str, to_tag: str | None) -> TransactionKey:
    via = request.via
    branch = via.branch
    if branch is not None and branch.startswith(BRANCH_MAGIC):
        return TransactionKey(True, method, branch=branch, sent_by=via.sent_by.lower())
    legacy = (
        request.uri_text,
        to_tag or "",
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        str(via),
    )
    return TransactionKey(True, method, legacy=legacy)


def server_key(request: Request) -> TransactionKey:
    """Key of the server transaction *request* creates or belongs to (ACK -> its INVITE).

    Raises ParseError when a header the rule needs is malformed.
    """
    method = INVITE if request.method == ACK else request.method
    return _server_key(request, method, request.to.tag)


def cancel_target_key(cancel: Request) -> TransactionKey:
    """Key of the INVITE server transaction a CANCEL refers to (§9.2).

    The CANCEL copies branch, sent-by, To and the CSeq number of the INVITE (§9.1), so the
    INVITE key follows from the CANCEL alone.
    """
    return _server_key(cancel, INVITE, cancel.to.tag)


def ack_keys(ack: Request) -> tuple[TransactionKey, ...]:
    """Candidate INVITE keys for an ACK, most specific first.

    With a branch this is one key.  For RFC 2543 peers the ACK's To tag may come from our
    response (initial INVITE, which had no To tag) or from the INVITE itself (re-INVITE);
    the caller must check that the first kind matches the tag of the response it sent.
    """
    key = server_key(ack)
    if key.branch or not key.legacy[1]:
        return (key,)
    return (key, _server_key(ack, INVITE, None))

