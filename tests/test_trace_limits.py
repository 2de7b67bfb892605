"""Deep nesting: inspect runs wherever the plain forward runs, and says so where neither can."""

from __future__ import annotations

import sys

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import Tensor, nn

import inspectnn as inn
from inspectnn.errors import ForwardError


class Wrap(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x)


def _nested(levels: int) -> nn.Module:
    model: nn.Module = nn.Linear(2, 2)
    for _ in range(levels):
        model = Wrap(model)
    return model


def _plain_runs(levels: int) -> bool:
    try:
        with torch.no_grad():
            _nested(levels)(torch.randn(1, 2))
    except RecursionError:
        return False
    return True


def _deepest_plain() -> int:
    """The deepest nesting a plain forward survives from here (bisection)."""
    lo, hi = 10, 4 * sys.getrecursionlimit()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _plain_runs(mid) else (lo, mid)
    return lo


def test_inspect_runs_as_deep_as_the_plain_forward() -> None:
    limit = sys.getrecursionlimit()
    deepest = _deepest_plain()
    model, x = _nested(deepest), torch.randn(1, 2)
    before = snapshot(model)
    report = inn.inspect(model, x)
    assert report.error is None and len(report.layers) == deepest + 1
    assert report.layers[-1].depth == deepest and report.outputs[0].shape == (1, 2)
    assert str(report)  # the table renders too
    assert sys.getrecursionlimit() == limit  # put back
    assert_unchanged(model, before)


def test_past_the_limit_the_error_names_depth_and_setrecursionlimit() -> None:
    limit = sys.getrecursionlimit()
    levels = _deepest_plain() + 40
    model, x = _nested(levels), torch.randn(1, 2)
    before = snapshot(model)
    with pytest.raises(ForwardError) as err:
        inn.inspect(model, x)
    text = str(err.value)
    assert "recursion limit" in text and "sys.setrecursionlimit(" in text
    assert "nested" in text and " deep" in text
    assert all(len(line) < 400 for line in text.splitlines())  # no 1,000-character path
    assert isinstance(err.value.__cause__, RecursionError)
    assert sys.getrecursionlimit() == limit
    assert_unchanged(model, before)


def test_threads_raising_the_limit_leave_it_as_it_was() -> None:
    import threading

    limit = sys.getrecursionlimit()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(3):
                inn.inspect(_nested(100), torch.randn(1, 2))
        except BaseException as err:  # reported to the main thread below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sys.getrecursionlimit() == limit
