"""``records.py``: the records' own properties and the lazy ``Report``."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from inspectnn.errors import LayerNotFoundError
from inspectnn.records import ErrorInfo, ParamMeta, Parts, Report, TensorMeta, parse_source

from .reports import MLP_LAYERS, mlp, t, totals


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("layers[3]", ("layers", 3, 0)),
        ("layers[12].outputs[1]", ("layers", 12, 1)),
        ("ops[0]", ("ops", 0, 0)),
        ("inputs[2]", ("inputs", 2, 0)),
        (None, None),
        ("layers[x]", None),
        ("params[0]", None),
        ("layers[1].outputs[2] ", None),
    ],
)
def test_parse_source(text: str | None, parsed: tuple[str, int, int] | None) -> None:
    assert parse_source(text) == parsed


def test_meta_and_param_counts() -> None:
    assert (t(2, 3).numel, t().numel, t(0, 5).numel) == (6, 1, 0)
    assert t(64, 10).short() == "64x10"
    assert TensorMeta(None, None, None).short() == "?"
    assert ParamMeta("weight", (10, 4), "float32", True).numel == 40
    assert ParamMeta("weight", None, "float32", True).numel == 0  # lazy: not created yet
    assert totals(58).non_trainable_params == 0
    assert replace(totals(58), trainable_params=50).non_trainable_params == 8


def test_layer_label_and_uninitialised() -> None:
    root, fc1 = MLP_LAYERS[0], MLP_LAYERS[1]
    assert (root.label, fc1.label, replace(fc1, call=2).label) == ("(root)", "fc1", "fc1#2")
    assert not fc1.uninitialised
    lazy = replace(fc1, weights=(ParamMeta("weight", None, "float32", True),))
    assert lazy.uninitialised


def test_a_deferred_report_builds_once_on_first_read() -> None:
    built: list[int] = []
    whole = mlp()

    def build() -> Parts:
        built.append(1)
        return (whole.totals, whole.layers, whole.ops, whole.findings)

    report = Report.deferred("Net", "cpu", "eval", build)
    assert (report.model, report.device, report.mode, report.error) == ("Net", "cpu", "eval", None)
    assert built == []  # names and the error need no build
    failed = report.with_error(ErrorInfo("E", "m", "fc2"))
    assert report.totals.params == 58 and built == [1]
    assert report.layers == whole.layers and built == [1]
    assert failed.error is not None and failed.error.layer == "fc2"
    assert report == whole and hash(report) == hash(whole) and report != failed


def test_a_report_pickles_and_says_what_it_holds() -> None:
    report = mlp(error=ErrorInfo("ShapeMismatchError", "m", "fc2"))
    again = pickle.loads(pickle.dumps(report))
    assert again == report and again is not report
    assert repr(report) == ("Report(model='Net', device='cpu', mode='eval', layers=4, ops=0, "
                            "findings=0, error=ShapeMismatchError in 'fc2')")  # fmt: skip
    assert report.outputs == (t(3, 2, source="layers[3]"),)
    assert str(report) == report.table()


def test_layer_lookup_names_what_was_called() -> None:
    report = mlp()
    assert report.layer("fc2") is MLP_LAYERS[3] and report.layer("") is MLP_LAYERS[0]
    with pytest.raises(LayerNotFoundError, match=r"'fc1' was called 1 time\(s\).*call= from 0"):
        report.layer("fc1", call=1)
    with pytest.raises(LayerNotFoundError, match=r"no module 'fc' .* one of 'fc1', 'fc2'"):
        report.layer("fc")
    with pytest.raises(KeyError):  # a LayerNotFoundError is a KeyError too
        report.layer("conv")
