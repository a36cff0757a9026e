"""SIP messages: parsing, lossless serialisation, typed headers, URIs and framing."""

from .address import NameAddr, parse_name_addr, parse_name_addr_list
from .fields import CSeq, Via, parse_cseq, parse_via
from .framer import KeepAlivePing, KeepAlivePong, StreamFramer
from .headers import HeaderField, Headers, canonical_key
from .model import Message, Request, Response
from .params import Params
from .parser import parse_message, safe_parse, validate
from .uri import URI, AbsoluteURI, SipURI, TelURI, parse_uri
from . import parser as _parser

#: Which build of the parser is running: "mypyc" when setup.py compiled the message
#: modules (a wheel built where a C compiler was found), "pure Python" otherwise
#: (editable installs always).  Benchmarks and the two-build test run report it.
BUILD = "pure Python" if _parser.__file__.endswith(".py") else "mypyc"

__all__ = [
    "BUILD",
    "AbsoluteURI",
    "CSeq",
    "HeaderField",
    "Headers",
    "KeepAlivePing",
    "KeepAlivePong",
    "Message",
    "NameAddr",
    "Params",
    "Request",
    "Response",
    "SipURI",
    "StreamFramer",
    "TelURI",
    "URI",
    "Via",
    "canonical_key",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_uri",
    "parse_via",
    "safe_parse",
    "validate",
]
