"""The build under test is the one asked for.

``scripts/setup --mypyc`` builds the compiled parser outside the source tree, and the
suite is run a second time against it (see DEVELOPERS.md).  Without this check a path
mistake would silently test the pure-Python sources twice.  ``SIPLINE_EXPECT_BUILD``
names the build the run wants ("mypyc" or "pure"); unset, any build will do.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sipline.sip import message
from sipline.sip.message import headers, model, parser

SOURCES = Path(__file__).resolve().parents[3] / "sipline" / "sip" / "message"


def test_build_names_what_is_loaded() -> None:
    compiled = [m for m in (parser, model, headers) if not (m.__file__ or "").endswith(".py")]
    assert message.BUILD == ("mypyc" if compiled else "pure Python")
    if compiled:  # all of the compiled group or none of it
        assert len(compiled) == 3


def test_expected_build() -> None:
    expected = os.environ.get("SIPLINE_EXPECT_BUILD", "")
    if not expected:
        pytest.skip("SIPLINE_EXPECT_BUILD not set: any build is fine")
    assert message.BUILD == {"mypyc": "mypyc", "pure": "pure Python"}[expected]


def test_no_compiled_module_shadows_the_sources() -> None:
    # Compiled modules live in a wheel or in build/, never next to the .py files we edit.
    stale = sorted(p.name for p in SOURCES.iterdir() if p.suffix in (".so", ".pyd"))
    assert stale == []


def test_to_bytes_is_bytes() -> None:
    # A method of its own (mypyc compiles no class-level alias of __bytes__).
    data = (b"OPTIONS sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK.1\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.net>\r\n"
            b"Call-ID: x@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    msg = parser.parse_message(data)
    assert msg.to_bytes() == bytes(msg) == data
