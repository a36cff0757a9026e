"""The registrar role: REGISTER in, final response out, bindings kept in storage.

Every SIP decision is made by the pure core (:mod:`sipline.sip.registrar` for §10.3,
:mod:`sipline.sip.auth_policy` for Digest); this class only sequences them around the two
things the core cannot do -- awaiting the stores and knowing where the request came from:

1. ``Require`` check (§10.3 step 2), then Digest authentication (step 3) with the HA1
   fetched from the subscriber store;
2. the To AOR must be one of our domains (step 5) and the authenticated user's own
   (step 4), else 403;
3. the decision runs inside :func:`sipline.storage.transact`, the store's compare-and-swap
   loop, so two REGISTERs for one AOR on two nodes cannot lose each other's update;
4. the response lists the bindings as stored.

The proxy reads bindings through :meth:`Registrar.lookup`; the server calls
:meth:`Registrar.purge` periodically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from ..sip.auth.header import Credentials
from ..sip.auth.server import DigestServer
from ..sip.auth_policy import (
    auth_failure_response,
    identity_matches,
)
from ..sip.errors import ParseError, UsageError
from ..sip.ids import IdSource
from ..sip.message.model import Request, Response
from ..sip.message.uri import parse_uri
from ..sip.methods import REGISTER
from ..sip.registrar import (
    ContactBinding,
    RegisterAccepted,
    RegisterDecision,
    RegisterRejected,
    RegistrarPolicy,
    build_register_response,
    canonical_aor,
    check_require,
    decide_register,
    http_date,
    register_aor,
    storage_failure,
    too_many_bindings,
    user_agent_of,
)
from ..storage import (
    Binding,
    BindingChanges,
    BindingSet,
    LocationStore,
    Source,
    StaleBindingSet,
    StorageError,
    SubscriberStore,
    TooManyBindings,
    transact,
)
from .authn import challenge_now, verify_credentials

__all__ = ["Registrar", "RegistrarStores"]

log = logging.getLogger("sipline.registrar")


class RegistrarStores(Protocol):
    """The two stores the registrar needs (``sipline.storage.Storage`` fits)."""

    @property
    def location(self) -> LocationStore: ...
    @property
    def subscribers(self) -> SubscriberStore: ...


class _Refused(Exception):
    """Carries a rejection out of ``transact``'s decide callback, which aborts the write."""

    def __init__(self, decision: RegisterRejected) -> None:
        super().__init__(decision.log)
        self.decision = decision


class _Unchanged(Exception):
    """Carries a decision that writes nothing (a query) out of an atomic update."""

    def __init__(self, decision: RegisterAccepted) -> None:
        super().__init__("nothing to write")
        self.decision = decision


class Registrar:
    """Handles REGISTER for the domains of ``policy`` (RFC 3261 §10.3).

    ``server`` issues and checks nonces for one realm; identities are checked against
    ``identity_domain`` (default: the realm, which is the domain unless configured
    otherwise).  ``wall_clock`` gives Unix time for the Date header (None omits it):
    ``now`` is the caller's clock and need not be Unix time.  ``nonce_binding`` may tie
    nonces to the request's source (e.g. ``str``); the default leaves them unbound so a
    NAT rebinding does not invalidate a nonce.
    """

    def __init__(
        self,
        storage: RegistrarStores,
        server: DigestServer,
        policy: RegistrarPolicy,
        ids: IdSource,
        *,
        node_id: str | None = None,
        identity_domain: str | None = None,
        wall_clock: Callable[[], float] | None = time.time,
        nonce_binding: Callable[[Source], str] | None = None,
        attempts: int = 8,
    ) -> None:
        self._location = storage.location
        self._subscribers = storage.subscribers
        self._server = server
        self.policy = policy
        self._ids = ids
        self._node_id = node_id
        self._identity_domain = identity_domain if identity_domain is not None else server.realm
        self._wall_clock = wall_clock
        self._nonce_binding = nonce_binding
        self._attempts = attempts
        self._date_second = -1
        self._date_text = ""

    # -- REGISTER -----------------------------------------------------------------------

    def answer_now(self, request: Request, origin_source: Source, now: float) -> Response | Credentials:
        """What needs no store: the final response to a REGISTER refused by its Require or
        carrying no credentials for our realm (the 401 that starts every registration),
        else the credentials :meth:`handle` must check.  Lets the server answer at once,
        without a task."""
        if request.method != REGISTER:
            raise UsageError(f"the registrar handles REGISTER, not {request.method}")
        refusal = check_require(request, self.policy)
        if refusal is not None:
            return self._respond(request, refusal, now)
        credentials, refused = challenge_now(request, self._server, now, proxy=False,
                                             binding=self._binding_of(origin_source))
        if refused is None:
            assert credentials is not None
            return credentials
        log.info("[%s] REGISTER not authenticated: %s", _call_id(request), refused.reason)
        return auth_failure_response(request, refused, proxy=False, to_tag=self._ids.tag())

    def _binding_of(self, origin_source: Source) -> str:
        return self._nonce_binding(origin_source) if self._nonce_binding else ""

    async def handle(
        self,
        request: Request,
        origin_source: Source,
        now: float,
        connection_id: str | None = None,
        credentials: Credentials | None = None,
    ) -> Response:
        """The final response to one REGISTER; bindings are committed before it is built.

        ``credentials``: what :meth:`answer_now` returned for this request, if it was asked.
        """
        if credentials is None:
            early = self.answer_now(request, origin_source, now)
            if isinstance(early, Response):
                return early
            credentials = early
        result = await verify_credentials(request, credentials, self._server, self._subscribers, now,
                                          binding=self._binding_of(origin_source))
        if not result.ok:
            log.info("[%s] REGISTER not authenticated: %s", _call_id(request), result.reason)
            return auth_failure_response(request, result, proxy=False, to_tag=self._ids.tag())

        aor = register_aor(request, self.policy)
        if isinstance(aor, RegisterRejected):
            return self._respond(request, aor, now)
        assert result.username is not None
        if not identity_matches(request, result.username, self._identity_domain):
            log.info("[%s] %s may not register %s", _call_id(request), result.username, aor)
            return self._respond(request, RegisterRejected(403, "Forbidden"), now)

        decision = await self._commit(request, aor, origin_source, now, connection_id)
        if isinstance(decision, RegisterRejected):
            log.info("[%s] REGISTER %s refused: %s", _call_id(request), aor, decision.log)
        return self._respond(request, decision, now)

    async def _commit(
        self,
        request: Request,
        aor: str,
        source: Source,
        now: float,
        connection_id: str | None,
    ) -> RegisterDecision:
        """Decide on a snapshot; write through compare-and-swap only if something changes."""
        atomic = hasattr(self._location, "update_atomically")
        try:
            if not atomic:
                # Most REGISTERs change something (a refresh moves the expiry), so a store
                # that decides and writes under one lock skips this read.
                first = decide_register(request, await self._location.snapshot(aor, now), now, self.policy)
                if isinstance(first, RegisterRejected) or first.changes_nothing:
                    return first
            accepted: list[RegisterAccepted] = []

            def decide(current: BindingSet) -> BindingChanges:
                decision = decide_register(request, current, now, self.policy)
                if isinstance(decision, RegisterRejected):
                    raise _Refused(decision)
                if atomic and decision.changes_nothing:
                    raise _Unchanged(decision)
                accepted.append(decision)
                return self._changes(request, decision, source, connection_id)

            stored = await transact(self._location, aor, decide, now, attempts=self._attempts)
        except _Refused as refused:
            return refused.decision
        except _Unchanged as unchanged:
            return unchanged.decision
        except TooManyBindings:
            return too_many_bindings()
        except StaleBindingSet:
            log.warning("[%s] %s: lost %d compare-and-swap races", _call_id(request), aor,
                        self._attempts)
            return storage_failure()
        except StorageError as exc:
            log.error("[%s] %s: storage failed: %s", _call_id(request), aor, exc)
            return storage_failure()
        # List what the store now holds, which is what the proxy will see.
        return RegisterAccepted(
            aor,
            bindings=tuple(stored.bindings),
            path=accepted[-1].path,
            require_outbound=accepted[-1].require_outbound,
        )

    def _changes(
        self,
        request: Request,
        decision: RegisterAccepted,
        source: Source,
        connection_id: str | None,
    ) -> BindingChanges:
        user_agent = user_agent_of(request)
        return BindingChanges(
            upsert=tuple(
                self._binding(decision.aor, c, source, connection_id, user_agent)
                for c in decision.upsert
            ),
            remove=decision.remove,
            remove_all=decision.remove_all,
        )

    def _binding(
        self,
        aor: str,
        c: ContactBinding,
        source: Source,
        connection_id: str | None,
        user_agent: str,
    ) -> Binding:
        return Binding(
            aor=aor,
            contact=c.contact,
            expires_at=c.expires_at,
            q=c.q,
            call_id=c.call_id,
            cseq=c.cseq,
            path=c.path,
            instance_id=c.instance_id,
            reg_id=c.reg_id,
            received=source,
            connection_id=connection_id,
            node_id=self._node_id,
            user_agent=user_agent,
            updated_at=c.updated_at,
        )

    def _respond(self, request: Request, decision: RegisterDecision, now: float) -> Response:
        return build_register_response(request, decision, now, self._ids.tag(), date=self._date())

    def _date(self) -> str | None:
        """The Date header value, formatted once per second (it has one-second resolution)."""
        if self._wall_clock is None:
            return None
        second = int(self._wall_clock())
        if second != self._date_second:
            self._date_second = second
            self._date_text = http_date(second)
        return self._date_text

    # -- for the proxy and the server ---------------------------------------------------

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of *aor* (any SIP URI spelling of it), best q first."""
        try:
            canonical = canonical_aor(parse_uri(aor))
        except ParseError:
            canonical = None
        return await self._location.lookup(canonical or aor, now)

    async def purge(self, now: float) -> int:
        """Delete expired bindings; returns how many went (for the server's periodic task)."""
        return await self._location.purge_expired(now)


def _call_id(request: Request) -> str:
    try:
        return request.call_id
    except ParseError:
        return "-"
