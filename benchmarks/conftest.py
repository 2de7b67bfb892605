"""Shared setup for the inspectnn benchmarks.

Run them (``testpaths`` in pyproject only lists ``tests``, so name the folder)::

    python -m pytest benchmarks -q -p no:cacheprovider --benchmark-only \
        --benchmark-json=benchmarks/results/core.json
    python benchmarks/summarize.py benchmarks/results/core.json

The memory test is an ordinary test (``--benchmark-only`` skips it)::

    python -m pytest benchmarks -q -p no:cacheprovider --benchmark-skip -s
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
RESULTS = Path(__file__).resolve().parent / "results"

# The model zoo lives in tests/models.py; make ``import models`` work whether or
# not tests/ is a package and whatever pytest's import mode is.
for path in (str(ROOT), str(TESTS), str(Path(__file__).resolve().parent)):
    if path not in sys.path:
        sys.path.insert(0, path)
