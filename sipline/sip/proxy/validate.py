"""Request validation of a proxy (RFC 3261 §16.3) and the loop-detecting branch (§16.6 step 8).

A proxy checks six things before it routes a request.  Syntax (step 1) is the parser's job
and Proxy-Authorization (step 6) the authentication policy's; this module does the rest:
Request-URI scheme (416), Max-Forwards (483), loops (482) and Proxy-Require (420).  Each
failure is raised as the matching :class:`~sipline.sip.errors.ProtocolError`, so the role turns
any of them into a response with one ``except``.

Loops versus spirals.  A request may legitimately come back to us with a different
Request-URI (a spiral: alice@example.com forwarded to a voicemail domain that we also serve).
It has only *looped* if everything that decides its routing is unchanged.  So the branch of
every Via we add ends with a hash of exactly those fields (§16.6 step 8), and a returning
request is hashed again and compared.

One subtlety the RFC leaves open: it names "the topmost Via" among the hashed fields, but when
a request loops back its topmost Via is the one of the element that sent it back, not the one
we hashed the first time.  We therefore hash the Via value *just below our own* in the
returning request, which is exactly the topmost Via of the request as we first received it
(downstream elements never touch Via values below theirs).  ``via_index`` says where that is.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from ..errors import (
    BadExtension,
    LoopDetected,
    ParseError,
    TooManyHops,
    UnsupportedURIScheme,
    UsageError,
)
from ..ids import BRANCH_MAGIC
from ..message.model import Request
from ..message.uri import SipURI, TelURI
from ..methods import ACK, CANCEL, OPTIONS

__all__ = [
    "validate_request",
    "loop_branch",
    "compose_branch",
    "split_branch",
    "LOOP_HASH_LENGTH",
]

#: Hex digits of the loop-detection part of our branches (80 bits: collisions between a
#: spiral and a loop of the same call are then out of reach).
LOOP_HASH_LENGTH = 20

# The loop part is appended after this separator; '.' is a token character (§25.1) that the
# hex digest never contains, so the split is unambiguous.
_SEPARATOR = "."
_HEX = frozenset("0123456789abcdef")


def loop_branch(request: Request, secret: bytes = b"", *, via_index: int = 0) -> str:
    """The loop-detection part of a branch: a keyed hash of what routes *request*.

    Hashed (§16.6 step 8): To tag, From tag, Call-ID, CSeq number, the Request-URI as
    received, the Via value at *via_index* (0 for a request we are about to forward; see the
    module docstring for the returning case), and every Route, Proxy-Require and
    Proxy-Authorization value.  The method is left out on purpose: a CANCEL or non-2xx ACK
    must produce the same branch as its INVITE.  Call this on the request as received,
    before :func:`~.routing.preprocess_routes` changes Route or the Request-URI.

    *secret* keys the hash so a peer cannot predict our branches and forge a "loop" that
    makes us reject a call.
    """
    headers = request.headers
    vias = headers.get_all("Via")
    via = vias[via_index] if 0 <= via_index < len(vias) else ""
    parts = [
        request.to.tag or "",
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        request.uri_text,
        via,
        "\x01".join(headers.get_all("Route")),
        "\x01".join(headers.get_all("Proxy-Require")),
        "\x01".join(headers.get_fields("Proxy-Authorization")),
    ]
    data = "\x00".join(parts).encode("utf-8", "surrogateescape")
    return hmac.digest(secret, data, "sha256").hex()[:LOOP_HASH_LENGTH]  # one-shot HMAC


def compose_branch(unique: str, loop: str) -> str:
    """Our branch: a fresh RFC 3261 branch (from the IdSource) followed by the loop hash.

    §16.6 step 8 asks for a branch "separable into two parts": the unique part satisfies
    §8.1.1.7 (magic cookie, unique per transaction), the second part detects loops.
    """
    if not unique.startswith(BRANCH_MAGIC):
        raise UsageError(f"branch {unique!r} lacks the RFC 3261 magic cookie {BRANCH_MAGIC}")
    return f"{unique}{_SEPARATOR}{loop}"


def split_branch(branch: str | None) -> tuple[str | None, str | None]:
    """``(unique, loop)`` parts of a branch; ``loop`` is None when it carries no loop hash."""
    if branch is None:
        return None, None
    unique, sep, loop = branch.rpartition(_SEPARATOR)
    if sep and len(loop) == LOOP_HASH_LENGTH and _HEX.issuperset(loop):
        return unique, loop
    return branch, None


def _own_via(sent_by: str, host: str, own: Collection[str]) -> bool:
    return sent_by.lower() in own or host.lower() in own


def validate_request(
    request: Request,
    *,
    own_addresses: Collection[str] = (),
    supported_options: Collection[str] = frozenset(),
    loop_secret: bytes | None = b"",
) -> bool:
    """Apply RFC 3261 §16.3 steps 2 to 5; raise the error to answer with.

    Returns True when the request is an OPTIONS with Max-Forwards 0: §16.3 step 3 lets the
    proxy answer it itself (this is what SIP "traceroute" relies on), so the caller must
    respond as a UAS instead of forwarding.  Returns False for a request to route.

    *own_addresses* are the Via sent-by values we insert (``"10.0.0.1:5060"``, or a bare host
    to match any port), lower case.  *loop_secret* is the key given to :func:`loop_branch`
    when building our branches; None disables loop detection (step 4 is optional).

    Raises :class:`UnsupportedURIScheme` (416), :class:`ParseError` (400, a Request-URI with
    headers, which §19.1.5 forbids there), :class:`TooManyHops` (483), :class:`LoopDetected`
    (482) and :class:`BadExtension` (420, ``unsupported`` lists the tags for Unsupported).
    ACK and CANCEL skip the Proxy-Require check: §8.2.2.3 forbids acting on it for them.
    """
    # Step 2: Request-URI scheme.
    uri = request.uri
    if not isinstance(uri, (SipURI, TelURI)):
        raise UnsupportedURIScheme(f"Request-URI scheme {uri.scheme!r} is not supported")
    if isinstance(uri, SipURI) and uri.headers:
        raise ParseError("Request-URI must not contain headers (RFC 3261 §19.1.5)")

    # Step 3: Max-Forwards.
    max_forwards = request.max_forwards
    if max_forwards == 0:
        if request.method == OPTIONS:
            return True
        raise TooManyHops(f"Max-Forwards reached 0 for {request.method}", header="Max-Forwards")

    # Step 4: loop detection.
    if loop_secret is not None and own_addresses:
        own = {a.lower() for a in own_addresses}
        for index, via in enumerate(request.vias):
            if not _own_via(via.sent_by, via.host, own):
                continue
            _, loop = split_branch(via.branch)
            if loop is not None and hmac.compare_digest(
                loop, loop_branch(request, loop_secret, via_index=index + 1)
            ):
                raise LoopDetected(f"request looped back through Via {via.sent_by}", header="Via")

    # Step 5: Proxy-Require.
    if request.method not in (ACK, CANCEL):
        supported = {tag.lower() for tag in supported_options}
        unsupported = tuple(t for t in request.proxy_require if t.lower() not in supported)
        if unsupported:
            raise BadExtension(
                f"unsupported Proxy-Require option(s): {', '.join(unsupported)}",
                unsupported=unsupported,
                header="Proxy-Require",
            )
    return False
