"""Build hook: compile the message parser with mypyc when it can, stay pure Python otherwise.

Everything else about the package is declared in ``pyproject.toml``; this file only adds
the optional extension modules.  Why they are optional, and when they are built:

- The compiled modules are an optimisation of the proxy fast path (``bench/parse.py``),
  never a requirement: the same ``.py`` sources are the fallback and behave identically
  (``tests/sip`` runs against both builds).
- ``pip install .`` / ``pip wheel .`` compile when mypyc is importable and a C compiler
  and the Python headers are present; without them, or if compiling fails, the wheel is
  pure Python.  ``SIPLINE_MYPYC=1`` makes a failed compile an error (for the scripts that
  want the compiled build), ``SIPLINE_MYPYC=0`` skips compiling.
- Editable installs (``pip install -e .``, what ``scripts/setup`` puts in ``.venv``) are
  never compiled: setuptools would drop the ``.so`` files next to the sources, where they
  would shadow every later edit of the ``.py`` files.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent

#: The modules mypyc compiles: the parse -> typed read -> serialize path of every message.
#: The value classes (uri, params, address, fields) stay interpreted: their lazy values
#: swap ``__class__``, which native classes do not allow, and they are mostly regular
#: expressions, which mypyc does not make faster.
MYPYC_MODULES = [
    "sipline/sip/message/_scan.py",
    "sipline/sip/message/headers.py",
    "sipline/sip/message/model.py",
    "sipline/sip/message/parser.py",
]


def _say(text: str) -> None:
    print(f"sipline setup.py: {text}", file=sys.stderr)


def _can_compile() -> str | None:
    """None when a C extension can be built here, else why not."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc})"
    include = sysconfig.get_paths().get("include", "")
    if not (Path(include) / "Python.h").exists():
        return f"no Python headers ({include}/Python.h)"
    return None


def _ext_modules() -> list[object]:
    mode = os.environ.get("SIPLINE_MYPYC", "auto").strip().lower()
    if mode in ("0", "no", "off", "false"):
        return []
    required = mode in ("1", "yes", "on", "true")
    if any(cmd in sys.argv for cmd in ("editable_wheel", "develop")):
        _say("editable install: pure Python (no compiled modules in the source tree)")
        return []
    if sys.implementation.name != "cpython":
        return []
    reason = _can_compile()
    if reason is None:
        try:
            from mypyc.build import mypycify
        except ImportError:
            reason = "mypyc is not installed"
    if reason is not None:
        if required:
            raise SystemExit(f"sipline setup.py: SIPLINE_MYPYC=1 but {reason}")
        _say(f"building pure Python: {reason}")
        return []
    try:
        extensions = mypycify([str(Path(m)) for m in MYPYC_MODULES], opt_level="3",
                              group_name="sipline")
    except BaseException as exc:  # mypy reports type errors by exiting
        if required or isinstance(exc, KeyboardInterrupt):
            raise
        _say(f"building pure Python: mypyc failed ({exc!r})")
        return []
    for ext in extensions:
        # A failed C compile leaves the wheel pure Python instead of failing the install.
        ext.optional = not required
    _say(f"compiling {len(MYPYC_MODULES)} modules with mypyc")
    return list(extensions)


os.chdir(ROOT)  # mypycify takes paths relative to the project
setup(ext_modules=_ext_modules())
