"""sipline.ops.workers: fork N workers, each with its place in the group; stop on failure."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from sipline.ops.config import Config
from sipline.ops.workers import _worker_config, serve_workers
from sipline.runtime import dispatch

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def config(tmp_path: Path, workers: int) -> Config:
    return dataclasses.replace(Config(), data_dir=tmp_path / "data", workers=workers)


def test_only_worker_zero_serves_admin(tmp_path: Path) -> None:
    base = config(tmp_path, 3)
    assert _worker_config(base, 0).admin.enabled and _worker_config(base, 0).workers == 1
    assert not _worker_config(base, 2).admin.enabled


def test_each_worker_runs_once_with_its_index(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()

    def run(cfg: Config, **options: Any) -> int:
        group = dispatch.current()
        assert group is not None and cfg.workers == 1 and options["setup_log"] is False
        # Every worker's local admin socket, bound on loopback before the fork.
        assert [sock.getsockname()[0] for sock in group.admin] == ["127.0.0.1"] * 3
        (seen / f"{group.index}-of-{group.count}").write_text(str(os.getpid()))
        return 0

    assert serve_workers(config(tmp_path, 3), run) == 0
    assert sorted(p.name for p in seen.iterdir()) == ["0-of-3", "1-of-3", "2-of-3"]
    assert (tmp_path / "data" / "secret").exists()  # created once, before the fork
    assert dispatch.current() is None


def test_a_worker_failing_at_start_stops_the_group(tmp_path: Path) -> None:
    def run(cfg: Config, **options: Any) -> int:
        group = dispatch.current()
        assert group is not None
        return 3 if group.index == 1 else 0

    assert serve_workers(config(tmp_path, 2), run) == 3


def test_one_worker_runs_in_process(tmp_path: Path) -> None:
    calls: list[Config] = []
    assert serve_workers(config(tmp_path, 1), lambda cfg, **o: calls.append(cfg) or 0) == 0
    assert len(calls) == 1
