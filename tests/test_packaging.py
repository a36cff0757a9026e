"""The distribution ships what users rely on: the console script and py.typed."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_console_script_declared() -> None:
    assert PYPROJECT["project"]["scripts"]["sipline"] == "sipline.ops.cli:main"


def test_console_script_installed() -> None:
    try:
        importlib.metadata.distribution("sipline")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("sipline is not installed (run scripts/setup)")
    scripts = importlib.metadata.entry_points(group="console_scripts", name="sipline")
    assert [ep.value for ep in scripts] == ["sipline.ops.cli:main"]


def test_py_typed_in_package() -> None:
    assert (importlib.resources.files("sipline") / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["sipline"]


def test_python_floor_is_311() -> None:
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_wheel_contains_py_typed_and_entry_point(tmp_path: Path) -> None:
    """Build a real wheel from a copy of the tree and look inside it."""
    setuptools = pytest.importorskip("setuptools")
    if importlib.util.find_spec("wheel") is None and \
            tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.skip("this setuptools cannot build wheels without the wheel package")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "sipline", source / "sipline",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path / "dist"
    out.mkdir()
    build = ("import sys; from setuptools import build_meta; "
             "print(build_meta.build_wheel(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", build, str(out)], cwd=source,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = out / result.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "sipline/py.typed" in names
        assert "sipline/sip/__init__.py" in names
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "[console_scripts]" in text
    assert "sipline = sipline.ops.cli:main" in text
