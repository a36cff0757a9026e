"""Fixtures for user-agent tests: UAs on 127.0.0.1 with ephemeral SIP ports and
disjoint RTP ranges, always closed at the end of the test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sipline.roles.ua import UserAgent
from sipline.sip.timers import TimerConfig

_ranges = itertools.count(0)
FAST = TimerConfig(t1=0.1, t2=0.4, t4=0.5)


@pytest.fixture
async def make_ua() -> AsyncIterator[Callable[..., Any]]:
    made: list[UserAgent] = []

    async def factory(user: str, **kwargs: Any) -> UserAgent:
        base = 31000 + (next(_ranges) % 40) * 200
        kwargs.setdefault("rtp_ports", (base, base + 199))
        kwargs.setdefault("timers", FAST)
        ua = UserAgent(user, listen_host="127.0.0.1", **kwargs)
        await ua.start()
        made.append(ua)
        return ua

    yield factory
    for ua in made:
        await ua.close()
