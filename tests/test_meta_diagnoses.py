"""Runs on meta (and on other devices than the model's): refuse only what torch refuses,
and say why a run cannot go on in inspectnn's words, with a fix that works.

Every suggested fix is applied here and the forward run again: the models whose source
a fix edits are written to a file, imported, inspected, edited as the fix says,
imported again and inspected again.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import Tensor, nn

import inspectnn as inn
from inspectnn.checks.contracts import contract_for

# ---------------------------------------------------------------------------
# Device contracts against what torch 2.13 does
# ---------------------------------------------------------------------------

Make = Callable[[str], tuple[Tensor, ...]]


def _x(*shape: int) -> Make:
    return lambda d: (torch.randn(*shape, device=d),)


def _ids(*shape: int) -> Make:
    return lambda d: (torch.randint(0, 5, shape, device=d),)


# name -> (layer, inputs, does torch refuse weights and input on meta and cpu, either way)
DEVICE_TABLE: dict[str, tuple[Callable[[], nn.Module], Make, bool]] = {
    "Linear": (lambda: nn.Linear(4, 3), _x(2, 4), True),
    "Bilinear": (lambda: nn.Bilinear(4, 4, 3), lambda d: (*_x(2, 4)(d), *_x(2, 4)(d)), True),
    "Conv1d": (lambda: nn.Conv1d(4, 3, 1), _x(2, 4, 5), False),
    "Conv2d": (lambda: nn.Conv2d(4, 3, 1), _x(2, 4, 5, 5), False),
    "Conv3d": (lambda: nn.Conv3d(4, 3, 1), _x(1, 4, 2, 2, 2), False),
    "ConvTranspose1d": (lambda: nn.ConvTranspose1d(4, 3, 1), _x(2, 4, 5), False),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(4, 3, 1), _x(2, 4, 5, 5), False),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4).eval(), _x(2, 4), True),
    "BatchNorm2d train": (lambda: nn.BatchNorm2d(4), _x(2, 4, 3, 3), True),
    "InstanceNorm1d affine": (lambda: nn.InstanceNorm1d(4, affine=True), _x(2, 4, 5), True),
    "LayerNorm": (lambda: nn.LayerNorm(4), _x(2, 4), True),
    "GroupNorm": (lambda: nn.GroupNorm(2, 4), _x(2, 4), True),
    "Embedding int64": (lambda: nn.Embedding(10, 4), _ids(2, 3), False),
    "Embedding int32": (
        lambda: nn.Embedding(10, 4),
        lambda d: (torch.randint(0, 5, (2, 3), dtype=torch.int32, device=d),),
        False,
    ),
    "EmbeddingBag": (lambda: nn.EmbeddingBag(10, 4), _ids(2, 3), False),
    "LSTM": (lambda: nn.LSTM(4, 3), _x(2, 1, 4), True),
    "GRU": (lambda: nn.GRU(4, 3), _x(2, 1, 4), True),
    "RNN": (lambda: nn.RNN(4, 3), _x(2, 1, 4), True),
    "MultiheadAttention": (lambda: nn.MultiheadAttention(4, 2), lambda d: _x(2, 1, 4)(d) * 3, True),
}


def _torch_refuses(layer: nn.Module, args: tuple[Tensor, ...]) -> bool:
    try:
        with torch.no_grad():
            layer(*args)
    except RuntimeError:
        return True
    return False


@pytest.mark.parametrize(("weights", "inputs"), [("meta", "cpu"), ("cpu", "meta")])
@pytest.mark.parametrize("name", list(DEVICE_TABLE))
def test_device_contract_refuses_exactly_what_torch_refuses(
    name: str, weights: str, inputs: str
) -> None:
    build, make, refuses = DEVICE_TABLE[name]
    layer = build().to(weights)
    args = make(inputs)
    assert _torch_refuses(layer, args) is refuses, "torch changed: update the table"
    contract = contract_for(layer)
    assert contract is not None
    violation = contract(layer, args, {})
    assert (violation is not None and violation.kind == "device") is refuses


class PositionIds(nn.Module):
    """T5/LongT5-style: position ids made with ``torch.arange`` and no ``device=``."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Embedding(16, 4)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        ids = torch.arange(x.shape[1])  # on the CPU, whatever the device of x
        return self.fc(x + self.pos(ids))


def test_cpu_indices_into_a_meta_embedding_run_as_in_torch() -> None:
    model = PositionIds()
    x = torch.randn(2, 5, 4)
    with torch.device("meta"):
        plain = PositionIds()
    assert plain(x.to("meta")).shape == (2, 5, 4)  # torch runs it on meta by itself
    before = snapshot(model)
    report = inn.inspect(model, x, device="meta")
    assert report.error is None
    assert report.outputs[0].shape == (2, 5, 4) and report.outputs[0].device == "meta"
    assert report.layer("pos").outputs[0].device == "meta"
    assert_unchanged(model, before)


def test_a_device_fix_never_moves_the_model_where_it_already_is() -> None:
    class Ones(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(torch.ones(x.shape))

    with pytest.raises(inn.DeviceMismatchError) as info:
        inn.inspect(Ones(), torch.randn(2, 4), device="meta")
    err = info.value
    assert err.layer == "fc" and err.producer == "torch.ones"
    assert "model.to(" not in err.fix and "model.to(" not in str(err)
    assert "torch.ones(x.shape, device=x.device)" in err.fix


# ---------------------------------------------------------------------------
# Tensors made on the CPU during a meta run: the line, the cause, a fix that works
# ---------------------------------------------------------------------------

LSTM_SOURCE = '''
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        h_0 = torch.zeros(1, x.shape[0], 6)
        c_0 = torch.zeros(1, x.shape[0], 6)
        out, _ = self.lstm(x, (h_0, c_0))
        return self.head(out[:, -1])
'''

ONES_SOURCE = '''
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, inputs):
        scale = torch.ones(inputs.shape)
        return self.fc(inputs) * scale
'''

ARANGE_SOURCE = '''
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x + torch.arange(4).float())
'''


def _load(tmp_path: Path, name: str, source: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(module)
    return module


def _apply(source: str, fix: str) -> str:
    """``source`` with each line the fix gives (``... device=x.device)``) put in place."""
    code = fix.split(": ", 1)[1].split("; or inspect with", 1)[0]
    fixed = source
    for line in code.split("; "):
        original = re.sub(r",? ?device=\w+\.device", "", line)
        assert original in fixed, (original, fixed)
        fixed = fixed.replace(original, line)
    assert fixed != source
    return fixed


@pytest.mark.parametrize(
    ("source", "shape", "producer", "made", "layer"),
    [
        (LSTM_SOURCE, (2, 5, 4), "torch.zeros", "torch.zeros(1, 2, 6)", "lstm"),
        (ONES_SOURCE, (2, 4), "torch.ones", "torch.ones(<Size>)", ""),
        (ARANGE_SOURCE, (2, 4), "torch.arange", "torch.arange(4)", ""),
    ],
    ids=["lstm_h0", "ones_like_shape", "arange"],
)
def test_cpu_tensor_made_in_forward_names_the_line_and_the_fix_works(
    tmp_path: Path, source: str, shape: tuple[int, ...], producer: str, made: str, layer: str
) -> None:
    name = f"cpu_made_{producer.replace('.', '_')}"
    model = _load(tmp_path, name, source).Model()
    x = torch.randn(*shape)
    with pytest.raises(inn.DeviceMismatchError) as info:
        inn.inspect(model, x, device="meta")
    err = info.value
    text = str(err)
    assert err.layer == layer and err.producer == producer
    assert err.expected == "meta" and err.got == "cpu"
    assert "got a tensor on cpu in a run on meta" in text.splitlines()[0]
    assert f"  made by:    {made} in the forward of the root module, at {tmp_path}" in text
    assert "without device= is made on cpu" in text
    assert "Tensor on device" not in text.splitlines()[0]
    lines = [i for i, line in enumerate(source.splitlines(), 1) if producer + "(" in line]
    for n in lines:  # every line that makes a CPU tensor is named
        assert f"{name}.py:{n}: " in text
    assert err.fix.startswith("create ") and "device=" in err.fix
    assert "model.to(" not in err.fix
    # The fix, applied: the meta run goes through and matches the CPU shapes.
    fixed = _load(tmp_path, name + "_fixed", _apply(source, err.fix)).Model()
    fixed.load_state_dict(model.state_dict())
    on_meta = inn.inspect(fixed, x, device="meta")
    assert on_meta.error is None
    assert on_meta.outputs[0].shape == inn.inspect(model, x).outputs[0].shape
    # The other fix it names: inspect on the CPU, where the model is.
    assert "or inspect with device='cpu'" in err.fix
    assert inn.inspect(model, x, device="cpu").error is None


def test_a_plain_attribute_tensor_says_register_buffer_and_that_works() -> None:
    class Masked(nn.Module):
        def __init__(self, as_buffer: bool) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            if as_buffer:
                self.register_buffer("mask", torch.ones(4), persistent=False)
            else:
                self.mask = torch.ones(4)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(x) * self.mask

    with pytest.raises(inn.DeviceMismatchError) as info:
        inn.inspect(Masked(as_buffer=False), torch.randn(2, 4), device="meta")
    assert "not a buffer" in str(info.value)
    assert "register_buffer(" in info.value.fix
    assert inn.inspect(Masked(as_buffer=True), torch.randn(2, 4), device="meta").error is None


def test_a_module_in_a_plain_list_says_module_list_and_that_works() -> None:
    class Stack(nn.Module):
        def __init__(self, registered: bool) -> None:
            super().__init__()
            blocks = [nn.Linear(4, 4), nn.Linear(4, 4)]
            self.blocks: Any = nn.ModuleList(blocks) if registered else blocks

        def forward(self, x: Tensor) -> Tensor:
            for block in self.blocks:
                x = block(x)
            return x

    with pytest.raises(inn.DeviceMismatchError) as info:
        inn.inspect(Stack(registered=False), torch.randn(2, 4), device="meta")
    assert "nn.ModuleList" in info.value.fix and "not registered" in str(info.value)
    assert inn.inspect(Stack(registered=True), torch.randn(2, 4), device="meta").error is None


# ---------------------------------------------------------------------------
# Ops torch cannot run on meta
# ---------------------------------------------------------------------------


class Unique(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x) * torch.unique(x).numel()


class BoolIndex(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x[x > 0].view(-1, 4))


class Repeat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        counts = torch.tensor([1, 2], device=x.device)
        return self.fc(torch.repeat_interleave(x, counts, dim=0))


class ToCpu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x).cpu()


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (Unique, "torch.unique (aten::_unique2) has no meta kernel"),
        (BoolIndex, "shape depends on the tensor's values"),
        (Repeat, "shape depends on the tensor's values"),
        (ToCpu, "Tensor.cpu copies the tensor's data off meta"),
    ],
)
def test_an_op_without_meta_kernel_says_so_and_cpu_works(
    model: Callable[[], nn.Module], why: str
) -> None:
    x = torch.ones(2, 4)
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(model(), x, device="meta")
    text = str(info.value)
    assert why in text
    assert "  fix:        inspect with device='cpu'" in text
    assert inn.inspect(model(), x, device="cpu").error is None  # the fix, applied


# ---------------------------------------------------------------------------
# autocast does nothing on meta
# ---------------------------------------------------------------------------


class Autocast(nn.Module):
    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)
        self.enabled = enabled

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.enabled):
            y = self.fc(x)
        return self.out(y.float())


class AutocastOff(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast("cpu", enabled=False):
            return self.fc(x)


def test_autocast_on_meta_is_a_finding_and_cpu_shows_its_dtype() -> None:
    x = torch.randn(2, 4)
    on_meta = inn.inspect(Autocast(), x, device="meta")
    assert on_meta.layer("fc").outputs[0].dtype == "float32"  # torch: no autocast on meta
    found = [f for f in on_meta.findings if f.kind == "autocast-on-meta"]
    assert len(found) == 1 and found[0].severity == "warning"
    line = next(
        n for n, text in enumerate(Path(__file__).read_text().splitlines(), 1)
        if 'with torch.autocast("cpu", dtype=torch.bfloat16' in text
    )  # fmt: skip
    assert f"{__file__}:{line}: with torch.autocast" in found[0].message
    assert "run in bfloat16" in found[0].message and "device='cpu'" in found[0].fix
    on_cpu = inn.inspect(Autocast(), x, device="cpu")  # the fix, applied
    assert on_cpu.layer("fc").outputs[0].dtype == "bfloat16"
    assert not [f for f in on_cpu.findings if f.kind == "autocast-on-meta"]
    off = inn.inspect(AutocastOff(), x, device="meta")
    assert not [f for f in off.findings if f.kind == "autocast-on-meta"]


def test_a_model_input_on_another_device_offers_both_moves_and_both_work() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(2, 4)
    with pytest.raises(inn.DeviceMismatchError) as info:
        inn.inspect(model, x.to("meta"))  # the model is on the CPU: no device= given
    err = info.value
    assert err.layer == "0" and err.producer is None
    assert err.fix == "move the input with x.to('cpu'), or the model with model.to('meta')"
    assert "the model input, on meta" in str(err)
    assert inn.inspect(model, torch.empty_like(x.to("meta"), device="cpu")).error is None
    assert inn.inspect(copy.deepcopy(model).to("meta"), x.to("meta")).error is None


def test_a_layer_left_on_another_device_is_the_one_to_move() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[1].to("meta")  # the rest of the model is on the CPU
    with pytest.raises(inn.DeviceMismatchError) as info:
        inn.inspect(model, torch.randn(2, 4))
    fix = info.value.fix
    assert "model.to('cpu')" not in fix  # the model is on the CPU already
    assert "or materialise '1' on cpu, where the rest of the model is" in fix
    assert fix.endswith("call .to_empty(device='cpu') on it, then reset_parameters() or load "
                        "its weights")
    model[1].to_empty(device="cpu")  # the fix, applied (a meta layer holds no weights)
    model[1].reset_parameters()
    assert inn.inspect(model, torch.randn(2, 4)).error is None
