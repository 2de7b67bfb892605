"""Integration tests on real models: the whole directory needs Hugging Face ``transformers``.

Without it every test module here is reported as one skip with the reason below, however
pytest is pointed at it (``pytest``, ``pytest tests/integration`` or the file itself). A
plain module-level ``pytest.importorskip`` in a conftest would crash pytest when the
directory is given on the command line, because that conftest is loaded before collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REASON = (
    "tests/integration runs real Hugging Face models and needs `transformers` "
    "(pip install transformers; CI installs it)"
)


class _NeedsTransformers(pytest.Module):
    """A test module that is one skip, its own imports never run, without transformers."""

    def collect(self) -> Any:
        pytest.importorskip("transformers", reason=REASON)
        return super().collect()


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    return _NeedsTransformers.from_parent(parent, path=module_path)
