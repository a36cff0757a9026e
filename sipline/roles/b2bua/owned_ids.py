"""Call-IDs this worker owns, for the calls the SBC originates under ``workers = N``.

With several workers (:mod:`sipline.runtime.dispatch`) every message goes to the worker
its Call-ID hashes to.  A call the SBC *receives* is already there; but its outbound leg,
its OPTIONS pings and its carrier REGISTERs get Call-IDs the SBC makes up, and the
carrier's in-dialog requests (BYE, re-INVITE) and stray responses for them arrive on the
shared port and are handed to whichever worker that new Call-ID names -- usually one that
has never heard of the leg.  So the worker keeps only the Call-IDs that hash to itself:
random ids are drawn until one does, N draws on average (microseconds), and the ids stay
as unguessable as before (a uniformly random id conditioned on its hash bucket).
"""

from __future__ import annotations

from ...runtime.dispatch import call_id_owner
from ...sip.ids import IdSource

__all__ = ["OwnedIdSource", "owned_ids"]

#: Give up after this many draws (a broken source repeating itself must not hang the loop).
MAX_DRAWS = 10_000


class OwnedIdSource:
    """An :class:`IdSource` whose Call-IDs hash to worker ``index`` of ``count``; every
    other identifier comes straight from ``inner``."""

    __slots__ = ("_inner", "index", "count")

    def __init__(self, inner: IdSource, index: int, count: int) -> None:
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"worker {index} of {count} does not exist")
        self._inner = inner
        self.index = index
        self.count = count

    def token(self, nbytes: int = 8) -> str:
        return self._inner.token(nbytes)

    def branch(self) -> str:
        return self._inner.branch()

    def tag(self) -> str:
        return self._inner.tag()

    def call_id(self) -> str:
        for _ in range(MAX_DRAWS):
            candidate = self._inner.call_id()
            if call_id_owner(candidate, self.count) == self.index:
                return candidate
        raise RuntimeError(f"no Call-ID for worker {self.index} of {self.count} in {MAX_DRAWS} draws")


def owned_ids(inner: IdSource, index: int, count: int) -> IdSource:
    """``inner`` itself for a single process, else an :class:`OwnedIdSource`."""
    return inner if count <= 1 else OwnedIdSource(inner, index, count)
