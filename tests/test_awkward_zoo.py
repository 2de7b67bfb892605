"""A zoo of awkward small models, each checked against a plain forward and "nothing lost".

Every model here does something a tracer can trip on: in-place ops, buffers written in
``forward``, one module called in a loop, modules in a plain Python list, packed
sequences, scripted children, parametrizations, pruning, sparse and quantized tensors,
autograd inside ``forward``, a hundred outputs, 220 levels of nesting, tensors made in
``forward``, dataclass outputs, attributes rebound in ``forward``.

Per model, two tests:

- ``test_inspect_matches_plain_forward``: ``inspect`` runs; every tensor the model
  returned under ``inspect`` equals a plain forward's (of a deep copy, same seed) bit
  for bit; the report lists the output tensors' shapes and the unique parameter count;
  afterwards the model is exactly as it was (values, flags, hooks, RNG, ``.grad``,
  RNN ``_flat_weights``, every instance attribute);
- ``test_meta_runs_or_explains``: ``device="meta"`` runs, or is refused with an
  inspectnn error that says why and what to do (a ``fix``), and the model is again
  exactly as it was.

Models that fail today because of a defect named in issue 12 are marked
``xfail(strict=True)`` with the issue's item, so the suite flags the fix; two defects
the zoo found that the issue does not name are marked the same way ("not named").
``test_report_sees_it`` checks three things the report must show of zoo models
(in-place ops, the 100th output as a producer, a pruned layer's FLOPs); one more test
checks that an error does not call a failing buffer "the model input".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import Untouched, all_tensors, explains, same_tensors
from torch import nn
from torch.nn.utils import parametrize, prune
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import inspectnn as inn

Inputs = tuple[Any, ...]
pytestmark = pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")


class InplaceOps(nn.Module):
    """``F.relu(inplace=True)``, ``nn.ReLU(inplace=True)``, item assignment, ``add_``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.fc(x), inplace=True)
        y[0] = 1.5
        y[:, 1] = y[:, 2]
        y.add_(1).mul_(2)
        return self.act(y - 3)


class BufferWriter(nn.Module):
    """Writes its buffers in ``forward``: a counter and a running mean, even in eval."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("running", torch.zeros(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.running.mul_(0.9).add_(x.mean(0), alpha=0.1)
        return self.fc(x - self.running) * self.calls


class LoopOverOne(nn.Module):
    """One layer called five times."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(5):
            x = torch.tanh(self.fc(x))
        return x


class Unregistered(nn.Module):
    """Layers kept in a plain Python list: they run but are not the model's submodules."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.hidden = [nn.Linear(4, 4), nn.ReLU(inplace=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = layer(x)
        return self.head(x)


class PackedLSTM(nn.Module):
    """A padded batch packed into an LSTM and unpacked again."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 6, num_layers=2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, (h, c) = self.lstm(pack_padded_sequence(x, lengths))
        padded, _ = pad_packed_sequence(out)
        return padded, h, c


class PlainLSTM(nn.Module):
    """An LSTM and a GRU with initial states made on the input's device."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 6, batch_first=True)
        self.gru = nn.GRU(6, 5, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = torch.zeros(1, x.shape[0], 6, device=x.device)
        out, _ = self.lstm(x, (h0, h0))
        return self.gru(out)[0]


class Symmetric(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w.triu() + w.triu(1).transpose(0, 1)


def scripted_child() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), torch.jit.script(nn.Linear(2, 2)), nn.ReLU())


def parametrized() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    parametrize.register_parametrization(model[0], "weight", Symmetric())
    nn.utils.parametrizations.weight_norm(model[1])
    return model


def pruned() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    prune.random_unstructured(model[2], "bias", amount=0.5)
    return model


class SparseBuffer(nn.Module):
    """A graph layer whose adjacency is a sparse COO buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("adj", (torch.eye(4) + torch.diag(torch.ones(3), 1)).to_sparse())
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.sparse.mm(self.adj, x))


class Quantized(nn.Module):
    """Quantizes in ``forward`` and holds a quantized buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        table = torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.quint8)
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.quantize_per_tensor(self.fc(x), 0.05, 64, torch.quint8)
        return q.dequantize() * self.table.dequantize()


class InnerLoop(nn.Module):
    """MAML-style: one gradient step on a copy of the weight inside ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc.weight.clone().requires_grad_(True)
        loss = F.linear(x, w, self.fc.bias).pow(2).mean()
        (grad,) = torch.autograd.grad(loss, w)
        return F.linear(x, w - 0.1 * grad, self.fc.bias).detach()


class Splitter(nn.Module):
    """Returns 120 tensors."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(x * i for i in range(120))


class ManyOutputs(nn.Module):
    """A child with 120 outputs, of which the 100th feeds a layer."""

    def __init__(self) -> None:
        super().__init__()
        self.split = Splitter()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = self.split(x)
        return (self.fc(parts[100]), *parts[:3])


def deep(levels: int = 220) -> nn.Module:
    """``levels`` Sequentials, one inside the other, a Linear at the bottom."""
    torch.manual_seed(0)
    model: nn.Module = nn.Linear(3, 3)
    for _ in range(levels - 1):
        model = nn.Sequential(model)
    return model


class MadeInForward(nn.Module):
    """Tensors created in ``forward`` without ``device=``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = torch.zeros(x.shape[0], 4)
        steps = torch.arange(x.shape[1]).float()
        return self.fc(torch.cat([x[:, :4] + steps[:4], pad], dim=1)) + torch.ones(x.shape[0], 4)


@dataclasses.dataclass
class Prediction:
    logits: torch.Tensor
    hidden: tuple[torch.Tensor, ...]
    note: str = "ok"


class DataclassOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> Prediction:
        h = self.a(x)
        return Prediction(self.b(h), (x, h))


class Rebinding(nn.Module):
    """Rebinds instance attributes in ``forward``: a counter, a tensor cache, a new one."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.n = 0
        self.cache: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.n += 1
        self.cache = self.fc(x)
        self.last_batch = x.shape[0]
        return self.cache * self.n


@dataclasses.dataclass(frozen=True)
class Case:
    """One zoo model: how to build it and its inputs, and its known issue-12 defects."""

    build: Callable[[], nn.Module]
    inputs: Callable[[], Inputs]
    cpu_defect: str = ""  # an issue-12 item that fails the CPU test today
    meta_defect: str = ""  # one that fails the meta test today


def _randn(*shape: int) -> Callable[[], Inputs]:
    return lambda: (torch.randn(*shape),)


def _seeded(cls: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return cls()

    return build



ZOO: dict[str, Case] = {
    "inplace_ops": Case(_seeded(InplaceOps), _randn(3, 4)),
    "buffer_writer": Case(_seeded(BufferWriter), _randn(3, 4)),
    "loop_over_one": Case(_seeded(LoopOverOne), _randn(2, 4)),
    "unregistered_list": Case(
        _seeded(Unregistered),
        _randn(2, 4),
    ),
    "packed_lstm": Case(
        _seeded(PackedLSTM),
        lambda: (torch.randn(5, 3, 8), torch.tensor([5, 3, 2])),
    ),
    "lstm_gru": Case(
        _seeded(PlainLSTM),
        _randn(2, 5, 8),
    ),
    "scripted_child": Case(scripted_child, _randn(2, 3)),
    "parametrized": Case(parametrized, _randn(2, 4)),
    "pruned": Case(pruned, _randn(2, 6)),
    "sparse_buffer": Case(
        _seeded(SparseBuffer),
        _randn(4, 3),
    ),
    "quantized": Case(
        _seeded(Quantized),
        _randn(2, 4),
    ),
    "autograd_in_forward": Case(_seeded(InnerLoop), _randn(3, 4)),
    "many_outputs": Case(_seeded(ManyOutputs), _randn(2, 4)),
    "deep_220": Case(deep, _randn(2, 3)),
    "made_in_forward": Case(
        _seeded(MadeInForward),
        _randn(2, 8),
    ),
    "dataclass_output": Case(_seeded(DataclassOut), _randn(2, 4)),
    "rebinding": Case(_seeded(Rebinding), _randn(2, 4)),
}


def _params(defect: Callable[[Case], str]) -> list[Any]:
    marks = {
        n: [pytest.mark.xfail(strict=True, reason=f"issue 12: {defect(c)}")] if defect(c) else []
        for n, c in ZOO.items()
    }
    return [pytest.param(n, marks=marks[n], id=n) for n in ZOO]


def _plain_forward(case: Case, inputs: Inputs) -> Any:
    """The output of a twin of the model (built by the same seeded code, so the model's
    own state stays untouched), seeded, in eval mode."""
    twin = case.build().eval()
    torch.manual_seed(0)
    return twin(*inputs)


@pytest.mark.parametrize("name", _params(lambda c: c.cpu_defect))
def test_inspect_matches_plain_forward(name: str) -> None:
    case = ZOO[name]
    model, inputs = case.build(), case.inputs()
    want = _plain_forward(case, inputs)
    before = Untouched(model)
    seen: list[Any] = []
    handle = model.register_forward_hook(lambda m, a, out: seen.append(out), prepend=True)
    try:
        torch.manual_seed(0)
        report = inn.inspect(model, *inputs)
    finally:
        handle.remove()
    assert same_tensors(seen[-1], want) is None
    shown = sorted(m.shape for m in report.outputs if m.shape is not None)
    assert shown == sorted(tuple(t.shape) for t in all_tensors(want))
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    before.check()


@pytest.mark.parametrize("name", _params(lambda c: c.meta_defect))
def test_meta_runs_or_explains(name: str) -> None:
    case = ZOO[name]
    model, inputs = case.build(), case.inputs()
    before = Untouched(model)
    try:
        report = inn.inspect(model, *inputs, device="meta")
    except inn.InspectnnError as err:
        assert explains(err), str(err)
    else:
        assert all(m.device == "meta" for m in report.outputs if m.shape is not None)
    before.check()


def _ops(report: inn.Report) -> list[str]:
    return [op.name for op in report.ops]


# What the report must show of a zoo model, beyond outputs and state: (zoo name, check,
# the issue-12 item it fails on today).
SEES: list[tuple[str, Callable[[inn.Report], bool], str]] = [
    (
        "inplace_ops",
        lambda r: any("relu" in n for n in _ops(r)) and any("setitem" in n for n in _ops(r)),
        "",
    ),
    (
        "many_outputs",
        lambda r: r.layer("fc").inputs[0].source.endswith(".outputs[100]"),
        "",
    ),
    (
        "pruned",
        lambda r: r.layer("0").flops > 0,
        "",
    ),
]


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        pytest.param(
            n,
            f,
            marks=[pytest.mark.xfail(strict=True, reason=f"issue 12: {why}")] if why else [],
            id=n,
        )
        for n, f, why in SEES
    ],
)
def test_report_sees_it(name: str, sees: Callable[[inn.Report], bool]) -> None:
    case = ZOO[name]
    assert sees(inn.inspect(case.build(), *case.inputs()))


class BufferMatmul(nn.Module):
    """Multiplies a buffer by the input: the shapes do not fit."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("adj", torch.eye(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adj @ x


def test_error_does_not_call_a_buffer_the_model_input() -> None:
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(BufferMatmul(), torch.randn(3, 2))
    assert "the model input [4, 4]" not in str(info.value)
    assert "a tensor the module holds (a buffer, parameter or attribute) [4, 4]" in str(info.value)


def test_meta_fixes_for_packed_lengths_and_quantized_buffers_work() -> None:
    """The fixes the meta refusals give, applied: lengths as a list; the model where it is."""
    packed = ZOO["packed_lstm"]
    x, lengths = packed.inputs()
    with pytest.raises(inn.ForwardError, match=r"lengths\.tolist\(\)"):
        inn.inspect(packed.build(), x, lengths, device="meta")
    report = inn.inspect(packed.build(), x, lengths.tolist(), device="meta")
    assert report.outputs[0].shape == (5, 3, 6)
    quantized = ZOO["quantized"]
    with pytest.raises(inn.InvalidInputError, match=r"quantized tensor table .*device='cpu'"):
        inn.inspect(quantized.build(), *quantized.inputs(), device="meta")
    assert inn.inspect(quantized.build(), *quantized.inputs()).outputs[0].shape == (2, 4)
    sparse = ZOO["sparse_buffer"]
    with pytest.raises(inn.ForwardError, match="no meta kernel for sparse tensors"):
        inn.inspect(sparse.build(), *sparse.inputs(), device="meta")


class NestedOut(nn.Module):
    """Returns a nested (ragged) tensor beside a plain one."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ragged = torch.nested.nested_tensor([x[0, :2], x[1, :3]])
        return self.fc(x), ragged, torch.nested.to_padded_tensor(ragged, 0.0)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_a_nested_tensor_is_a_value_never_a_failed_forward() -> None:
    """A nested tensor has no shape to record and no ``isfinite``: the trace shows it as a
    value, and neither the trace nor the numerics check fails the forward."""
    model, x = NestedOut(), torch.randn(2, 3, 4)
    before = Untouched(model)
    report = inn.inspect(model, x, check_numerics=True)
    assert [m.shape for m in report.outputs] == [(2, 3, 4), None, (2, 3, 4)]
    assert report.outputs[1].value == "<nested tensor, 3-d float32>"
    before.check()
