"""The public API is explicit: __all__ is sorted and is exactly what the package exports."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import inspectnn

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_and_complete() -> None:
    assert inspectnn.__all__ == sorted(inspectnn.__all__)
    public = {name for name in vars(inspectnn) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(inspectnn, name)).__name__ == "module"}
    assert set(inspectnn.__all__) - {"__version__"} == public - modules
    for name in inspectnn.__all__:
        assert hasattr(inspectnn, name)


def test_exception_tree() -> None:
    assert issubclass(inspectnn.InvalidInputError, ValueError)
    assert issubclass(inspectnn.InvalidInputError, inspectnn.InspectnnError)
    assert issubclass(inspectnn.ForwardError, RuntimeError)
    assert issubclass(inspectnn.ForwardError, inspectnn.InspectnnError)
    assert issubclass(inspectnn.SpecError, inspectnn.InvalidInputError)
    assert issubclass(inspectnn.LayerNotFoundError, inspectnn.InvalidInputError)
    assert issubclass(inspectnn.LayerNotFoundError, KeyError)
    assert issubclass(inspectnn.DependencyError, RuntimeError)
    assert issubclass(inspectnn.DependencyError, inspectnn.InspectnnError)


def test_render_is_the_function_and_the_renderers_are_their_own_package() -> None:
    import torch

    import inspectnn.renderers.table as t  # failed with ImportError when both were "render"

    report = inspectnn.inspect(torch.nn.Linear(2, 2), torch.randn(1, 2))
    str(report), report.to_json(), report.graph()
    importlib.import_module("inspectnn.renderers.graph")  # a late submodule import
    assert callable(inspectnn.render) and inspectnn.render.__module__ == "inspectnn.draw"
    assert t.render_table(report) == str(report)
    assert inspectnn.renderers.table is t
    assert inspectnn.renderers.markdown.render_markdown(report).startswith("| ")
    package = Path(inspectnn.__file__).parent  # "render" means the function only
    assert not (package / "render").exists() and not (package / "render.py").exists()


def test_every_package_is_in_the_install_list() -> None:
    """pyproject lists packages by hand: a package missing there is missing from an install."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r"^packages = (\[.*\])$", text, re.MULTILINE)
    assert found is not None
    listed = set(ast.literal_eval(found.group(1)))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "inspectnn").rglob("__init__.py")
    }
    assert on_disk and on_disk <= listed
    assert {"inspectnn", "inspectnn.renderers", "pytest_inspectnn"} <= listed
