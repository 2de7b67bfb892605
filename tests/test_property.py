"""Property tests: random layer stacks, valid and broken, against a plain-hook reference.

A stack is drawn as a tuple of layer specs (plain tuples, so Hypothesis prints and
shrinks them) together with the per-sample input shape; ``_out_shape`` tracks the
per-sample shape through every layer with torch's conv/pool output-size formula, so
``in_features`` of the Linear after ``Flatten`` is exact.

1. Valid stacks: ``inspect`` (CPU and meta) records the same (name, output shapes)
   per call as plain forward hooks, and leaves the model untouched.
2. One layer swapped for the same type with a wrong input size: ``ShapeMismatchError``
   naming exactly that child, with the exact ``expected`` / ``got``, identical on meta.
3. Anything (valid, broken, wrong rank, too-small spatial size, any mode, CPU or
   meta): nothing but ``InspectnnError`` escapes, and the model is untouched.
4. The same with a zero-size dimension in the input.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from helpers import assert_unchanged, reference_shapes, snapshot
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from torch import nn

import inspectnn as inn
from inspectnn.errors import InspectnnError

Spec = tuple[Any, ...]
Shape = tuple[int, ...]

_ACTIVATIONS = ("ReLU", "GELU", "Tanh", "Dropout")
_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
}


# --- building and shape tracking -------------------------------------------------------


def _build(specs: tuple[Spec, ...]) -> nn.Sequential:
    """The nn.Sequential of a tuple of specs; child i is named str(i)."""
    mods: list[nn.Module] = []
    for kind, *a in specs:
        if kind == "Conv2d":
            cin, cout, k, s, p = a
            mods.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
        elif kind in ("MaxPool2d", "AvgPool2d", "BatchNorm2d", "BatchNorm1d", "LayerNorm"):
            mods.append(getattr(nn, kind)(a[0]))
        elif kind == "Linear":
            mods.append(nn.Linear(a[0], a[1]))
        elif kind == "Flatten":
            mods.append(nn.Flatten())
        elif kind == "Dropout":
            mods.append(nn.Dropout(0.5))
        else:
            mods.append(getattr(nn, kind)())
    return nn.Sequential(*mods)


def _conv_size(size: int, k: int, s: int = 1, p: int = 0) -> int:
    """torch's output size: floor((size + 2p - k) / s) + 1 (dilation 1)."""
    return (size + 2 * p - k) // s + 1


def _out_shape(spec: Spec, shape: Shape) -> Shape:
    """The per-sample output shape of one valid layer (batch dimension left out)."""
    kind = spec[0]
    if kind == "Conv2d":
        _, _, cout, k, s, p = spec
        _, h, w = shape
        return (cout, _conv_size(h, k, s, p), _conv_size(w, k, s, p))
    if kind in ("MaxPool2d", "AvgPool2d"):
        k = spec[1]
        c, h, w = shape
        return (c, _conv_size(h, k, k), _conv_size(w, k, k))
    if kind == "Flatten":
        return (math.prod(shape),)
    if kind == "Linear":
        return (*shape[:-1], spec[2])
    return shape


def _shapes_before(specs: tuple[Spec, ...], sample: Shape) -> list[Shape]:
    """The per-sample input shape of every layer."""
    shapes = [sample]
    for spec in specs[:-1]:
        shapes.append(_out_shape(spec, shapes[-1]))
    return shapes


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# --- strategies --------------------------------------------------------------------------


@st.composite
def _head(draw: st.DrawFn, features: int) -> list[Spec]:
    """1-3 Linear layers from ``features``, optionally BatchNorm1d/activation between."""
    specs: list[Spec] = []
    for i in range(draw(st.integers(1, 3))):
        if i and draw(st.booleans()):
            specs.append(("BatchNorm1d", features))
        if i and draw(st.booleans()):
            specs.append((draw(st.sampled_from(_ACTIVATIONS)),))
        out = draw(st.integers(1, 32))
        specs.append(("Linear", features, out))
        features = out
    return specs


@st.composite
def image_stacks(draw: st.DrawFn) -> tuple[tuple[Spec, ...], Shape]:
    """(specs, per-sample input (C, H, W)) of a valid conv stack ending in Flatten + Linear."""
    c, h, w = draw(st.integers(1, 8)), draw(st.integers(8, 24)), draw(st.integers(8, 24))
    sample = (c, h, w)
    specs: list[Spec] = []
    kinds = ["Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", *_ACTIVATIONS]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(kinds))
        if kind == "Conv2d":
            p = draw(st.integers(0, 2))
            k = draw(st.integers(1, min(5, h + 2 * p, w + 2 * p)))
            s = draw(st.integers(1, 2))
            cout = draw(st.integers(1, 8))
            spec: Spec = ("Conv2d", c, cout, k, s, p)
        elif kind in ("MaxPool2d", "AvgPool2d"):
            if min(h, w) < 2:
                continue
            spec = (kind, draw(st.integers(2, min(3, h, w))))
        elif kind == "BatchNorm2d":
            spec = ("BatchNorm2d", c)
        else:
            spec = (kind,)
        specs.append(spec)
        c, h, w = _out_shape(spec, (c, h, w))
    specs.append(("Flatten",))
    specs += draw(_head(c * h * w))
    return tuple(specs), sample


@st.composite
def mlp_stacks(draw: st.DrawFn) -> tuple[tuple[Spec, ...], Shape]:
    """(specs, per-sample input (F,)) of a valid stack of Linear/norm/activation layers."""
    f = draw(st.integers(1, 32))
    sample = (f,)
    specs: list[Spec] = []
    kinds = ["Linear", "Linear", "BatchNorm1d", "LayerNorm", *_ACTIVATIONS]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(kinds))
        if kind == "Linear":
            out = draw(st.integers(1, 32))
            specs.append(("Linear", f, out))
            f = out
        elif kind in ("BatchNorm1d", "LayerNorm"):
            specs.append((kind, f))
        else:
            specs.append((kind,))
    if not any(s[0] in _SIZED for s in specs):  # something to break in test 2
        specs.append(("Linear", f, draw(st.integers(1, 32))))
    return tuple(specs), sample


stacks = st.one_of(image_stacks(), mlp_stacks())
batches = st.integers(2, 4)

# The layers whose input size is configured, and where that size sits in the spec.
_SIZED = {"Conv2d": 1, "Linear": 1, "BatchNorm1d": 1, "BatchNorm2d": 1, "LayerNorm": 1}


def _break(draw: st.DrawFn, specs: tuple[Spec, ...]) -> tuple[tuple[Spec, ...], int]:
    """The stack with one sized layer given a wrong input size, and its index."""
    sized = [i for i, s in enumerate(specs) if s[0] in _SIZED]
    i = draw(st.sampled_from(sized), label="broken layer")
    spec = list(specs[i])
    size = spec[_SIZED[spec[0]]]
    k = draw(st.integers(1, 3), label="off by")
    wrong = size - k if size > k and draw(st.booleans(), label="smaller") else size + k
    spec[_SIZED[spec[0]]] = wrong
    return (*specs[:i], tuple(spec), *specs[i + 1 :]), i


def _expected(spec: Spec) -> str:
    kind, size = spec[0], spec[1]
    if kind in ("Linear", "LayerNorm"):
        return f"[*, {size}]"
    return f"{size} channels in dimension 1"


def _calls(report: inn.Report) -> list[tuple[str, list[tuple[int, ...]]]]:
    return [(r.name, [tuple(m.shape or ()) for m in r.outputs]) for r in report.layers]


# --- 1. valid stacks ---------------------------------------------------------------------


@settings(max_examples=150, **_SETTINGS)
@given(stack=stacks, n=batches)
def test_valid_stack_matches_reference(stack: tuple[tuple[Spec, ...], Shape], n: int) -> None:
    specs, sample = stack
    model = _build(specs)
    x = torch.randn(n, *sample)
    expected, out = reference_shapes(model, x)  # a plain forward: the stack is valid
    assert [s for _, s in expected[1:]] == [
        [(n, *shape)] for shape in (*_shapes_before(specs, sample)[1:], tuple(out.shape[1:]))
    ], "the strategy's shape tracking disagrees with torch"
    before = snapshot(model)
    report = inn.inspect(model, x)
    assert _calls(report) == expected
    assert report.error is None
    assert_unchanged(model, before)
    meta = inn.inspect(model, x, device="meta")
    assert _calls(meta) == expected
    assert_unchanged(model, before)


# --- 2. one broken layer -----------------------------------------------------------------


@settings(max_examples=150, **_SETTINGS)
@given(stack=stacks, n=batches, data=st.data())
def test_injected_mismatch_is_diagnosed(
    stack: tuple[tuple[Spec, ...], Shape], n: int, data: st.DataObject
) -> None:
    specs, sample = stack
    broken, i = _break(data.draw, specs)
    model = _build(broken)
    x = torch.randn(n, *sample)
    got = _fmt((n, *_shapes_before(specs, sample)[i]))
    before = snapshot(model)
    for device in (None, "meta"):
        with pytest.raises(inn.ShapeMismatchError) as info:
            inn.inspect(model, x, device=device)
        err = info.value
        assert (err.layer, err.expected, err.got) == (str(i), _expected(broken[i]), got), device
        assert err.report is not None and err.report.error is not None
        assert err.report.error.layer == str(i)
        assert_unchanged(model, before)


# --- 3. anything: only inspectnn's errors ------------------------------------------------


@st.composite
def _any_input(draw: st.DrawFn, sample: Shape) -> Shape:
    """The full input shape: right, one dimension short or long, or spatially too small."""
    n = draw(batches)
    choice = draw(st.sampled_from(["right", "no batch", "extra dim", "random", "small"]))
    if choice == "no batch":
        return sample
    if choice == "extra dim":
        return (n, *sample, draw(st.integers(1, 3)))
    if choice == "random":
        return tuple(draw(st.lists(st.integers(1, 10), min_size=0, max_size=5)))
    if choice == "small" and len(sample) == 3:
        h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        return (n, sample[0], h, w)
    return (n, *sample)


@settings(max_examples=300, **_SETTINGS)
@given(stack=stacks, data=st.data())
def test_only_inspectnn_errors_escape(
    stack: tuple[tuple[Spec, ...], Shape], data: st.DataObject
) -> None:
    specs, sample = stack
    if data.draw(st.booleans(), label="broken"):
        specs, _ = _break(data.draw, specs)
    model = _build(specs)
    if data.draw(st.booleans(), label="model.eval()"):
        model.eval()
    x = torch.randn(data.draw(_any_input(sample), label="input shape"))
    mode = data.draw(st.sampled_from(["eval", "train", "same"]), label="mode")
    device = data.draw(st.sampled_from([None, "meta"]), label="device")
    before = snapshot(model)
    try:
        report = inn.inspect(model, x, mode=mode, device=device)
    except Exception as err:
        event(type(err).__name__)  # the mix shows with --hypothesis-show-statistics
        assert isinstance(err, InspectnnError), f"{type(err).__name__} escaped: {err}"
        if isinstance(err, inn.ForwardError):
            assert err.layer in dict(model.named_modules())
            assert err.report is not None
    else:
        event("no error")
        assert report.error is None
        assert report.layers[0].name == ""
    assert_unchanged(model, before)


# --- 4. zero-size dimensions ---------------------------------------------------------------


@settings(max_examples=100, **_SETTINGS)
@given(
    stack=stacks,
    n=st.integers(0, 4),
    zero=st.integers(0, 3),
    mode=st.sampled_from(["eval", "train"]),
    device=st.sampled_from([None, "meta"]),
)
@example(stack=((("Flatten",), ("Linear", 4, 1)), (1, 2, 2)), n=1, zero=1, mode="eval", device=None)
def test_zero_size_dims_only_inspectnn_errors(
    stack: tuple[tuple[Spec, ...], Shape], n: int, zero: int, mode: str, device: str | None
) -> None:
    specs, sample = stack
    shape = [n, *sample]
    shape[zero % len(shape)] = 0
    model = _build(specs)
    x = torch.randn(shape)
    before = snapshot(model)
    try:
        inn.inspect(model, x, mode=mode, device=device)
    except Exception as err:
        assert isinstance(err, InspectnnError), f"{type(err).__name__} escaped: {err}"
        if isinstance(err, inn.ForwardError):
            assert err.layer in dict(model.named_modules())
    assert_unchanged(model, before)
