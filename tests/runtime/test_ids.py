"""SecureIdSource: hex of the right length, no repeats across pool refills, none after fork."""

from __future__ import annotations

import os

import pytest

from sipline.runtime.ids import SecureIdSource
from sipline.sip.ids import BRANCH_MAGIC


def test_lengths_and_alphabet() -> None:
    ids = SecureIdSource()
    assert ids.branch().startswith(BRANCH_MAGIC) and len(ids.branch()) == len(BRANCH_MAGIC) + 16
    assert len(ids.tag()) == 12 and len(ids.call_id()) == 24 and len(ids.token(3)) == 6
    assert len(ids.token(5000)) == 10000  # larger than one pool
    int(ids.call_id(), 16)


def test_no_repeats_across_refills() -> None:
    ids = SecureIdSource()
    seen = {ids.tag() for _ in range(5000)}  # ~7 pool refills
    assert len(seen) == 5000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_child_does_not_reuse_parents_pool() -> None:
    ids = SecureIdSource()
    ids.tag()  # fill the pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write, ids.tag().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != ids.tag()
