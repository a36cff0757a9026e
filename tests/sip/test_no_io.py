"""The core stays sans-I/O: no module under sipline/sip may reach the outside.

Time, randomness, sockets, threads and processes are all forms of I/O for a
protocol core: they make behaviour depend on the world instead of on the
arguments.  The runtime injects them (``now``, ``IdSource``).  This test reads
every module's source with ``ast`` (nothing is imported, so an offending
module cannot hide behind an import error) and also checks layering: the core
imports only the standard library and itself.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "sipline" / "sip"

FORBIDDEN = frozenset({
    "asyncio", "socket", "ssl", "time", "random", "secrets", "select", "selectors",
    "threading", "subprocess", "logging.handlers", "os",
})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    package = _module_name(path)
    return package if path.name == "__init__.py" else package.rpartition(".")[0]


def _imports(source: str, package: str) -> list[tuple[int, str]]:
    """Every absolute module name imported by ``source``, with its line number.

    ``from pkg import name`` yields both ``pkg`` and ``pkg.name`` because the
    name may be a submodule (``from logging import handlers``).  Relative
    imports are resolved against ``package``.  Dynamic imports with a literal
    name (``importlib.import_module("socket")``) count too.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names
                         if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (name in {"import_module", "__import__"} and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)):
                found.append((node.lineno, first.value))
    return found


def _file_imports(path: Path) -> list[tuple[int, str]]:
    return _imports(path.read_text(encoding="utf-8"), _package_of(path))


def _core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _is_forbidden(module: str) -> bool:
    return any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN)


def _is_allowed_origin(module: str) -> bool:
    top = module.partition(".")[0]
    if top == "sipline":
        return module == "sipline.sip" or module.startswith("sipline.sip.")
    return top in sys.stdlib_module_names


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(CORE.parent.parent)}:{line}"


def test_core_found() -> None:
    assert (CORE / "__init__.py").is_file()
    assert len(_core_files()) > 1


def test_core_imports_no_io_modules() -> None:
    offences = [
        f"{_where(path, line)}: imports {module}"
        for path in _core_files()
        for line, module in _file_imports(path)
        if _is_forbidden(module)
    ]
    assert not offences, "sipline/sip must stay sans-I/O:\n" + "\n".join(offences)


def test_core_imports_only_stdlib_and_itself() -> None:
    # ``from pkg import name`` also reports ``pkg.name``; judging the origin
    # by the top-level package makes that harmless.
    offences = sorted({
        f"{_where(path, line)}: imports {module}"
        for path in _core_files()
        for line, module in _file_imports(path)
        if not _is_allowed_origin(module)
    })
    assert not offences, ("sipline/sip may import only the standard library and "
                          "sipline.sip:\n" + "\n".join(offences))


def test_detector_catches_each_form() -> None:
    # Guard the guard: every spelling of a forbidden import must be seen.
    samples = [
        "import socket",
        "import os.path",
        "from time import monotonic",
        "from logging import handlers",
        "import importlib\nimportlib.import_module('random')",
        "def later():\n    import asyncio",
    ]
    for source in samples:
        names = [name for _, name in _imports(source, "sipline.sip.message")]
        assert any(_is_forbidden(name) for name in names), (source, names)


def test_relative_imports_resolve_inside_the_package() -> None:
    names = {name for _, name in _imports("from ..errors import ParseError\n"
                                          "from . import uri\n"
                                          "from ...runtime import dns\n",
                                          "sipline.sip.message")}
    assert "sipline.sip.errors" in names
    assert "sipline.sip.message.uri" in names
    assert not _is_allowed_origin("sipline.runtime.dns")
    assert "sipline.runtime.dns" in names
