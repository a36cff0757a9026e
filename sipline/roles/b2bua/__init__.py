"""The B2BUA/SBC role: trunks, two-legged calls, failover, limits and call records.

The rules are pure and live in :mod:`sipline.sip.b2bua`; this package runs them on the
asyncio runtime.  Start with :class:`~sipline.roles.b2bua.sbc.Sbc` and
:class:`~sipline.roles.b2bua.sbc.SbcOptions`.
"""

from __future__ import annotations

from .sbc import Sbc, SbcOptions

__all__ = ["Sbc", "SbcOptions"]
