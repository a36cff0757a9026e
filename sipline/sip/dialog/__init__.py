"""Dialogs (RFC 3261 §12) and their usages: INVITE (§13-§14) and REFER (RFC 3515/3891).

``Dialog`` keeps the state every in-dialog request depends on (id, route set, remote
target, CSeq numbers, secure flag) and builds those requests; ``InviteUsage`` tracks
offer/answer and INVITE glare; :mod:`.refer` builds and reads transfer requests, their
NOTIFY progress reports and the Replaces header.  All of it is sans-I/O.
"""

from __future__ import annotations

from .dialog import Dialog, DialogId, DialogState, incoming_request_id, response_id
from .invite import InviteUsage, OfferState, Rejection, glare_retry_delay, glare_retry_range
from .refer import (
    SIPFRAG_TYPE,
    ReferProgress,
    ReferRequest,
    Replaces,
    find_replaced,
    notify_for,
    parse_notify,
    parse_refer,
    parse_replaces,
    parse_sipfrag,
    refer_headers,
    refer_target,
    sipfrag,
)

__all__ = [
    "Dialog",
    "DialogId",
    "DialogState",
    "InviteUsage",
    "OfferState",
    "ReferProgress",
    "ReferRequest",
    "Rejection",
    "Replaces",
    "SIPFRAG_TYPE",
    "find_replaced",
    "glare_retry_delay",
    "glare_retry_range",
    "incoming_request_id",
    "notify_for",
    "parse_notify",
    "parse_refer",
    "parse_replaces",
    "parse_sipfrag",
    "refer_headers",
    "refer_target",
    "response_id",
    "sipfrag",
]
