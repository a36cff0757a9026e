"""Answering messages we could not parse.

A malformed request still deserves a response that says what is wrong (RFC 3261 §8.2 and
§16.3), or the client will retransmit it for 32 seconds.  But the typed parser has just
refused the message, so this module builds the response from the raw text: it copies the
Via, From, To, Call-ID and CSeq lines exactly as received (they are what the client matches
the response on) and puts the fault in the reason phrase.  Responses and ACKs are never
answered (§17.1.1.3, §8.2): for them this returns None and the caller drops the message.
"""

from __future__ import annotations

import re

from ..errors import ProtocolError
from .headers import HeaderField, Headers, canonical_key
from .model import Response

__all__ = ["rejection_for", "reason_phrase_for"]

_REQUEST_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+) \S+ SIP/\d+\.\d+\Z", re.IGNORECASE)
_COPIED = ("via", "from", "to", "call-id", "cseq")
_STANDARD = {400: "Bad Request", 413: "Request Entity Too Large", 416: "Unsupported URI Scheme",
             420: "Bad Extension", 482: "Loop Detected", 483: "Too Many Hops",
             505: "Version Not Supported"}
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def reason_phrase_for(error: ProtocolError) -> str:
    """``Bad Request (missing Call-ID header)``: the standard phrase plus the fault."""
    base = _STANDARD.get(error.status, "Bad Request")
    detail = _UNSAFE.sub("?", error.reason)[:120]
    return f"{base} ({detail})" if detail else base


def rejection_for(data: bytes, error: ProtocolError, to_tag: str | None = None) -> Response | None:
    """A response to the malformed request *data*, or None if it must not be answered."""
    end = data.find(b"\r\n\r\n")
    head = data[: end if end >= 0 else len(data)].lstrip(b"\r\n")
    text = head[:16384].decode("utf-8", "surrogateescape")
    lines = text.replace("\r\n", "\n").split("\n")
    match = _REQUEST_LINE.match(lines[0])
    if match is None or match.group(1) == "ACK":
        return None
    fields: list[HeaderField] = []
    for line in lines[1:]:
        if not line or line[0] in " \t":
            continue  # continuation lines: we copy only simple single-line fields
        name, colon, value = line.partition(":")
        if not colon:
            continue
        key = canonical_key(name.strip())
        if key in _COPIED:
            if key == "to" and to_tag is not None and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value.strip()};tag={to_tag}"
                fields.append(HeaderField("To", value))
            else:
                fields.append(HeaderField(name.strip(), value.strip()))
    if not any(f.key == "via" for f in fields):
        return None  # no way to route the response back
    response = Response(error.status, reason_phrase_for(error), Headers(fields))
    response.body = b""
    return response
