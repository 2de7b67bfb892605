"""Every example in the package's docstrings runs and prints what it says.

One test per module under ``inspectnn/``, found from the files themselves so a new module
is covered without being listed. Each runs in its own temporary directory (examples such as
``inspectnn.render(..., path="lin.dot")`` write files) and with no GPU: importing every
module here is also the check that none needs an optional dependency to import.
"""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "inspectnn"


def _module_names() -> list[str]:
    """Dotted names of every module in the package, from its ``.py`` files.

    ``__main__.py`` is left out: importing it runs the command line (as pytest's own
    ``--doctest-modules`` leaves it out).
    """
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _module_names()


def _examples(name: str) -> list[doctest.DocTest]:
    """The doctests of module ``name`` that hold at least one example."""
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests_pass(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in _examples(name):
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed:\n" + (
        out.getvalue()
    )


def test_the_package_has_doctests_to_run() -> None:
    """Guards the test above against finding nothing (a wrong path, a broken finder)."""
    assert "inspectnn.renderers.table" in MODULES and "inspectnn" in MODULES
    documented = {n for n in MODULES if _examples(n)}
    expected = {"inspectnn", "inspectnn.api", "inspectnn.renderers.table", "inspectnn.draw"}
    assert expected <= documented
