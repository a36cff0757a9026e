"""Proxy core (RFC 3261 §16): validation, routing edits, the forking response context, decisions.

Sans-I/O like the rest of :mod:`sipline.sip`: the proxy role (``sipline.roles.proxy``) feeds
these with received messages, timer deadlines and location lookups, and performs the
actions they return.  The order of use for one request:

1. :func:`validate_request` (§16.3), then :func:`preprocess_routes` (§16.4);
2. a routing decision (:mod:`.policy`, §16.5);
3. a :class:`ResponseContext` (§16.7) whose :class:`ForwardRequest` actions are built with
   :func:`prepare_forward` (§16.6) and whose responses come back through
   :meth:`ResponseContext.on_response`.
"""

from .context import (
    DEFAULT_MAX_TARGETS,
    BranchState,
    BranchStatus,
    CancelBranch,
    ContextState,
    Done,
    ForkTarget,
    ForwardRequest,
    ProxyAction,
    ResponseContext,
    SendUpstream,
)
from .policy import (
    Continue,
    Decision,
    ProxyTo,
    Redirect,
    Relay,
    Reply,
    RouteFunction,
    RoutingContext,
    StaticRoute,
    default_route,
)
from .routing import (
    is_own_record_route,
    next_hop,
    prepare_forward,
    preprocess_routes,
    process_response,
    record_route_values,
    rewrite_record_route,
)
from .validate import LOOP_HASH_LENGTH, compose_branch, loop_branch, split_branch, validate_request

__all__ = [
    "BranchState",
    "BranchStatus",
    "CancelBranch",
    "ContextState",
    "Continue",
    "DEFAULT_MAX_TARGETS",
    "Decision",
    "Done",
    "ForkTarget",
    "ForwardRequest",
    "LOOP_HASH_LENGTH",
    "ProxyAction",
    "ProxyTo",
    "Redirect",
    "Relay",
    "Reply",
    "ResponseContext",
    "RouteFunction",
    "RoutingContext",
    "SendUpstream",
    "StaticRoute",
    "compose_branch",
    "default_route",
    "is_own_record_route",
    "loop_branch",
    "next_hop",
    "prepare_forward",
    "preprocess_routes",
    "process_response",
    "record_route_values",
    "rewrite_record_route",
    "split_branch",
    "validate_request",
]
