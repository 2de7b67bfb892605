"""The public API is explicit: __all__ is sorted and is exactly what the package exports."""

from __future__ import annotations

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
