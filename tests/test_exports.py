"""The public API is explicit: __all__ is sorted and is exactly what the package exports."""

from __future__ import annotations

import importlib

import inspectnn


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


def test_render_stays_the_function_after_the_renderers_are_used() -> None:
    import torch

    report = inspectnn.inspect(torch.nn.Linear(2, 2), torch.randn(1, 2))
    str(report), report.to_json(), report.graph()
    importlib.import_module("inspectnn.render.graph")  # a late submodule import
    assert callable(inspectnn.render) and inspectnn.render.__module__ == "inspectnn.draw"
