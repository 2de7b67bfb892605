"""Diagnosed errors and findings: one small bug model per layer contract.

Every contract has a model built here that breaks it. Its error message is compared
exactly with ``tests/golden/diag/<name>.txt``; regenerate deliberately with
``INSPECTNN_UPDATE_GOLDEN=1 pytest tests/test_diagnostics.py`` and read each changed
file: it must name the layer, what it got, what it expected, the dimension at fault
(when there is one), where the input came from, and a fix. Paths under ``tests/`` are
written as ``<tests>`` and their line numbers as ``<line>`` in the golden files, so
editing this file does not change them; the tests check the exact line separately.

"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import models as zoo
import pytest
import torch
from torch import Tensor, nn

import inspectnn as inn

GOLDEN = Path(__file__).parent / "golden" / "diag"
_HERE = Path(__file__)
_TEST_DIRS = sorted({str(_HERE.parent), str(_HERE.resolve().parent)}, key=len, reverse=True)


def _normalize(text: str) -> str:
    """Machine-independent text: ``<tests>/file.py:<line>`` for frames under tests/."""
    for d in _TEST_DIRS:
        text = text.replace(d, "<tests>")
    return re.sub(r"(<tests>/[\w.]+\.py):\d+", r"\1:<line>", text)


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("INSPECTNN_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    assert path.exists(), f"missing {path}; run with INSPECTNN_UPDATE_GOLDEN=1 to create it"
    assert text + "\n" == path.read_text(encoding="utf-8")


def _raises(model: nn.Module, *args: Any, **kwargs: Any) -> inn.ForwardError:
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(model, *args, **kwargs)
    return info.value


def _line_of(path: Path, code: str) -> int:
    """1-based number of the only line of ``path`` that contains ``code``."""
    lines = path.read_text().splitlines()
    hits = [i for i, line in enumerate(lines, 1) if line.strip().startswith(code)]
    assert len(hits) == 1, hits
    return hits[0]


# ---------------------------------------------------------------------------
# Bug models (tiny, CPU)
# ---------------------------------------------------------------------------


def seed_cnn() -> nn.Sequential:
    """The seeds' CIFAR CNN: two conv/pool blocks, Flatten, Linear(32*8*8, 10) for 32x32."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )  # fmt: skip


class BilinearBug(nn.Module):
    """``bil`` wants 5 features in input2; ``right`` makes 6."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Linear(3, 4)
        self.right = nn.Linear(3, 6)
        self.bil = nn.Bilinear(4, 5, 2)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.bil(self.left(x), self.right(x))
        return out


class RNNBug(nn.Module):
    """``embed`` makes 3 features, the recurrent layer wants 4."""

    def __init__(self, cls: type[nn.RNNBase]) -> None:
        super().__init__()
        self.embed = nn.Linear(2, 3)
        self.rnn = cls(4, 6, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.rnn(self.embed(x))[0]
        return out


class LSTMStateBug(nn.Module):
    """batch_first=True, and h_0/c_0 built batch-first too: they must be (layers, batch, hidden)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        h0 = torch.zeros(x.shape[0], 1, 6)
        c0 = torch.zeros(x.shape[0], 1, 6)
        out: Tensor = self.lstm(x, (h0, c0))[0]
        return out


class SelfAttentionBug(nn.Module):
    """``proj`` makes 6 features, ``attn`` has embed_dim=8."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 6)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        h = self.proj(x)
        out: Tensor = self.attn(h, h, h)[0]
        return out


class CrossAttentionBug(nn.Module):
    """``attn`` has kdim=vdim=6; the memory from ``mem`` has 5 features."""

    def __init__(self) -> None:
        super().__init__()
        self.mem = nn.Linear(3, 5)
        self.attn = nn.MultiheadAttention(8, 2, kdim=6, vdim=6, batch_first=True)

    def forward(self, q: Tensor, memory: Tensor) -> Tensor:
        kv = self.mem(memory)
        out: Tensor = self.attn(q, kv, kv)[0]
        return out


class EncoderBug(nn.Module):
    """``proj`` makes 6 features, the encoder layer has d_model=8."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 6)
        self.enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.enc(self.proj(x))
        return out


def meta_second_layer() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[1].to("meta")
    return model


class CatBug(nn.Module):
    """A U-Net-style skip: ``up`` loses a pixel, so the maps cannot be concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.Conv2d(3, 4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.down(x), self.up(x)], dim=1)


class AddBug(nn.Module):
    """A residual add of 3 and 5 features."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 5)

    def forward(self, x: Tensor) -> Tensor:
        return self.a(x) + self.b(x)


# ---------------------------------------------------------------------------
# One bug per contract
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bug:
    """A model and input that break one contract, and the facts the error must carry.

    Attributes:
        model: Model factory.
        inputs: Factory of the positional inputs.
        error: The exact exception class.
        layer: ``.layer``: dotted path of the layer whose contract breaks.
        expected: ``.expected``.
        got: ``.got``.
        producer: ``.producer`` (None for a model input).
        dim: The dimension at fault the message must name, or None.
        mode: ``mode`` for inspect.
        phrases: More text the message must contain.
    """

    model: Callable[[], nn.Module]
    inputs: Callable[[], tuple[Tensor, ...]]
    error: type[inn.ForwardError]
    layer: str
    expected: str
    got: str
    producer: str | None
    dim: int | None = None
    mode: str = "eval"
    phrases: tuple[str, ...] = ()


Shape, Dtype, Device = inn.ShapeMismatchError, inn.DtypeMismatchError, inn.DeviceMismatchError


def _randn(*shape: int) -> Callable[[], tuple[Tensor, ...]]:
    return lambda: (torch.randn(*shape),)


def _ids(*rows: list[int]) -> Callable[[], tuple[Tensor, ...]]:
    return lambda: (torch.tensor(list(rows)),)


BUGS: dict[str, Bug] = {
    "linear_after_flatten": Bug(
        seed_cnn, _randn(2, 3, 64, 64), Shape, "7", "[*, 2048]", "[2, 8192]", "6", dim=1,
        phrases=("in_features=2048", "32*16*16 = 8192 features", "the input is 64x64",
                 "2048 features need 32x32 input", "nn.Linear(8192, 10)"),
    ),
    "linear_after_linear": Bug(
        lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(32, 4)), _randn(2, 8),
        Shape, "2", "[*, 32]", "[2, 16]", "0", dim=1, phrases=("nn.Linear(16, 4)",),
    ),
    "bilinear_input2": Bug(
        BilinearBug, _randn(2, 3), Shape, "bil", "[*, 5]", "[2, 6]", "right", dim=1,
        phrases=("cannot take its input2", "nn.Bilinear(4, 6, 2)"),
    ),
    "conv1d_channels": Bug(
        lambda: nn.Sequential(nn.Conv1d(4, 8, 3), nn.ReLU(), nn.Conv1d(16, 8, 3)),
        _randn(2, 4, 10), Shape, "2", "16 channels in dimension 1", "[2, 8, 8]", "0", dim=1,
        phrases=("in_channels=16", "nn.Conv1d(8, 8, kernel_size=(3,), stride=(1,))"),
    ),
    "conv2d_channels": Bug(
        lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(16, 8, 3)),
        _randn(2, 3, 10, 10), Shape, "2", "16 channels in dimension 1", "[2, 8, 8, 8]", "0",
        dim=1, phrases=("in_channels=16", "nn.Conv2d(8, 8, kernel_size=(3, 3), stride=(1, 1))"),
    ),
    "conv3d_channels": Bug(  # an RGB volume into a grayscale Conv3d
        lambda: nn.Sequential(nn.Conv3d(1, 4, 3)), _randn(1, 3, 5, 5, 5), Shape, "0",
        "1 channels in dimension 1", "[1, 3, 5, 5, 5]", None, dim=1,
        phrases=(
            "the model input [1, 3, 5, 5, 5]",
            "nn.Conv3d(3, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1))",
        ),
    ),
    "conv_transpose2d_channels": Bug(
        lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ConvTranspose2d(4, 2, 2, stride=2)),
        _randn(1, 3, 6, 6), Shape, "1", "4 channels in dimension 1", "[1, 8, 4, 4]", "0",
        dim=1, phrases=("in_channels=4", "nn.ConvTranspose2d(8, 2"),
    ),
    "conv2d_input_smaller_than_kernel": Bug(
        lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 5)), _randn(1, 3, 6, 6),
        Shape, "1", ">= 5 in dimension 2", "[1, 4, 4, 4]", "0", dim=2,
        phrases=("smaller than the kernel", "padding=1"),
    ),
    "batchnorm1d_channels": Bug(
        lambda: nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(8)), _randn(3, 4), Shape, "1",
        "8 channels in dimension 1", "[3, 6]", "0", dim=1,
        phrases=("num_features=8", "nn.BatchNorm1d(6)"),
    ),
    "batchnorm2d_channels": Bug(
        lambda: nn.Sequential(nn.Conv2d(3, 6, 1), nn.BatchNorm2d(8)), _randn(2, 3, 4, 4),
        Shape, "1", "8 channels in dimension 1", "[2, 6, 4, 4]", "0", dim=1,
        phrases=("num_features=8", "nn.BatchNorm2d(6)"),
    ),
    "batchnorm1d_batch1_train": Bug(
        lambda: nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6)), _randn(1, 4), Shape, "1",
        "more than 1 value per channel", "[1, 6]", "0", dim=0, mode="train",
        phrases=("train-mode", "batch of 2 or more", "mode='eval'"),
    ),
    "layernorm_shape": Bug(
        lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.LayerNorm(8)), _randn(2, 4),
        Shape, "2", "[*, 8]", "[2, 6]", "0", dim=1,
        phrases=("normalized_shape=[8]", "nn.LayerNorm(6)"),
    ),
    "groupnorm_channels": Bug(
        lambda: nn.Sequential(nn.Conv2d(3, 6, 1), nn.GroupNorm(2, 8)), _randn(2, 3, 4, 4),
        Shape, "1", "8 channels in dimension 1", "[2, 6, 4, 4]", "0", dim=1,
        phrases=("num_channels=8", "nn.GroupNorm(2, 6)"),
    ),
    "instancenorm2d_affine_channels": Bug(
        lambda: nn.Sequential(nn.Conv2d(3, 6, 1), nn.InstanceNorm2d(8, affine=True)),
        _randn(2, 3, 4, 4), Shape, "1", "8 channels in dimension 1", "[2, 6, 4, 4]", "0",
        dim=1, phrases=("num_features=8", "nn.InstanceNorm2d(6"),
    ),
    "embedding_float_input": Bug(
        lambda: nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)),
        lambda: (torch.rand(2, 3) * 10,), Dtype, "0", "int64 (or int32) indices", "float32",
        None, phrases=("float32 tensor [2, 3] on cpu", "x.long()"),
    ),
    "embedding_index_out_of_range": Bug(
        lambda: nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)), _ids([1, 2, 12]), Shape,
        "0", "indices in [0, 9]", "index 12", None,
        phrases=("num_embeddings=10", "nn.Embedding(13, 4)"),
    ),
    "embeddingbag_index_out_of_range": Bug(
        lambda: nn.Sequential(nn.EmbeddingBag(10, 4), nn.Linear(4, 2)), _ids([1, 15, 2]),
        Shape, "0", "indices in [0, 9]", "index 15", None,
        phrases=("num_embeddings=10", "nn.EmbeddingBag(16, 4)"),
    ),
    "rnn_input_size": Bug(
        lambda: RNNBug(nn.RNN), _randn(2, 5, 2), Shape, "rnn", "[..., 4]", "[2, 5, 3]",
        "embed", dim=2, phrases=("input_size=4", "nn.RNN(3, 6, batch_first=True)"),
    ),
    "lstm_input_size": Bug(
        lambda: RNNBug(nn.LSTM), _randn(2, 5, 2), Shape, "rnn", "[..., 4]", "[2, 5, 3]",
        "embed", dim=2, phrases=("input_size=4", "nn.LSTM(3, 6, batch_first=True)"),
    ),
    "gru_input_size": Bug(
        lambda: RNNBug(nn.GRU), _randn(2, 5, 2), Shape, "rnn", "[..., 4]", "[2, 5, 3]",
        "embed", dim=2, phrases=("input_size=4", "nn.GRU(3, 6, batch_first=True)"),
    ),
    "lstm_h0_batch_first": Bug(
        LSTMStateBug, _randn(3, 5, 4), Shape, "lstm", "[1, 3, 6]", "[3, 1, 6]", "torch.zeros",
        phrases=("cannot take its h_0", "batch_first=True", "torch.zeros(1, 3, 6)"),
    ),
    "mha_embed_dim": Bug(
        SelfAttentionBug, _randn(2, 5, 4), Shape, "attn", "[..., 8]", "[2, 5, 6]", "proj",
        dim=2,
        phrases=(
            "cannot take its query", "embed_dim=8", "nn.MultiheadAttention(6, 2, batch_first=True)"
        ),
    ),
    "mha_kdim": Bug(
        CrossAttentionBug, lambda: (torch.randn(2, 5, 8), torch.randn(2, 7, 3)), Shape, "attn",
        "[..., 6]", "[2, 7, 5]", "mem", dim=2,
        phrases=("cannot take its key", "kdim=6", "kdim=5, vdim=5, batch_first=True)"),
    ),
    "transformer_encoder_layer_d_model": Bug(
        EncoderBug, _randn(2, 5, 4), Shape, "enc", "[..., 8]", "[2, 5, 6]", "proj",
        dim=2,
        phrases=("d_model=8", "nn.TransformerEncoderLayer(d_model=6, nhead=2, batch_first=True)"),
    ),
    "flatten_start_dim": Bug(
        lambda: nn.Sequential(nn.Linear(4, 4), nn.Flatten(start_dim=2)), _randn(2, 4), Shape,
        "1", "at least 3-D", "[2, 4]", "0", phrases=("start_dim=2", "nn.Flatten(start_dim=1)"),
    ),
    "unflatten_size": Bug(
        lambda: nn.Sequential(nn.Linear(4, 12), nn.Unflatten(1, (5, 2))), _randn(2, 4), Shape,
        "1", "10 in dimension 1", "[2, 12]", "0", dim=1, phrases=("unflattened_size=(5, 2)",),
    ),
    "maxpool2d_window_too_large": Bug(
        lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(4)), _randn(1, 1, 5, 5), Shape,
        "1", ">= 4 in dimension 2", "[1, 2, 3, 3]", "0", dim=2,
        phrases=("pooling window (4) is larger than the input (3)", "AdaptiveMaxPool2d"),
    ),
    "pixelshuffle_channels": Bug(
        lambda: nn.Sequential(nn.Conv2d(1, 6, 1), nn.PixelShuffle(2)), _randn(1, 1, 3, 3),
        Shape, "1", "channels divisible by 4", "[1, 6, 3, 3]", "0", dim=1,
        phrases=("upscale_factor**2=4", "8 channels before the shuffle"),
    ),
    "linear_float64_input": Bug(
        lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)),
        lambda: (torch.randn(2, 4, dtype=torch.float64),), Dtype, "0", "float32", "float64",
        None, phrases=("float64 tensor [2, 4] on cpu", "dtype of weight", "x.float()"),
    ),
    "linear_int64_input": Bug(
        lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)),
        lambda: (torch.randint(0, 5, (2, 4)),), Dtype, "0", "float32", "int64", None,
        phrases=("int64 tensor [2, 4] on cpu", "x.float()", "integer tensor"),
    ),
    "linear_weight_on_other_device": Bug(
        meta_second_layer, _randn(2, 4), Device, "1", "meta", "cpu", "0",
        phrases=("'1' (Linear", "same device as weight (meta)", "on cpu", "x.to('meta')"),
    ),
}  # fmt: skip


def _expect(bug: Bug, err: inn.ForwardError) -> None:
    """The facts every diagnosed error carries, as attributes and in its message."""
    assert type(err) is bug.error
    assert isinstance(err, inn.ForwardError) and isinstance(err, RuntimeError)
    assert err.layer == bug.layer
    assert err.expected == bug.expected
    assert err.got == bug.got
    assert err.producer == bug.producer
    assert err.fix
    text = str(err)
    lines = text.splitlines()
    head = f"'{bug.layer}' (" if bug.layer else "the root module ("
    assert lines[0].startswith(head) and lines[0].endswith(".")
    assert lines[1].startswith("  got:        ")
    assert lines[2].startswith("  expected:   ")
    assert bug.got in lines[1]
    assert lines[2].startswith(f"  expected:   {bug.expected}: ")
    fault = [line for line in lines if line.startswith("  at fault:")]
    if bug.dim is None:
        assert not fault
    else:
        assert fault == [fault[0]] and fault[0].startswith(f"  at fault:   dimension {bug.dim} ")
    source = [line for line in lines if line.startswith("  input from: ")]
    assert len(source) == 1
    if bug.producer is None:
        assert source[0].startswith("  input from: the model input [")
    else:
        assert source[0].startswith(f"  input from: {bug.producer} ")
    assert lines[-1] == f"  fix:        {err.fix}"
    for phrase in bug.phrases:
        assert phrase in text
    report = err.report
    assert report is not None and report.error is not None
    assert report.error.layer == bug.layer
    assert report.error.type == bug.error.__name__
    assert report.error.message == text
    kind = {Shape: "shape", Dtype: "dtype", Device: "device"}[bug.error]
    mine = [f for f in report.findings if f.layer == bug.layer and f.kind == f"{kind}-mismatch"]
    assert len(mine) == 1 and mine[0].severity == "error"


@pytest.mark.parametrize("name", list(BUGS))
def test_contract_error(name: str) -> None:
    bug = BUGS[name]
    err = _raises(bug.model(), *bug.inputs(), mode=bug.mode)
    _check_golden(name, str(err))
    if bug.error is Shape:  # inspectnn let the call run: PyTorch's own error is the cause
        assert isinstance(err.__cause__, Exception)
        assert not isinstance(err.__cause__, inn.InspectnnError)
    _expect(bug, err)


@pytest.mark.parametrize("name", ["linear_after_flatten", "conv2d_channels", "layernorm_shape"])
def test_same_message_on_meta(name: str) -> None:
    bug = BUGS[name]
    on_cpu = _raises(bug.model(), *bug.inputs(), mode=bug.mode)
    on_meta = _raises(bug.model(), *bug.inputs(), mode=bug.mode, device="meta")
    assert type(on_meta) is type(on_cpu)
    assert (on_meta.layer, on_meta.expected, on_meta.got, on_meta.producer, on_meta.fix) == (
        on_cpu.layer, on_cpu.expected, on_cpu.got, on_cpu.producer, on_cpu.fix,
    )  # fmt: skip
    assert "meta" in str(on_meta)
    assert str(on_meta).replace("meta", "cpu") == str(on_cpu)


def test_seed_cnn_on_64x64_suggests_32x32_input() -> None:
    err = _raises(seed_cnn(), torch.randn(2, 3, 64, 64))
    assert isinstance(err, inn.ShapeMismatchError)
    need = "2048 features need 32x32 input"
    assert err.fix == f"nn.Linear(8192, 10), or change the input size: {need}"
    assert "mat1 and mat2 shapes cannot be multiplied" in str(err.__cause__)
    assert inn.inspect(seed_cnn(), torch.randn(2, 3, 32, 32)).outputs[0].shape == (2, 10)


def test_embedding_index_out_of_range_is_not_seen_on_meta() -> None:
    """The index check reads values, which meta tensors do not have: no error there."""
    bug = BUGS["embedding_index_out_of_range"]
    report = inn.inspect(bug.model(), *bug.inputs(), device="meta")
    assert report.error is None


# ---------------------------------------------------------------------------
# Fixes keep the layer's other settings and name the layer the user built
# ---------------------------------------------------------------------------


def test_bilinear_rule_names_the_real_attribute() -> None:
    err = _raises(BilinearBug(), torch.randn(2, 3))
    assert "input2 must equal in2_features=5" in str(err)


def test_transformer_layer_fix_names_the_encoder_layer() -> None:
    err = _raises(EncoderBug(), torch.randn(2, 5, 4))
    assert err.fix == "nn.TransformerEncoderLayer(d_model=6, nhead=2, batch_first=True)"
    assert "'enc' (TransformerEncoderLayer" in str(err)


def test_conv_fix_keeps_stride() -> None:
    bug = BUGS["conv_transpose2d_channels"]
    err = _raises(bug.model(), *bug.inputs())
    assert "stride=(2, 2)" in err.fix


def test_instancenorm_fix_keeps_affine() -> None:
    bug = BUGS["instancenorm2d_affine_channels"]
    err = _raises(bug.model(), *bug.inputs())
    assert err.fix == "nn.InstanceNorm2d(6, affine=True)"


# ---------------------------------------------------------------------------
# Failures in a module's own code: plain ForwardError naming the op and the line
# ---------------------------------------------------------------------------


def _expect_op_error(err: inn.ForwardError, op: str, layer: str) -> str:
    assert type(err) is inn.ForwardError
    assert err.layer == layer
    assert isinstance(err.__cause__, RuntimeError)
    assert err.report is not None and err.report.error is not None
    assert err.report.error.layer == layer
    assert err.report.error.type == "ForwardError"
    text = str(err)
    assert text.startswith(f"{op} failed in the forward of ")
    assert f"  torch:      RuntimeError: {str(err.__cause__).splitlines()[0]}" in text
    return text


def test_view_in_simple_cnn_on_32x32() -> None:
    err = _raises(zoo.SimpleCNN(), torch.randn(2, 1, 32, 32))
    text = _expect_op_error(err, "Tensor.view", "")
    _check_golden("op_view_simple_cnn", _normalize(text))
    assert "the root module (SimpleCNN)" in text
    assert "got:        Tensor.view(2x32x8x8, -1, 1568)" in text
    assert "input from: pool#1 (MaxPool2d): [2, 32, 16, 16] -> [2, 32, 8, 8]" in text
    models_py = Path(zoo.__file__)
    line = _line_of(models_py, "x_flat = x2_pool.view(-1, 32 * 7 * 7)")
    assert f"{models_py}:{line}: x_flat = x2_pool.view(-1, 32 * 7 * 7)" in text
    assert "(or give the model the input size the shape was written for)" in text
    assert inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28)).error is None  # applied


class _FlatView(nn.Module):
    """``x.view(-1, 1568)`` after a conv, or the fix: ``x.flatten(1)`` into ``fc``."""

    def __init__(self, fixed: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 32, 3, padding=1)
        self.fc = nn.Linear(2048 if fixed else 1568, 10)
        self.fixed = fixed

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)
        out: Tensor = self.fc(h.flatten(1) if self.fixed else h.view(-1, 1568))
        return out


def test_view_fix_applied_makes_the_forward_run() -> None:
    x = torch.randn(2, 1, 8, 8)
    err = _raises(_FlatView(fixed=False), x)
    assert "x.flatten(1)" in str(err) and "make the next layer take 2048 features" in str(err)
    assert inn.inspect(_FlatView(fixed=True), x).error is None


def test_cat_of_mismatched_maps() -> None:
    err = _raises(CatBug(), torch.randn(2, 3, 8, 8))
    text = _expect_op_error(err, "torch.cat", "")
    _check_golden("op_cat", _normalize(text))
    assert "got:        torch.cat(2x4x8x8, 2x4x7x7, dim=1)" in text
    assert "input 0:    [2, 4, 8, 8] from down (Conv2d): [2, 3, 8, 8] -> [2, 4, 8, 8]" in text
    assert "input 1:    [2, 4, 7, 7] from up (Conv2d): [2, 3, 8, 8] -> [2, 4, 7, 7]" in text
    assert "at fault:   dimension 2: sizes 8, 7 (torch.cat needs every dimension but dim=1" in text
    assert text.splitlines()[-1] == (
        "  fix:        make dimension 2 agree before torch.cat: make 'up' nn.Conv2d(3, 4, "
        "kernel_size=(2, 2), stride=(1, 1), padding='same') (padding='same' keeps a stride-1 "
        "conv's size)"
    )
    model = CatBug()
    model.up = nn.Conv2d(3, 4, kernel_size=(2, 2), stride=(1, 1), padding="same")  # applied
    with warnings.catch_warnings():  # torch's note on padding='same' with an even kernel
        warnings.simplefilter("ignore", UserWarning)
        assert inn.inspect(model, torch.randn(2, 3, 8, 8)).error is None
    line = _line_of(_HERE, "return torch.cat([self.down(x), self.up(x)], dim=1)")
    assert f"test_diagnostics.py:{line}: return torch.cat(" in text


def test_broadcast_add_that_fails() -> None:
    err = _raises(AddBug(), torch.randn(2, 4))
    text = _expect_op_error(err, "Tensor.add", "")
    _check_golden("op_broadcast_add", _normalize(text))
    assert "got:        Tensor.add(2x3, 2x5)" in text
    assert "input from: a (Linear): [2, 4] -> [2, 3]" in text
    line = _line_of(_HERE, "return self.a(x) + self.b(x)")
    assert f"test_diagnostics.py:{line}: return self.a(x) + self.b(x)" in text


# ---------------------------------------------------------------------------
# Findings of a forward that runs
# ---------------------------------------------------------------------------


def _only(report: inn.Report, kind: str) -> inn.Finding:
    found = [f for f in report.findings if f.kind == kind]
    assert len(found) == 1, report.findings
    return found[0]


class Scale(nn.Module):
    """Multiplies by a float64 buffer: float32 activations silently become float64."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.full((4,), 0.5, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class ToDouble(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.double()


def test_float64_buffer_promotes_activations() -> None:
    report = inn.inspect(nn.Sequential(nn.Linear(4, 4), Scale(), nn.ReLU()), torch.randn(2, 4))
    assert report.error is None
    assert report.outputs[0].dtype == "float64"
    promo = _only(report, "dtype-promotion")
    assert (promo.severity, promo.layer) == ("warning", "1")
    assert "1 (Scale) turns float32 input into float64 output" in promo.message
    assert "every layer after it computes in the wider type" in promo.message
    assert "model.to(torch.float32)" in promo.fix
    mixed = _only(report, "mixed-dtypes")
    assert (mixed.severity, mixed.layer) == ("warning", "1")
    assert "`1.scale` is float64; the other 2 tensors are float32" in mixed.message
    assert "model.float()" in mixed.fix


def test_mixed_dtypes_names_the_odd_layer() -> None:
    model = nn.Sequential(nn.Linear(4, 4), ToDouble(), nn.Linear(4, 4).double(), nn.ReLU())
    report = inn.inspect(model, torch.randn(2, 4))
    assert report.error is None
    mixed = _only(report, "mixed-dtypes")
    assert (mixed.severity, mixed.layer) == ("warning", "2")
    assert mixed.message == (
        "Parameters and buffers have mixed dtypes: `2.weight` is float64, `2.bias` is "
        "float64; the other 2 tensors are float32."
    )
    assert "model.float()" in mixed.fix
    promo = _only(report, "dtype-promotion")
    assert (promo.severity, promo.layer) == ("warning", "1")


def test_dead_computation_in_simple_cnn() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    dead = _only(report, "dead-computation")
    assert (dead.severity, dead.layer) == ("warning", "conv_skip_adjust")
    start = "The output of conv_skip_adjust (Conv2d) -> pool#2 (MaxPool2d) (2x32x7x7)"
    assert dead.message.startswith(start)
    assert "never reaches the model's outputs" in dead.message
    assert "its 544 parameters get no gradient" in dead.message
    assert "add it to the main path" in dead.fix and "remove the call" in dead.fix
    assert not [f for f in report.findings if f.kind == "never-called"]


class DeadBeside(nn.Module):
    """``fc`` runs, and the output is made from the input alone: no submodule feeds it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        _ = self.fc(x)
        return x * 2


def test_dead_computation_when_the_output_reaches_no_submodule() -> None:
    dead = _only(inn.inspect(DeadBeside(), torch.randn(2, 4)), "dead-computation")
    assert (dead.severity, dead.layer) == ("warning", "fc")
    assert dead.message.startswith("The output of fc (Linear) (2x4) never reaches")
    assert "its 20 parameters get no gradient" in dead.message


class Count(nn.Module):
    def forward(self, x: Tensor) -> int:
        return int(x.shape[0] > 1)


class Positive(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sum() > 0


class Detect(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(x)
        return out


class Steered(nn.Module):
    """Submodules whose results only steer ``if``s: a Python int, a 0-d tensor, and a
    [2, 4] tensor reduced by ``.any()`` before the ``if`` reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.count, self.positive, self.detect = Count(), Positive(), Detect()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        if self.count(x):
            x = x + 1
        if self.positive(x):
            x = x - 1
        if (self.detect(x) > 10).any():
            x = x * 0
        out: Tensor = self.fc(x)
        return out


def test_results_read_by_an_if_are_not_dead() -> None:
    report = inn.inspect(Steered(), torch.randn(2, 4))
    assert not [f for f in report.findings if f.kind == "dead-computation"]


class Unused(nn.Module):
    """``spare`` (parameters) and ``act`` (none) are defined but never called."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 4)
        self.spare = nn.Linear(4, 3)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.used(x)
        return out


def test_never_called_modules() -> None:
    report = inn.inspect(Unused(), torch.randn(2, 4))
    found = {f.layer: f for f in report.findings if f.kind == "never-called"}
    assert set(found) == {"spare", "act"}
    spare, act = found["spare"], found["act"]
    assert spare.severity == "warning"
    assert spare.message == (
        "spare (Linear) was never called in this forward; its 15 parameters get no gradient."
    )
    assert "Call it in forward, or delete it" in spare.fix
    assert "find_unused_parameters=True" in spare.fix
    assert act.severity == "info"
    assert act.message == "act (ReLU) was never called in this forward."


class Log(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x)


def _log_net() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2), Log(), nn.Linear(2, 2))
    with torch.no_grad():  # the identity: Log sees the input itself
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    return net


@pytest.mark.parametrize(
    ("rows", "what", "seen"),
    [([[1.0, -2.0], [0.5, 3.0]], "NaN", "[-2, 3]"), ([[1.0, 0.0], [0.5, 3.0]], "Inf", "[0, 3]")],
    ids=["log-of-negative", "log-of-zero"],
)
def test_check_numerics_names_the_first_non_finite_layer(
    rows: list[list[float]], what: str, seen: str
) -> None:
    x = torch.tensor(rows)
    report = inn.inspect(_log_net(), x, check_numerics=True)
    found = _only(report, "non-finite")
    assert (found.severity, found.layer) == ("error", "1")
    assert found.message == (
        f"1 (Log) is the first layer whose output holds {what}; its input ranged over {seen}."
    )
    assert "log/sqrt of a non-positive value" in found.fix
    assert report.findings[0] is found  # errors first
    assert not [f for f in inn.inspect(_log_net(), x).findings if f.kind == "non-finite"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_model_given_a_cpu_input() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).cuda()
    with pytest.raises(inn.DeviceMismatchError) as info:
        inn.inspect(model, torch.randn(2, 4))
    assert info.value.layer == "0"
    assert "model.to('cpu')" in info.value.fix and "x.to('cuda:0')" in info.value.fix


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_half_the_model_on_the_gpu() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    model[2].cuda()
    with pytest.raises(inn.DeviceMismatchError) as info:
        inn.inspect(model, torch.randn(2, 4))
    assert info.value.layer == "2"
    report = info.value.report
    assert report is not None
    assert any(f.kind == "mixed-devices" and f.severity == "error" for f in report.findings)


def test_autocast_mixed_dtypes_are_not_flagged() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(2, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        report = inn.inspect(model, x)
    assert report.outputs[0].dtype == "bfloat16"
    assert not [f for f in report.findings if f.kind == "dtype-mismatch"]


def test_never_called_repeats_across_blocks_are_one_finding() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.unused_dropout = nn.Dropout(0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    model = nn.Sequential(*[Block() for _ in range(5)])
    found = [f for f in inn.inspect(model, torch.randn(2, 4)).findings if f.kind == "never-called"]
    assert len(found) == 1
    assert found[0].message == (
        "*.unused_dropout (5 Dropout modules) were never called in this forward."
    )


def test_merging_leading_dimensions_is_not_a_batch_change() -> None:
    class Flat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(-1, x.size(-1))  # [B, T, C] -> [B*T, C], as Hugging Face's Conv1D

    report = inn.inspect(Flat(), torch.randn(2, 16, 8))
    assert not [f for f in report.findings if f.kind == "batch-changed"]


def test_value_dependent_control_flow_on_meta_says_what_to_do() -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # reads a value: impossible on meta
                return self.fc(x)
            return x

    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(Gate(), torch.ones(2, 4), device="meta")
    text = str(info.value)
    assert "Tensor.__bool__ failed in the forward of the root module (Gate)" in text
    assert "inspect with device='cpu'" in text and "attention_mask" in text
    assert inn.inspect(Gate(), torch.ones(2, 4)).error is None  # fine on the CPU


# ---------------------------------------------------------------------------
# Every fix works: applied as written, the forward runs
# ---------------------------------------------------------------------------


def _layer_call(fix: str) -> str:
    """The leading ``nn.X(...)`` of a fix, parentheses balanced."""
    depth = 0
    for i, ch in enumerate(fix):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == ")" and depth == 0:
            return fix[: i + 1]
    raise AssertionError(f"unbalanced fix {fix!r}")


def _replace(model: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """``model`` with the submodule at ``path`` replaced by ``new`` ("" replaces the model)."""
    if not path:
        return new
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent), name, new)
    return model


class _WithState(nn.Module):
    """An LSTM called with the state a fix gives."""

    def __init__(self, lstm: nn.LSTM, state: Tensor) -> None:
        super().__init__()
        self.lstm = lstm
        self.state = state

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.lstm(x, (self.state, self.state.clone()))[0]
        return out


def _materialise(model: nn.Module, path: str) -> nn.Module:
    layer = model.get_submodule(path)
    layer.to_empty(device="cpu")
    layer.reset_parameters()  # type: ignore[operator]
    return model


_INPUT_FIXES = ("x.unsqueeze(0)", "x.float()", "x.long()")

_BY_HAND: dict[str, tuple[str, Callable[[nn.Module], nn.Module]]] = {
    # name: (the words of the fix applied, how)
    "conv2d_input_smaller_than_kernel": (
        "padding=1", lambda m: _replace(m, "1", nn.Conv2d(4, 4, 5, padding=1))
    ),
    "maxpool2d_window_too_large": (
        "kernel_size (<= 3)", lambda m: _replace(m, "1", nn.MaxPool2d(3))
    ),
    "pixelshuffle_channels": ("8 channels", lambda m: _replace(m, "0", nn.Conv2d(1, 8, 1))),
    "lstm_h0_batch_first": (
        "torch.zeros(1, 3, 6)", lambda m: _WithState(m.lstm, torch.zeros(1, 3, 6))  # type: ignore[arg-type]
    ),
    "linear_weight_on_other_device": (
        ".to_empty(device='cpu') on it, then reset_parameters()", lambda m: _materialise(m, "1")
    ),
}  # fmt: skip


def apply_fix(
    name: str, err: inn.ForwardError, model: nn.Module, inputs: tuple[Any, ...], mode: str
) -> tuple[nn.Module, tuple[Any, ...], str]:
    """The model, inputs and mode with ``err``'s fix applied as its text says."""
    fix = getattr(err, "fix", "")
    if name in _BY_HAND:
        words, how = _BY_HAND[name]
        assert words in fix
        return how(model), inputs, mode
    if fix.startswith("nn."):
        new = eval(_layer_call(fix), {"nn": nn})  # the fix's own text, as a user would type it
        return _replace(model, err.layer, new), inputs, mode
    for code in _INPUT_FIXES:
        if code in fix:
            return model, tuple(eval(code, {"x": x}) for x in inputs), mode
    if "mode='eval'" in fix:
        return model, inputs, "eval"
    raise AssertionError(f"no way to apply the fix of {name}: {fix!r}")


@pytest.mark.parametrize("name", list(BUGS))
def test_fix_makes_the_forward_run(name: str) -> None:
    bug = BUGS[name]
    err = _raises(bug.model(), *bug.inputs(), mode=bug.mode)
    model, inputs, mode = apply_fix(name, err, bug.model(), bug.inputs(), bug.mode)
    report = inn.inspect(model, *inputs, mode=mode)
    assert report.error is None
    assert not [f for f in report.findings if f.severity == "error"]
