"""The shape-spec language and the assertion helpers, without pytest's plugin."""

from __future__ import annotations

import models as zoo
import pytest
import torch

import inspectnn as inn
from inspectnn.shapes import SpecError, match_shape, parse_spec
from inspectnn.testing import (
    assert_device,
    assert_dtype,
    assert_no_findings,
    assert_output_shape,
    assert_params,
    assert_shapes,
    select,
)


@pytest.mark.parametrize(
    ("spec", "shape", "ok"),
    [
        ("B 3 H W", (8, 3, 28, 28), True),
        ("B 3 H W", (8, 1, 28, 28), False),
        ((64, 10), (64, 10), True),
        ("B * 10", (4, 99, 10), True),
        ("B ... 10", (4, 10), True),
        ("B ... 10", (4, 5, 6, 10), True),
        ("B ... 10", (4, 5, 6, 11), False),
        ("... C", (7,), True),
        ("_", (1, 2, 3), True),
        ("B _ 2", (1, 9, 2), True),
        ("B 3", (8, 3, 1), False),
        ("H H", (5, 5), True),
        ("H H", (5, 6), False),
    ],
)
def test_match(spec: object, shape: tuple[int, ...], ok: bool) -> None:
    assert (match_shape(spec, shape, {}) is None) is ok  # type: ignore[arg-type]


def test_bindings_only_commit_on_a_full_match() -> None:
    bindings: dict[str, int] = {}
    assert match_shape("B 3", (8, 4), bindings) is not None
    assert bindings == {}
    assert match_shape("B 4", (8, 4), bindings) is None
    assert bindings == {"B": 8}
    assert match_shape("B", (9,), bindings) == "dimension 0: expected B=8 (bound earlier), got 9"


@pytest.mark.parametrize("bad", ["B ... ...", "B 3.5", "B -1", "B x+1", 3.0, ("B", 2.0)])
def test_bad_specs(bad: object) -> None:
    with pytest.raises(SpecError):
        parse_spec(bad)  # type: ignore[arg-type]


def test_rank_messages() -> None:
    assert match_shape("B C", (1, 2, 3), {}) == "rank: expected 2 dimensions, got 3"
    assert match_shape("B ... C D", (1, 2), {}) == "rank: expected at least 3 dimensions, got 2"


def test_selectors_globs_and_call_index() -> None:
    report = inn.inspect(zoo.gpt2_tiny(), torch.randint(0, 64, (1, 8)))
    calls, side, pos = select(report, "h.*.attn")
    assert [c.name for c in calls] == ["h.0.attn", "h.1.attn"] and (side, pos) == ("out", 0)
    report2 = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    calls, side, _ = select(report2, "pool#2:in")
    assert [(c.name, c.call) for c in calls] == [("pool", 2)] and side == "in"
    with pytest.raises(AssertionError, match=r"selector 'pool#5' matches no call"):
        select(report2, "pool#5")
    assert_shapes(report2, {"pool#0": "B 16 14 14", "conv1": "B 16 28 28"})


def test_assert_shapes_message_lists_every_mismatch() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    with pytest.raises(AssertionError) as info:
        assert_shapes(report, {"pool": "B 16 14 14"})  # the 2nd and 3rd calls differ
    text = str(info.value)
    assert text.startswith("assert_shapes: 2 mismatches in the SimpleCNN report")
    assert "pool#1 output 0: [2, 32, 7, 7] does not match 'B 16 14 14'" in text
    assert "layer:    pool#2 (MaxPool2d)" in text


def test_other_helpers() -> None:
    report = assert_output_shape(zoo.MyModel(), torch.randn(5, 2), spec="B 3")
    assert_params(zoo.MyModel(), total=108, trainable=108)
    assert_params(report, total=108)
    assert_dtype(report, "fc1", torch.float32)
    assert_device(report, "", "cpu")
    assert_no_findings(report)
    with pytest.raises(AssertionError, match="expected dtype float16, found float32"):
        assert_dtype(report, "fc1", "float16")
    with pytest.raises(AssertionError, match="total: expected 100, found 108"):
        assert_params(report, total=100)
    findings = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    with pytest.raises(AssertionError, match="dead-computation at conv_skip_adjust"):
        findings.assert_no_findings()
    findings.assert_no_findings("error")
