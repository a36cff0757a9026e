"""Fixtures for the SBC tests: raw UDP peers and SBCs on loopback, always closed."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbc_peers import RawPeer  # noqa: E402

from sipline.roles.b2bua.sbc import Sbc, SbcOptions  # noqa: E402


@pytest.fixture
async def peers() -> AsyncIterator[Callable[[str], RawPeer]]:
    made: list[RawPeer] = []

    def make(name: str) -> RawPeer:
        peer = RawPeer(name)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()


@pytest.fixture
async def run_sbc() -> AsyncIterator[Callable[..., Any]]:
    started: list[Sbc] = []

    async def start(options: SbcOptions) -> Sbc:
        sbc = Sbc(options)
        await sbc.start()
        started.append(sbc)
        return sbc

    yield start
    for sbc in started:
        await sbc.stop()


