"""FLOP counts: formulas for fused kernels, uncounted ops reported, weights as used.

Each formula is checked against a count made another way: FlopCounterMode on
torch's reference decomposition (what the meta device runs), or a figure worked
out by hand in the test.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, prune
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import inspectnn as inn


def _meta_recount(rnn: nn.Module, x: Tensor | PackedSequence) -> int:
    """FlopCounterMode's count of a meta copy's forward: torch's Python reference code
    for the fused kernel (what inspectnn ran before it had a formula)."""
    meta = copy.deepcopy(rnn).to("meta")
    if isinstance(x, PackedSequence):  # batch_sizes stays on the CPU: the reference reads it
        mx: Any = x._replace(data=x.data.to("meta"))
    else:
        mx = x.to("meta")
    with FlopCounterMode(display=False) as counter:
        meta(mx)
    return counter.get_total_flops()


def _packed(batch_first: bool = False) -> PackedSequence:
    x = torch.randn(3, 5, 8) if batch_first else torch.randn(5, 3, 8)
    lengths = torch.tensor([2, 5, 3])  # unsorted: the packing sorts them
    return pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)


RNN_CASES = {
    "lstm": lambda: (nn.LSTM(8, 16), torch.randn(7, 3, 8)),
    "lstm-2-layers-bidirectional": lambda: (
        nn.LSTM(8, 16, 2, bidirectional=True),
        torch.randn(7, 3, 8),
    ),
    "lstm-batch-first-no-bias": lambda: (
        nn.LSTM(8, 16, 2, batch_first=True, bias=False),
        torch.randn(3, 7, 8),
    ),
    "lstm-proj-bidirectional": lambda: (
        nn.LSTM(8, 16, 2, bidirectional=True, proj_size=5),
        torch.randn(7, 3, 8),
    ),
    "lstm-unbatched": lambda: (nn.LSTM(8, 16), torch.randn(7, 8)),
    "gru-3-layers-bidirectional": lambda: (
        nn.GRU(8, 16, 3, bidirectional=True),
        torch.randn(7, 3, 8),
    ),
    "rnn-tanh": lambda: (nn.RNN(8, 16, 2), torch.randn(7, 3, 8)),
    "rnn-relu-batch-first": lambda: (
        nn.RNN(8, 16, 2, nonlinearity="relu", batch_first=True),
        torch.randn(3, 7, 8),
    ),
    "lstm-packed": lambda: (nn.LSTM(8, 16, 2), _packed()),
    "lstm-packed-proj-bidirectional": lambda: (
        nn.LSTM(8, 16, 2, bidirectional=True, proj_size=5, batch_first=True),
        _packed(batch_first=True),
    ),
    "gru-packed-bidirectional": lambda: (nn.GRU(8, 16, 2, bidirectional=True), _packed()),
    "rnn-relu-packed": lambda: (nn.RNN(8, 16, nonlinearity="relu"), _packed()),
}


@pytest.mark.parametrize("build", RNN_CASES.values(), ids=RNN_CASES.keys())
def test_rnn_formula_equals_the_meta_recount(build: Any) -> None:
    torch.manual_seed(0)
    rnn, x = build()
    report = inn.inspect(rnn, x)
    assert report.totals.flops == _meta_recount(rnn, x) > 0
    assert report.totals.uncounted_ops == ()


def test_rnn_formula_by_hand() -> None:
    """2 · rows · Σ|W|: every weight matrix of every layer and direction meets each row
    once (rows: time steps x batch, or the packed rows)."""
    lstm = nn.LSTM(8, 16, 2, bidirectional=True, proj_size=5)
    gates, hidden, proj = 4, 16, 5
    layer0 = gates * hidden * 8 + gates * hidden * proj + proj * hidden  # w_ih, w_hh, w_hr
    layer1 = gates * hidden * 2 * proj + gates * hidden * proj + proj * hidden
    per_row = 2 * 2 * (layer0 + layer1)  # two directions; 2 FLOPs per multiply-add
    assert inn.inspect(lstm, torch.randn(7, 3, 8)).totals.flops == 7 * 3 * per_row
    packed = _packed()  # lengths 2, 5, 3: 10 rows
    assert inn.inspect(lstm, packed).totals.flops == 10 * per_row


class _SeenOps(TorchDispatchMode):
    """Every aten op that reaches the dispatcher below inspect, with its tensors' devices."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, tuple[str, ...]]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        devices = tuple(a.device.type for a in args if isinstance(a, Tensor))
        self.ops.append((str(func), devices))
        return func(*args, **(kwargs or {}))


def test_rnn_flops_need_no_second_run() -> None:
    """The formula replaces a re-run of the kernel through torch's reference code on
    meta tensors, which cost ~6 ms per time step and layer (nn.LSTM(128, 128, 2) over
    100 steps: 1,238 ms under inspect against 2.2 ms plain): inspect runs exactly the
    aten ops a plain forward runs, none of them on meta."""
    lstm = nn.LSTM(16, 16, 2).eval()
    x = torch.randn(20, 2, 16)
    with torch.no_grad(), _SeenOps() as plain:
        lstm(x)
    with _SeenOps() as seen:
        report = inn.inspect(lstm, x)
    assert report.totals.flops == 2 * 20 * 2 * (2 * 64 * 16 + 2 * 64 * 16)
    assert seen.ops == plain.ops
    assert not any("meta" in devices for _, devices in seen.ops)


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
def test_packed_sequence_into_a_recurrent_layer(kind: type[nn.Module]) -> None:
    """The meta recount failed on a PackedSequence (batch_sizes must hold data) and killed
    a forward that runs: now the output is the forward's and the FLOPs are counted."""
    torch.manual_seed(0)
    rnn = kind(8, 4)
    packed = pack_padded_sequence(torch.randn(5, 3, 8), torch.tensor([5, 3, 2]))
    with torch.no_grad():
        expected = rnn(packed)[0].data
    report = inn.inspect(rnn, packed)
    assert report.error is None
    assert report.outputs[0].shape == tuple(expected.shape) == (10, 4)
    gates = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}[kind]
    assert report.totals.flops == 2 * 10 * (gates * 4 * 8 + gates * 4 * 4)  # 10 packed rows
    assert not [f for f in report.findings if f.kind == "flops-uncounted"]


def test_packed_sequence_on_meta() -> None:
    """device="meta" moves the packed data, not batch_sizes (which PackedSequence
    requires on the CPU); the count is the CPU run's."""
    lstm = nn.LSTM(8, 4, 2, bidirectional=True)
    packed = pack_padded_sequence(torch.randn(5, 3, 8), torch.tensor([5, 3, 2]))
    meta = inn.inspect(lstm, packed, device="meta")
    assert meta.error is None and meta.outputs[0].device == "meta"
    assert meta.totals.flops == inn.inspect(lstm, packed).totals.flops > 0
    assert packed.data.device.type == "cpu"  # the user's input is not moved


@torch.library.custom_op("inspectnn_test::fused_mm", mutates_args=())
def _fused_mm(a: Tensor, b: Tensor) -> Tensor:
    """A custom kernel that multiplies matrices: no FLOP formula exists for it."""
    return a @ b


class _Uncountable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        y = torch.ops.inspectnn_test.fused_mm(x, x.T)
        z = torch.linalg.solve(y + 5 * torch.eye(3), x)
        return self.fc(z), torch.fft.rfft(x)


class _ZeroByConvention(nn.Module):
    """Views, copies, indexing, elementwise math, reductions: zero FLOPs, nothing missing."""

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat([x, x.clone()]).view(-1, 2).contiguous()[1:]
        return (y * 2).softmax(-1).sum() + x[0].abs().max() + torch.where(x > 0, x, -x).mean()


def test_ops_without_a_formula_are_listed_not_silently_zero() -> None:
    report = inn.inspect(_Uncountable(), torch.randn(3, 4))
    missing = ("inspectnn_test.fused_mm", "aten._linalg_solve_ex", "aten._fft_r2c")
    assert report.totals.uncounted_ops == missing
    assert report.totals.flops == report.layer("fc").flops == 2 * 3 * 4 * 4
    findings = [f for f in report.findings if f.kind == "flops-uncounted"]
    assert [f.severity for f in findings] == ["warning"] * 3
    assert all(f.layer == "" for f in findings)
    assert all(op in f.message for op, f in zip(missing, findings, strict=True))
    data = report.to_dict()
    assert data["totals"]["uncounted_ops"] == list(missing)
    assert sum(f["kind"] == "flops-uncounted" for f in data["findings"]) == 3


class _Norms(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.norm(dim=-1), torch.norm(x, p="nuc")  # a vector norm; a nuclear one (SVD)


def test_a_norm_that_factors_a_matrix_is_listed() -> None:
    """torch.norm was taken as zero unseen; a nuclear norm runs an SVD."""
    report = inn.inspect(_Norms(), torch.randn(3, 4))
    assert report.totals.uncounted_ops == ("aten._linalg_svd",)


def test_zero_flop_ops_are_not_reported_uncounted() -> None:
    report = inn.inspect(_ZeroByConvention(), torch.randn(3, 4))
    assert report.totals.flops == 0
    assert report.totals.uncounted_ops == ()
    assert "uncounted_ops" not in report.to_dict()["totals"]
    assert not [f for f in report.findings if f.kind == "flops-uncounted"]


class _MatrixVector(nn.Module):
    def forward(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        ones = x.new_ones(4, 5)
        return x @ v, torch.addmm(torch.zeros(3, 5), x, ones).addmm_(x, ones)


def test_matmul_variants_flop_counter_misses_are_counted() -> None:
    """x @ v runs aten.mv and addmm_ is in-place: FlopCounterMode has no formula for
    either (it counts 0); inspectnn counts 2·m·n·k for each."""
    x, v = torch.randn(3, 4), torch.randn(4)
    report = inn.inspect(_MatrixVector(), x, v)
    assert report.totals.flops == 2 * 3 * 4 + 2 * (2 * 3 * 4 * 5)
    assert report.totals.uncounted_ops == ()


def test_bilinear_flops_by_hand() -> None:
    """FlopCounterMode counts nn.Bilinear as 0 (aten._trilinear has no formula);
    inspectnn counts one multiply-add per weight element per row, as for Linear."""
    bilinear = nn.Bilinear(4, 5, 6)
    x1, x2 = torch.randn(2, 3, 4), torch.randn(2, 3, 5)
    report = inn.inspect(bilinear, x1, x2)
    assert report.totals.flops == 2 * (2 * 3) * (6 * 4 * 5)
    assert report.totals.uncounted_ops == ()


class _Experts(nn.Module):
    """The mixture-of-experts matmul: tokens sorted by expert times one weight per expert."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 16, 8))

    def forward(self, x: Tensor, offs: Tensor) -> Tensor:
        return torch._grouped_mm(x, self.weight, offs=offs)


def test_grouped_mm_flops_by_hand() -> None:
    x = torch.randn(10, 16)  # 10 routed rows: 2, 4 and 4 to experts 0, 1, 2
    offs = torch.tensor([2, 6, 10], dtype=torch.int32)
    report = inn.inspect(_Experts(), x, offs)
    assert report.outputs[0].shape == (10, 8)
    assert report.totals.flops == sum(2 * rows * 16 * 8 for rows in (2, 4, 4)) == 2560
    batched = torch.randn(3, 4, 16)  # 3-D x 3-D: one (4, 16) @ (16, 8) per expert
    assert inn.inspect(_Experts(), batched, None).totals.flops == 3 * 2 * 4 * 16 * 8


class _ScaledExperts(nn.Module):
    def forward(self, *args: Tensor) -> Tensor:
        a, b, scale_a, scale_b, offs = args
        return torch._scaled_grouped_mm(a, b, scale_a, scale_b, offs=offs, out_dtype=torch.bfloat16)


def test_scaled_grouped_mm_flops_by_hand() -> None:
    """The float8 form (its kernels need a GPU; its meta version runs anywhere)."""
    fp8 = torch.float8_e4m3fn
    a = torch.empty(16, 32, dtype=fp8, device="meta")  # 16 routed rows, K = 32
    b = torch.empty(4, 16, 32, dtype=fp8, device="meta").transpose(-2, -1)  # 4 experts, N = 16
    scales = torch.empty(16, device="meta"), torch.empty(4, 16, device="meta")
    offs = torch.empty(4, dtype=torch.int32, device="meta")
    report = inn.inspect(_ScaledExperts(), a, b, *scales, offs)
    assert report.outputs[0].shape == (16, 16)
    assert report.totals.flops == 2 * 16 * 32 * 16


def _fc_plain(model: nn.Module, *args: Any) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args)
    return counter.get_total_flops()


def test_pruned_layers_count_the_weight_they_used() -> None:
    """prune computes ``weight`` in a forward pre-hook (a plain attribute, not a
    parameter); the FLOPs come from it, as FlopCounterMode counts them."""
    torch.manual_seed(0)
    linear, conv = nn.Linear(8, 4), nn.Conv2d(3, 4, 3)
    prune.l1_unstructured(linear, "weight", 0.5)
    prune.l1_unstructured(conv, "weight", 0.5)
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(4 * 6 * 6, 8), linear)
    x = torch.randn(2, 3, 8, 8)
    report = inn.inspect(model, x)
    assert report.layer("0").flops == 2 * 2 * (4 * 3 * 3 * 3) * (6 * 6)
    assert report.layer("3").flops == 2 * 2 * 8 * 4
    assert report.totals.flops == _fc_plain(model, x)
    assert report.totals.uncounted_ops == ()


def test_hook_computed_weight_norm_counts_the_weight_it_used() -> None:
    """The older torch.nn.utils.weight_norm also sets ``weight`` in a pre-hook."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated for parametrizations
        normed = torch.nn.utils.weight_norm(nn.Linear(8, 4))
    assert "weight" not in normed._parameters
    x = torch.randn(2, 8)
    assert inn.inspect(normed, x).totals.flops == _fc_plain(normed, x) == 2 * 2 * 8 * 4


def test_parametrized_layers_count_the_weight_they_used() -> None:
    torch.manual_seed(0)
    normed = parametrizations.weight_norm(nn.Linear(8, 4))
    x = torch.randn(2, 8)
    assert inn.inspect(normed, x).totals.flops == _fc_plain(normed, x) == 2 * 2 * 8 * 4
    spectral = parametrizations.spectral_norm(nn.Linear(8, 4)).eval()
    sigma = 2 * 4 * 8 + 2 * 4  # vdot(u, mv(weight, v)): no formula in FlopCounterMode
    assert inn.inspect(spectral, x).totals.flops == _fc_plain(spectral, x) + sigma
    orthogonal = parametrizations.orthogonal(nn.Linear(6, 6), orthogonal_map="householder")
    x6 = torch.randn(2, 6)
    assert inn.inspect(orthogonal, x6).layers[0].flops >= 2 * 2 * 6 * 6


# Fused kernels FlopCounterMode counts as 0 on the CPU; hand-written formulas below.
B, L, S, E, H, FF = 2, 5, 7, 16, 2, 32  # batch, query length, key length, embed, heads, FFN


def _attention_by_hand(lq: int, lk: int) -> int:
    """q, k, v projections, q·kᵀ and scores·v over H heads of E/H, output projection."""
    head = E // H
    projections = 2 * B * lq * E * E + 2 * 2 * B * lk * E * E
    scores = 2 * B * H * lq * lk * head
    weighted = 2 * B * H * lq * lk * head
    return projections + scores + weighted + 2 * B * lq * E * E


def test_cpu_scaled_dot_product_attention_by_hand() -> None:
    class Attention(nn.Module):
        def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            return nn.functional.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(B, H, L, 8), torch.randn(B, H, S, 8), torch.randn(B, H, S, 8)
    assert _fc_plain(Attention(), q, k, v) == 0  # the CPU flash kernel has no formula there
    expected = 2 * B * H * L * S * 8 + 2 * B * H * L * S * 8  # q·kᵀ, then scores·v
    assert inn.inspect(Attention(), q, k, v).totals.flops == expected
    v4 = torch.randn(B, H, S, 4)  # another value size: the math kernel (bmm), counted there
    expected = 2 * B * H * L * S * 8 + 2 * B * H * L * S * 4
    assert inn.inspect(Attention(), q, k, v4).totals.flops == _fc_plain(Attention(), q, k, v4)
    assert _fc_plain(Attention(), q, k, v4) == expected


def test_multihead_attention_fast_path_by_hand() -> None:
    """In eval with need_weights=False a plain forward runs the fused
    _native_multi_head_attention, which FlopCounterMode counts as 0."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, batch_first=True).eval()
    x = torch.randn(B, L, E)
    assert _fc_plain(mha, x, x, x) == 0  # kwargs below: need_weights=False
    report = inn.inspect(mha, x, x, x, need_weights=False)
    assert report.totals.flops == _attention_by_hand(L, L)
    kv = torch.randn(B, S, E)
    assert inn.inspect(mha, x, kv, kv, need_weights=False).totals.flops == _attention_by_hand(L, S)


def test_transformer_encoder_layer_fast_path_by_hand() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, H, FF, batch_first=True).eval()
    x = torch.randn(B, L, E)
    assert _fc_plain(layer, x) == 0  # the fused _transformer_encoder_layer_fwd
    feed_forward = 2 * B * L * E * FF + 2 * B * L * FF * E
    assert inn.inspect(layer, x).totals.flops == _attention_by_hand(L, L) + feed_forward


class _FusedKernels(nn.Module):
    """Calls the fast-path kernels themselves, as the modules do outside inspect."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(E, H, FF, batch_first=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        attn, lay = self.layer.self_attn, self.layer
        mha = torch._native_multi_head_attention(
            x, x, x, E, H, attn.in_proj_weight, attn.in_proj_bias,
            attn.out_proj.weight, attn.out_proj.bias, None, False,
        )[0]  # fmt: skip
        encoded = torch._transformer_encoder_layer_fwd(
            x, E, H, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight,
            attn.out_proj.bias, False, False, 1e-5, lay.norm1.weight, lay.norm1.bias,
            lay.norm2.weight, lay.norm2.bias, lay.linear1.weight, lay.linear1.bias,
            lay.linear2.weight, lay.linear2.bias, None,
        )  # fmt: skip
        return mha, encoded


def test_fast_path_kernels_called_directly_by_hand() -> None:
    torch.manual_seed(0)
    x = torch.randn(B, L, E)
    report = inn.inspect(_FusedKernels().eval(), x)
    feed_forward = 2 * B * L * E * FF + 2 * B * L * FF * E
    assert report.totals.flops == 2 * _attention_by_hand(L, L) + feed_forward
    assert report.totals.uncounted_ops == ()


# The hand-kept list flops.py held before the set was read from torch: (namespace, op, overload).
_HAND_META_QUERIES = (
    ("aten", "is_contiguous", "default"), ("aten", "is_contiguous", "memory_format"),
    ("aten", "size", "default"), ("aten", "sym_size", "default"),
    ("aten", "stride", "default"), ("aten", "sym_stride", "default"),
    ("aten", "storage_offset", "default"), ("aten", "numel", "default"),
    ("aten", "sym_numel", "default"), ("aten", "dim", "default"),
    ("prim", "layout", "default"), ("prim", "device", "default"),
)  # fmt: skip


def test_metadata_queries_come_from_torch_and_cover_the_old_hand_list() -> None:
    from torch._subclasses.functional_tensor import FunctionalTensor

    from inspectnn.flops.dispatch import _META_QUERIES, meta_queries

    assert meta_queries() == _META_QUERIES
    assert FunctionalTensor.metadata_fns <= _META_QUERIES  # torch's own list, all of it
    still_in_torch = [
        getattr(getattr(getattr(torch.ops, ns), op), overload)
        for ns, op, overload in _HAND_META_QUERIES
        if hasattr(getattr(torch.ops, ns), op)
    ]
    assert len(still_in_torch) == len(_HAND_META_QUERIES)
    assert set(still_in_torch) <= _META_QUERIES
    # what the hand list had drifted from: queries torch added since
    assert torch.ops.aten.sym_storage_offset.default in _META_QUERIES
    assert torch.ops.aten.is_non_overlapping_and_dense.default in _META_QUERIES


def test_metadata_queries_under_the_dispatch_mode_run_as_they_are() -> None:
    from inspectnn.flops import FlopDispatchMode

    counted: list[int] = []
    missing: list[str] = []
    x = torch.randn(2, 3)
    with FlopDispatchMode(counted.append, missing.append) as mode:
        for op in (torch.ops.aten.sym_storage_offset.default, torch.ops.aten.dim.default):
            assert mode.__torch_dispatch__(op, (Tensor,), (x,)) == op(x)
    assert counted == [] and missing == []
