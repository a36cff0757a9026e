"""``python -m sipline``: the same entry point as the ``sipline`` console script.

Tests start the server as ``sys.executable -m sipline serve ...`` so that they
run exactly the interpreter and code under test, whatever is on PATH.
"""

from __future__ import annotations

import sys

from sipline.ops.cli import main

if __name__ == "__main__":
    sys.exit(main())
