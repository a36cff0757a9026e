"""Status codes and their reason phrases (RFC 3261 §21 and the registered extensions).

A reason phrase is for humans only: no element may act on it (§7.2).  We still want every
response we originate to carry the registered text, so operators reading a trace see
"486 Busy Here" rather than "486 ", and so the transaction and dialog layers can build
responses from a bare code.  Codes are grouped by the RFC that defined them, which is
also where to look when one needs explaining.
"""

from __future__ import annotations

from types import MappingProxyType

from .errors import UsageError

__all__ = ["REASON_PHRASES", "reason_phrase", "status_class"]

_PHRASES: dict[int, str] = {
    # 1xx provisional (RFC 3261 §21.1; 199 RFC 6228)
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    # 2xx success (§21.2; 202 RFC 3265, 204 RFC 5839)
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    # 3xx redirection (§21.3)
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    # 4xx request failure (§21.4 and extensions)
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",  # RFC 3903
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",  # RFC 4412
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",  # RFC 4028
    423: "Interval Too Brief",
    424: "Bad Location Information",  # RFC 6442
    425: "Bad Alert Message",  # RFC 8876
    428: "Use Identity Header",  # RFC 8224
    429: "Provide Referrer Identity",  # RFC 3892
    430: "Flow Failed",  # RFC 5626
    433: "Anonymity Disallowed",  # RFC 5079
    436: "Bad Identity Info",  # RFC 8224
    437: "Unsupported Credential",  # RFC 8224
    438: "Invalid Identity Header",  # RFC 8224
    439: "First Hop Lacks Outbound Support",  # RFC 5626
    440: "Max-Breadth Exceeded",  # RFC 5393
    469: "Bad Info Package",  # RFC 6086
    470: "Consent Needed",  # RFC 5360
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",  # RFC 6665
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",  # RFC 3329
    # 5xx server failure (§21.5 and extensions)
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",  # RFC 8599
    580: "Precondition Failure",  # RFC 3312
    # 6xx global failure (§21.6 and extensions)
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",  # RFC 8197
    608: "Rejected",  # RFC 8688
}

#: Read-only view of every code we know a registered phrase for.
REASON_PHRASES = MappingProxyType(_PHRASES)

# An unknown code is treated as the x00 of its class (§8.1.3.2, §21); the phrase says so.
_CLASS_PHRASES = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Request Failure",
    5: "Server Failure",
    6: "Global Failure",
}


def status_class(code: int) -> int:
    """The class digit (1-6) of a status code; raises UsageError outside 100-699."""
    if not 100 <= code <= 699:
        raise UsageError(f"status code {code} outside 100-699")
    return code // 100


def reason_phrase(code: int) -> str:
    """The registered reason phrase, or a phrase naming the class for unregistered codes."""
    phrase = _PHRASES.get(code)
    if phrase is not None:
        return phrase
    return _CLASS_PHRASES[status_class(code)]
