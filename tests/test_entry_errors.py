"""Report's facades match what they wrap; bad input at each entry point is an inspectnn error."""

from __future__ import annotations

import inspect as pyinspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import inspectnn
from inspectnn import testing
from inspectnn.distributed.gather import gather
from inspectnn.errors import DependencyError, InvalidInputError, LayerNotFoundError, SpecError
from inspectnn.records import Report
from inspectnn.renderers.graph import build_graph, render_graph
from inspectnn.renderers.html import render_html
from inspectnn.renderers.json import report_to_dict, report_to_json
from inspectnn.renderers.markdown import render_markdown
from inspectnn.renderers.table import render_table

FACADES: dict[str, Callable[..., Any]] = {
    "table": render_table,
    "graph": build_graph,
    "render": render_graph,
    "to_dict": report_to_dict,
    "to_json": report_to_json,
    "_repr_html_": render_html,
    "assert_shapes": testing.assert_shapes,
    "assert_params": testing.assert_params,
    "assert_no_findings": testing.assert_no_findings,
    "assert_dtype": testing.assert_dtype,
    "assert_device": testing.assert_device,
    "gather": gather,
}


def _shape(sig: pyinspect.Signature) -> tuple[list[tuple[str, Any, Any, str]], str]:
    params = [(p.name, p.kind, p.default, str(p.annotation)) for p in sig.parameters.values()]
    return params, str(sig.return_annotation)


@pytest.mark.parametrize("method", sorted(FACADES))
def test_facade_has_the_signature_of_what_it_wraps(method: str) -> None:
    facade = pyinspect.signature(getattr(Report, method))
    target = pyinspect.signature(FACADES[method])
    params, ret = _shape(facade)
    want, want_ret = _shape(target)
    assert params[0][0] == "self"
    assert params[1:] == want[1:]
    assert ret == want_ret


def test_every_public_report_method_that_forwards_is_checked() -> None:
    own = {"layer", "deferred", "with_error"}  # work on the report itself, wrap nothing
    methods = {n for n, v in vars(Report).items() if callable(v) and not n.startswith("_")}
    assert methods - own == set(FACADES) - {"_repr_html_"}


def _report() -> Report:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    return inspectnn.inspect(model, torch.randn(2, 4))


class _Unused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 2)
        self.spare = nn.Linear(4, 2)  # never called: a never-called finding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def test_report_assert_no_findings_takes_kinds() -> None:
    report = inspectnn.inspect(_Unused(), torch.randn(1, 4))
    kind = "never-called"
    assert kind in {f.kind for f in report.findings}
    report.assert_no_findings("info", kinds=["no-such-kind"])
    with pytest.raises(AssertionError, match=kind):
        report.assert_no_findings("info", kinds=[kind])


def test_layer_not_found_reads_as_written_not_as_a_key_repr() -> None:
    with pytest.raises(KeyError) as info:  # still caught where a KeyError was
        _report().layer("nope")
    assert str(info.value).startswith("no module 'nope'")


BAD: dict[str, tuple[Callable[[Report], object], type[Exception], str]] = {
    "layer unknown": (lambda r: r.layer("nope"), LayerNotFoundError, "root or one of '0', '1'"),
    "layer call": (lambda r: r.layer("0", 5), LayerNotFoundError, "pass call= from 0 to 0"),
    "spec": (lambda r: r.assert_shapes({"": "B ?"}), SpecError, "use integers, names like B"),
    "spec type": (lambda r: r.assert_shapes({"": 3.5}), SpecError, "a string like 'B 3 H W'"),
    "selector": (lambda r: r.assert_shapes({"a:b:c": "B 2"}), SpecError, "use a dotted path"),
    "selector dtype": (lambda r: r.assert_dtype("::", "float32"), SpecError, "use a dotted path"),
    "selector device": (lambda r: testing.select(r, "x:up"), SpecError, "':in' / ':out'"),
    "severity": (lambda r: r.assert_no_findings("x"), InvalidInputError, "one of 'info', 'w"),
    "kinds str": (lambda r: r.assert_no_findings(kinds="x"), InvalidInputError, "kinds=['x']"),
    "columns": (lambda r: r.table(columns=["nope"]), InvalidInputError, "choose from layer,"),
    "columns str": (lambda r: r.table(columns="layer"), InvalidInputError, "columns=['layer']"),
    "md columns": (lambda r: render_markdown(r, columns=["x"]), InvalidInputError, "choose from"),
    "max_width": (lambda r: r.table(max_width=0), InvalidInputError, "e.g. max_width=100"),
    "table depth": (lambda r: r.table(depth=-1), InvalidInputError, "None for all, 0 for"),
    "table depth type": (lambda r: r.table(depth="2"), InvalidInputError, "None for all"),  # type: ignore[arg-type]
    "md depth": (lambda r: render_markdown(r, depth=1.5), InvalidInputError, "None for all"),  # type: ignore[arg-type]
    "graph depth": (lambda r: r.graph(depth=-1), InvalidInputError, "None for all"),
    "graph direction": (lambda r: r.graph(direction="up"), InvalidInputError, "'TB', 'LR'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_an_inspectnn_error(case: str) -> None:
    call, kind, says = BAD[case]
    with pytest.raises(kind) as info:
        call(_report())
    assert type(info.value) is kind  # not a bare ValueError or AssertionError
    assert says in str(info.value)


def test_render_to_an_unknown_format(tmp_path: Path) -> None:
    model = nn.Linear(4, 2)
    with pytest.raises(InvalidInputError, match=r"end the name with one of \.png"):
        _report().render(tmp_path / "x.bmp")
    with pytest.raises(InvalidInputError, match=r"end the name with one of \.png"):
        inspectnn.render(model, torch.randn(1, 4), path=tmp_path / "x.bmp")
    assert not list(tmp_path.iterdir())


def test_drawing_without_dot_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no Graphviz programs on it
    with pytest.raises(DependencyError, match="apt-get install graphviz"):
        _report().render(tmp_path / "x.png")
    assert (_report().render(tmp_path / "x.dot")).exists()  # .dot needs no program


def test_assert_params_on_a_lazy_model_says_what_to_do() -> None:
    with pytest.raises(InvalidInputError, match=r"run model\(x\) once"):
        testing.assert_params(nn.LazyLinear(3), total=1)


def test_autograd_graph_without_grad_says_what_to_do() -> None:
    model = nn.Linear(4, 2).requires_grad_(False)
    with pytest.raises(InvalidInputError, match="requires_grad=True"):
        inspectnn.autograd_graph(model, torch.randn(1, 4))
