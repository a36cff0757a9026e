"""Fixtures for the operations layer: a predictable machine and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sipline.ops import config as config_module

FAKE_DOMAINS = ("pbx", "pbx.example.test", "192.0.2.10", "127.0.0.1")


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Default domains independent of the host, and no SIPLINE_* leaking from outside."""
    monkeypatch.setattr(config_module, "default_domains", lambda: FAKE_DOMAINS)
    for name in list(os.environ):
        if name.startswith("SIPLINE_") or name == "NO_COLOR":
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def machine_domains() -> tuple[str, ...]:
    """What default_domains() returns during these tests."""
    return FAKE_DOMAINS
