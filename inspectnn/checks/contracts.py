"""Shape, dtype and device contracts of torch's common layers.

A contract reads a module's configuration and the arguments of one call, before
the call runs, and returns a :class:`Violation` when the call cannot work:
``Linear(1024, 10)`` given ``[1, 4096]``, a 3-channel image into
``Conv2d(1, 16, 3)``, float64 input into float32 weights, a CPU tensor into a
layer on the GPU. The tracer records violations; the API turns the one of the
failing layer into a ``ShapeMismatchError`` / ``DtypeMismatchError`` /
``DeviceMismatchError``. The diagnosis therefore comes from the layer and the
trace, not from PyTorch's wording, and reads the same on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "CONTRACTS",
    "STRICT_DTYPE",
    "Violation",
    "contract_for",
    "contract_for_class",
    "fmt_shape",
]


@dataclass(frozen=True, slots=True)
class Violation:
    """Why one call of a layer cannot work.

    Attributes:
        kind: ``"shape"``, ``"dtype"`` or ``"device"``.
        expected: What the layer needs, e.g. ``"[*, 1024]"`` or ``"float32"``.
        got: What it was given, e.g. ``"[1, 4096]"``.
        rule: The rule in words: ``"the last dimension must equal in_features=1024"``.
        dim: The dimension at fault, counted from 0, or None.
        fix: A concrete change, e.g. ``"nn.Linear(4096, 10)"``.
        param: The parameter compared against (dtype/device), e.g. ``"weight"``.
        arg: Which argument was wrong: ``"input"``, ``"key"``, ``"hx"`` ...
    """

    kind: str
    expected: str
    got: str
    rule: str
    dim: int | None = None
    fix: str = ""
    param: str | None = None
    arg: str = "input"


Contract = Callable[[Any, tuple[Any, ...], dict[str, Any]], "Violation | None"]

_CAST = {
    torch.float32: "x.float()",
    torch.float64: "x.double()",
    torch.float16: "x.half()",
    torch.bfloat16: "x.bfloat16()",
}


def fmt_shape(shape: Any) -> str:
    """``torch.Size([1, 4096])`` -> ``"[1, 4096]"``."""
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _dtype(d: torch.dtype) -> str:
    return str(d).removeprefix("torch.")


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str) -> Any:
    return args[i] if len(args) > i else kwargs.get(name)


def _first_param(m: nn.Module) -> tuple[str, Tensor] | None:
    for name, p in m._parameters.items():
        if p is not None:
            return name, p
    return None


_META_MIX = (nn.modules.conv._ConvNd, nn.Embedding, nn.EmbeddingBag)
"""Layers that torch (2.13) runs with the weights on meta and the input elsewhere, or the
other way round: their kernels check no device there (a meta embedding looks CPU
indices up on purpose). Every other contracted layer raises on such a mix, as every
layer does on two real devices. tests/test_meta_diagnoses.py holds the table."""


def _device_violation(m: nn.Module, name: str, w: Tensor, x: Tensor, arg: str) -> Violation | None:
    """A device mismatch that torch itself would refuse; None for any other pair."""
    if x.device == w.device:
        return None
    if "meta" in (x.device.type, w.device.type) and isinstance(m, _META_MIX):
        return None
    return Violation(
        "device", str(w.device), str(x.device),
        f"the {arg} must be on the same device as {name} ({w.device})",
        fix=f"move the input with x.to('{w.device}')",  # the diagnosis adds the model's side
        param=name, arg=arg,
    )  # fmt: skip


def check_device_dtype(m: nn.Module, x: Tensor, arg: str = "input") -> Violation | None:
    """The input against the layer's first parameter: same device, same float dtype.

    A device mismatch is a violation only where torch refuses it (see ``_META_MIX``).
    """
    first = _first_param(m)
    if first is None:
        return None
    name, w = first
    bad = _device_violation(m, name, w, x, arg)
    if bad is not None:
        return bad
    if w.is_floating_point() and x.dtype != w.dtype:
        if x.is_floating_point() or x.is_complex():
            fix = f"cast the input with {_CAST.get(w.dtype, f'x.to({w.dtype})')}"
            fix += f", or the model with model.to({x.dtype})"
        else:
            fix = f"cast the input with {_CAST.get(w.dtype, f'x.to({w.dtype})')}: an "
            fix += "integer tensor cannot enter a float layer"
        return Violation(
            "dtype", _dtype(w.dtype), _dtype(x.dtype),
            f"the {arg} must have the dtype of {name} ({_dtype(w.dtype)})",
            fix=fix, param=name, arg=arg,
        )  # fmt: skip
    return None


def _input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor | None:
    x = _arg(args, kwargs, 0, "input")
    return x if isinstance(x, Tensor) else None


def _weight_fits(m: nn.Module, x: Tensor) -> bool:
    """The common case in one step: ``x`` has the dtype and device of ``m.weight``
    (the first parameter of the layers that use this)."""
    w = m._parameters.get("weight")
    return w is not None and x.dtype is w.dtype and x.device == w.device


def _linear(m: nn.Linear, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = args[0] if args else kwargs.get("input")
    if type(x) is Tensor and _weight_fits(m, x):
        shape = x.shape
        if shape and shape[-1] == m.in_features:
            return None
    if not isinstance(x, Tensor):
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    if x.dim() == 0:
        return Violation(
            "shape", f"[*, {m.in_features}]", "[] (a 0-d tensor: a single number)",
            "the input has no dimensions, so no feature dimension of in_features="
            f"{m.in_features}",
            fix=f"give the model a tensor with its features last, e.g. shape (1, {m.in_features})",
        )  # fmt: skip
    if x.shape[-1] != m.in_features:
        return Violation(
            "shape", f"[*, {m.in_features}]", fmt_shape(x.shape),
            f"the last dimension must equal in_features={m.in_features}",
            dim=x.dim() - 1,
            fix=f"nn.Linear({int(x.shape[-1])}, {m.out_features})",
        )  # fmt: skip
    return None


def _bilinear(m: nn.Bilinear, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x1, x2 = _arg(args, kwargs, 0, "input1"), _arg(args, kwargs, 1, "input2")
    if not (isinstance(x1, Tensor) and isinstance(x2, Tensor)):
        return None
    for x, want, arg in ((x1, m.in1_features, "input1"), (x2, m.in2_features, "input2")):
        bad = check_device_dtype(m, x, arg)
        if bad is not None:
            return bad
        if x.dim() == 0 or x.shape[-1] != want:
            return Violation(
                "shape", f"[*, {want}]", fmt_shape(x.shape),
                f"the last dimension of {arg} must equal in{arg[-1]}_features={want}",
                dim=max(x.dim() - 1, 0), arg=arg,
                fix=f"nn.Bilinear({int(x1.shape[-1])}, {int(x2.shape[-1])}, {m.out_features})",
            )  # fmt: skip
    return None


def _channels(
    m: Any, x: Tensor, n_spatial: int, want: int, kind: str
) -> tuple[int, Violation | None]:
    """Checks rank and channel count; returns (channel dim, violation)."""
    if x.dim() not in (n_spatial + 1, n_spatial + 2):
        rank = f"{n_spatial + 2}-D (batch, channels, {n_spatial} spatial) or {n_spatial + 1}-D"
        return 0, Violation(
            "shape", rank, fmt_shape(x.shape),
            f"{type(m).__name__} takes {rank} input",
            fix="add the batch dimension with x.unsqueeze(0)" if x.dim() == n_spatial
            else f"reshape the input to (batch, {want}, ...)",
        )  # fmt: skip
    cdim = 1 if x.dim() == n_spatial + 2 else 0
    got = int(x.shape[cdim])
    if got != want:
        return cdim, Violation(
            "shape", f"{want} channels in dimension {cdim}", fmt_shape(x.shape),
            f"dimension {cdim} must equal {kind}={want}", dim=cdim, fix="",
        )  # fmt: skip
    return cdim, None


def _with_first_arg(m: nn.Module, value: int) -> str:
    """``nn.Conv2d(3, 16, kernel_size=(3, 3), stride=(2, 2))`` with the first argument replaced.

    Built from the layer's own ``extra_repr`` so that stride, padding, dilation,
    groups and flags all carry over into the suggested fix.
    """
    rest = m.extra_repr().split(",", 1)
    tail = f",{rest[1]}" if len(rest) > 1 else ""
    return f"nn.{type(m).__name__}({value}{tail})"


def _conv_fix(m: Any, got_c: int) -> str:
    return _with_first_arg(m, got_c)


def _conv(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = args[0] if args else kwargs.get("input")
    if type(x) is Tensor and _weight_fits(m, x) and _conv_fits(m, x.shape):
        return None
    if not isinstance(x, Tensor):
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    if _conv_fits(m, x.shape):
        return None
    n = len(m.kernel_size)
    cdim, bad = _channels(m, x, n, m.in_channels, "in_channels")
    if bad is not None:
        if bad.dim is not None:
            return replace(bad, fix=_conv_fix(m, int(x.shape[cdim])))
        return bad
    if m.transposed or isinstance(m.padding, str):
        return None
    for i in range(n):
        size = int(x.shape[cdim + 1 + i])
        need = m.dilation[i] * (m.kernel_size[i] - 1) + 1
        if size + 2 * m.padding[i] < need:
            return Violation(
                "shape", f">= {need - 2 * m.padding[i]} in dimension {cdim + 1 + i}",
                fmt_shape(x.shape),
                f"spatial size {size} (+2*padding {m.padding[i]}) is smaller than the "
                f"kernel ({need} with dilation)",
                dim=cdim + 1 + i,
                fix=f"give the layer a larger input, or padding={(need - size + 1) // 2}",
            )  # fmt: skip
    return None


def _conv_fits(m: Any, shape: torch.Size) -> bool:
    """The common case in one pass: right rank, channels and room for the kernel."""
    k = m.kernel_size
    n = len(k)
    rank = len(shape)
    cdim = rank - n - 1
    if cdim not in (0, 1) or shape[cdim] != m.in_channels:
        return False
    if m.transposed or isinstance(m.padding, str):
        return True
    pad, dil = m.padding, m.dilation
    for i in range(n):  # noqa: SIM110  # a loop: all() of a generator costs ~0.5 µs more
        if shape[cdim + 1 + i] + 2 * pad[i] < dil[i] * (k[i] - 1) + 1:
            return False
    return True


_NORM_RANK = {
    nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,),
    nn.InstanceNorm1d: (2, 3), nn.InstanceNorm2d: (3, 4), nn.InstanceNorm3d: (4, 5),
}  # fmt: skip


def _batchnorm(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    ranks = _NORM_RANK[type(m)]
    if x.dim() not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        return Violation(
            "shape", want, fmt_shape(x.shape), f"{type(m).__name__} takes {want} input",
            fix="use BatchNorm1d for (N, C) or (N, C, L), BatchNorm2d for (N, C, H, W)",
        )  # fmt: skip
    cdim = 0 if isinstance(m, nn.modules.instancenorm._InstanceNorm) and x.dim() == ranks[0] else 1
    checks_channels = not isinstance(m, nn.modules.instancenorm._InstanceNorm) or m.affine
    if checks_channels and int(x.shape[cdim]) != m.num_features:
        return Violation(
            "shape", f"{m.num_features} channels in dimension {cdim}", fmt_shape(x.shape),
            f"dimension {cdim} must equal num_features={m.num_features}", dim=cdim,
            fix=_norm_fix(m, int(x.shape[cdim])),
        )  # fmt: skip
    training = m.training or not getattr(m, "track_running_stats", True)
    if isinstance(m, nn.modules.batchnorm._BatchNorm) and training and x.dim() >= 2:
        per_channel = x.numel() // max(int(x.shape[1]), 1)
        if per_channel == 1:
            return Violation(
                "shape", "more than 1 value per channel", fmt_shape(x.shape),
                "train-mode batch statistics need a batch of 2 or more",
                dim=0, fix="use a batch of 2 or more, or inspect with mode='eval'",
            )  # fmt: skip
    return None


def _norm_fix(m: Any, channels: int) -> str:
    """The same norm layer for ``channels``, keeping the flags that differ from the default."""
    flags = []
    instance = isinstance(m, nn.modules.instancenorm._InstanceNorm)
    if m.affine == instance:  # BatchNorm defaults to affine=True, InstanceNorm to False
        flags.append(f"affine={m.affine}")
    if m.track_running_stats == instance:
        flags.append(f"track_running_stats={m.track_running_stats}")
    return f"nn.{type(m).__name__}({', '.join([str(channels), *flags])})"


def _layernorm(m: nn.LayerNorm, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    ns = tuple(m.normalized_shape)
    if x.dim() < len(ns) or tuple(x.shape[x.dim() - len(ns) :]) != ns:
        trail = fmt_shape(x.shape[max(x.dim() - len(ns), 0) :])
        return Violation(
            "shape", "[*, " + fmt_shape(ns)[1:], fmt_shape(x.shape),
            f"the trailing dimensions must equal normalized_shape={list(ns)} (got {trail})",
            dim=x.dim() - len(ns) if x.dim() >= len(ns) else None,
            fix=f"nn.LayerNorm({_trailing(x, len(ns))})",
        )  # fmt: skip
    return None


def _trailing(x: Tensor, n: int) -> str:
    dims = [int(d) for d in x.shape[max(x.dim() - n, 0) :]]
    return str(dims[0]) if n == 1 and dims else str(dims)


def _groupnorm(m: nn.GroupNorm, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    bad = check_device_dtype(m, x) if m.affine else None
    if bad is not None:
        return bad
    if x.dim() < 2 or int(x.shape[1]) != m.num_channels:
        got_c = int(x.shape[1]) if x.dim() >= 2 else 0
        return Violation(
            "shape", f"{m.num_channels} channels in dimension 1", fmt_shape(x.shape),
            f"dimension 1 must equal num_channels={m.num_channels}", dim=1,
            fix=f"nn.GroupNorm({m.num_groups}, {got_c})" if got_c % m.num_groups == 0
            else f"a channel count divisible by num_groups={m.num_groups}",
        )  # fmt: skip
    return None


def _embedding(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        return Violation(
            "dtype", "int64 (or int32) indices", _dtype(x.dtype),
            f"{type(m).__name__} looks rows up by integer index",
            fix="pass token ids as integers: x.long(); to feed float features use nn.Linear",
            param="weight",
        )  # fmt: skip
    w = m.weight
    if x.device != w.device:
        moved = _device_violation(m, "weight", w, x, "input")
        if moved is not None:
            return moved
    if x.device.type == "meta" or x.numel() == 0:
        return None
    lo, hi = int(x.min()), int(x.max())
    if lo < 0:
        return Violation(
            "shape", f"indices in [0, {m.num_embeddings - 1}]", f"index {lo}",
            "indices are row numbers: a negative index is never valid (it does not count "
            "from the end as in Python lists)",
            fix="make the indices non-negative where they are made (see 'input from'): map a "
                "-1 'ignore'/padding marker to a real row, e.g. x.masked_fill(x < 0, 0) "
                f"(and padding_idx=0 in nn.{type(m).__name__}), or fix the code that "
                "computed them",
        )  # fmt: skip
    if hi >= m.num_embeddings:
        bad = hi
        return Violation(
            "shape", f"indices in [0, {m.num_embeddings - 1}]", f"index {bad}",
            f"every index must be < num_embeddings={m.num_embeddings}",
            fix=f"nn.{type(m).__name__}({max(hi + 1, m.num_embeddings)}, {m.embedding_dim}), "
                "or check the tokenizer's vocabulary size",
        )  # fmt: skip
    return None


def _rnn(m: nn.RNNBase, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)  # None for a PackedSequence
    if x is None or x.is_nested:
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    if x.dim() not in (2, 3):
        return Violation(
            "shape", "3-D (batch, seq, feature)" if m.batch_first else "3-D (seq, batch, feature)",
            fmt_shape(x.shape), f"{type(m).__name__} takes 2-D or 3-D input",
            fix="reshape the input to " + ("(batch, seq, features)" if m.batch_first
                                           else "(seq, batch, features)"),
        )  # fmt: skip
    if int(x.shape[-1]) != m.input_size:
        return Violation(
            "shape", f"[..., {m.input_size}]", fmt_shape(x.shape),
            f"the last dimension must equal input_size={m.input_size}", dim=x.dim() - 1,
            fix=f"nn.{type(m).__name__}({int(x.shape[-1])}, {m.hidden_size}"
                + (", batch_first=True)" if m.batch_first else ")"),
        )  # fmt: skip
    hx = _arg(args, kwargs, 1, "hx")
    if hx is None:
        return None
    batched = x.dim() == 3
    batch = int(x.shape[0 if m.batch_first else 1]) if batched else None
    dirs = 2 if m.bidirectional else 1
    states = list(hx) if isinstance(hx, (tuple, list)) else [hx]
    sizes = [m.proj_size or m.hidden_size, m.hidden_size][: len(states)]
    for i, (h, size) in enumerate(zip(states, sizes, strict=False)):
        if not isinstance(h, Tensor):
            continue
        want = (m.num_layers * dirs, batch, size) if batched else (m.num_layers * dirs, size)
        if tuple(h.shape) != want:
            name = "hx" if len(states) == 1 else ("h_0", "c_0")[i]
            return Violation(
                "shape", fmt_shape(want), fmt_shape(h.shape),
                f"{name} must be (num_layers*directions, batch, hidden)"
                + (" with batch from dimension 0 (batch_first=True)" if m.batch_first else ""),
                fix=_state_fix(m, x, h, want), arg=name,
            )  # fmt: skip
    return None


def _state_fix(m: nn.RNNBase, x: Tensor, h: Tensor, want: tuple[Any, ...]) -> str:
    """``batch_first=True`` when the state's batch is the input's dimension 0 and the layer
    reads dimension 1 as the batch (a batch-first input); a state of the right shape otherwise."""
    flipped = not m.batch_first and x.dim() == 3 and h.dim() == 3 and x.shape[0] != x.shape[1]
    if flipped and h.shape[1] == x.shape[0] and tuple(h.shape[::2]) == tuple(want[::2]):
        return (
            f"nn.{type(m).__name__}({m.extra_repr()}, batch_first=True): the state's batch "
            f"({int(h.shape[1])}) is dimension 0 of the input {fmt_shape(x.shape)}, which is "
            "batch-first, while the layer reads dimension 1 as the batch"
        )
    return f"torch.zeros{want}"


def _mha(
    m: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Violation | None:
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    if not all(isinstance(t, Tensor) for t in (q, k, v)):
        return None
    bad = check_device_dtype(m, q, "query")
    if bad is not None:
        return bad
    for t, want, name in ((q, m.embed_dim, "query"), (k, m.kdim, "key"), (v, m.vdim, "value")):
        if t.dim() not in (2, 3) or int(t.shape[-1]) != want:
            attr = {"query": "embed_dim", "key": "kdim", "value": "vdim"}[name]
            return Violation(
                "shape", f"[..., {want}]", fmt_shape(t.shape),
                f"the last dimension of {name} must equal {attr}={want}",
                dim=t.dim() - 1, arg=name,
                fix=f"nn.MultiheadAttention({int(q.shape[-1])}, {m.num_heads}"
                    + (f", kdim={int(k.shape[-1])}, vdim={int(v.shape[-1])}"
                       if name != "query" else "")
                    + (", batch_first=True)" if m.batch_first else ")"),
            )  # fmt: skip
    if q.dim() == 3 and k.dim() == 3:
        bdim = 0 if m.batch_first else 1
        if q.shape[bdim] != k.shape[bdim] or k.shape[:2] != v.shape[:2]:
            return Violation(
                "shape", f"same batch in dimension {bdim}", f"{fmt_shape(q.shape)}, "
                f"{fmt_shape(k.shape)}, {fmt_shape(v.shape)}",
                "query, key and value must share the batch size; key and value the length",
                dim=bdim, arg="key",
                fix="check batch_first: it is "
                    f"{m.batch_first}, so batch is dimension {bdim}",
            )  # fmt: skip
    return None


def _transformer_layer(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = args[0] if args else kwargs.get("src", kwargs.get("tgt"))
    if not isinstance(x, Tensor):
        return None
    d_model = m.self_attn.embed_dim
    if x.dim() not in (2, 3) or int(x.shape[-1]) != d_model:
        return Violation(
            "shape", f"[..., {d_model}]", fmt_shape(x.shape),
            f"the last dimension must equal d_model={d_model}", dim=x.dim() - 1,
            fix=f"nn.{type(m).__name__}(d_model={int(x.shape[-1])}, "
                f"nhead={m.self_attn.num_heads}"
                + (", batch_first=True)" if m.self_attn.batch_first else ")"),
        )  # fmt: skip
    return None


def _rank_needed(*dims: int) -> int:
    return max(d + 1 if d >= 0 else -d for d in dims)


def _flatten(m: nn.Flatten, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    n = max(x.dim(), 1)
    for d in (m.start_dim, m.end_dim):
        if not -n <= d < n:
            return Violation(
                "shape", f"at least {_rank_needed(m.start_dim, m.end_dim)}-D",
                fmt_shape(x.shape),
                f"start_dim={m.start_dim} and end_dim={m.end_dim} must lie in the input's "
                f"{x.dim()} dimensions",
                fix=f"nn.Flatten(start_dim={min(m.start_dim, n - 1)})",
            )  # fmt: skip
    return None


def _unflatten(m: nn.Unflatten, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None or not isinstance(m.dim, int):
        return None
    if not -x.dim() <= m.dim < x.dim():
        return Violation(
            "shape",
            f"a dimension {m.dim}",
            fmt_shape(x.shape),
            f"dim={m.dim} must lie in the input's {x.dim()} dimensions",
        )
    sizes = [int(s) for s in m.unflattened_size]
    size = int(x.shape[m.dim])
    known = math.prod(s for s in sizes if s != -1)
    ok = size % known == 0 if -1 in sizes else size == known
    if not ok:
        tail = math.prod(sizes[1:]) if -1 not in sizes[1:] else 0
        better = (size // tail, *sizes[1:]) if tail and size % tail == 0 else (size,)
        return Violation(
            "shape", f"{known} in dimension {m.dim % x.dim()}", fmt_shape(x.shape),
            f"unflattened_size={tuple(sizes)} must multiply to dimension {m.dim % x.dim()} "
            f"(size {size})",
            dim=m.dim % x.dim(),
            fix=f"nn.Unflatten({m.dim}, {better})",
        )  # fmt: skip
    return None


def _pool(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, Tensor):
        return None
    n = _POOL_DIMS.get(type(m)) or int(type(m).__name__[-2])
    shape = x.shape
    k, pad, dil = m.kernel_size, m.padding, getattr(m, "dilation", 1)
    if len(shape) in (n + 1, n + 2) and type(k) is int and type(pad) is int and type(dil) is int:
        need = dil * (k - 1) + 1 - 2 * pad
        for i in range(-n, 0):
            if shape[i] < need:
                break
        else:
            return None  # the common case: one int window fits every spatial size
    if x.dim() not in (n + 1, n + 2):
        return Violation(
            "shape",
            f"{n + 2}-D or {n + 1}-D",
            fmt_shape(x.shape),
            f"{type(m).__name__} takes (batch, channels, {n} spatial) input",
        )
    ks = _tuple(m.kernel_size, n)
    pads = _tuple(m.padding, n)
    dil = _tuple(getattr(m, "dilation", 1), n)
    for i in range(n):
        d = x.dim() - n + i
        size = int(x.shape[d])
        need = dil[i] * (ks[i] - 1) + 1
        if size + 2 * pads[i] < need:
            return Violation(
                "shape", f">= {need - 2 * pads[i]} in dimension {d}", fmt_shape(x.shape),
                f"the pooling window ({need}) is larger than the input ({size}"
                + (f" + 2*padding {pads[i]})" if pads[i] else ")"),
                dim=d,
                fix=f"a smaller kernel_size (<= {size + 2 * pads[i]}), a larger input, or "
                    f"nn.Adaptive{type(m).__name__} to pool to a fixed size",
            )  # fmt: skip
    return None


_POOL_DIMS: dict[type, int] = {
    nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3,
    nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
}  # fmt: skip


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


def _pixel_shuffle(
    m: nn.PixelShuffle, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Violation | None:
    x = _input(args, kwargs)
    if x is None or x.dim() < 3:
        return None
    r2 = m.upscale_factor**2
    c = int(x.shape[-3])
    if c % r2:
        return Violation(
            "shape", f"channels divisible by {r2}", fmt_shape(x.shape),
            f"dimension {x.dim() - 3} must be divisible by upscale_factor**2={r2}",
            dim=x.dim() - 3, fix=f"{(c // r2 + 1) * r2} channels before the shuffle",
        )  # fmt: skip
    return None


CONTRACTS: dict[type[nn.Module], Contract] = {
    nn.Linear: _linear,
    nn.modules.linear.NonDynamicallyQuantizableLinear: _linear,
    nn.Bilinear: _bilinear,
    **{cls: _conv for cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                              nn.ConvTranspose2d, nn.ConvTranspose3d)},
    **{cls: _batchnorm for cls in _NORM_RANK},
    nn.LayerNorm: _layernorm,
    nn.GroupNorm: _groupnorm,
    nn.Embedding: _embedding,
    nn.EmbeddingBag: _embedding,
    nn.RNN: _rnn, nn.LSTM: _rnn, nn.GRU: _rnn,
    nn.MultiheadAttention: _mha,
    nn.TransformerEncoderLayer: _transformer_layer,
    nn.TransformerDecoderLayer: _transformer_layer,
    nn.Flatten: _flatten,
    nn.Unflatten: _unflatten,
    **{cls: _pool for cls in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
                              nn.AvgPool2d, nn.AvgPool3d)},
    nn.PixelShuffle: _pixel_shuffle,
}  # fmt: skip


STRICT_DTYPE: frozenset[type[nn.Module]] = frozenset(
    {
        nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear, nn.Bilinear,
        nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
        nn.ConvTranspose3d, nn.RNN, nn.LSTM, nn.GRU, nn.MultiheadAttention,
        nn.Embedding, nn.EmbeddingBag,
    }
)  # fmt: skip
"""Layers whose kernels never mix dtypes (outside autocast): a dtype mismatch there is
raised before the call. Norm layers are left out: they accept half input with float
statistics, so a mismatch there is only an error if the call then fails."""


def contract_for(module: nn.Module) -> Contract | None:
    """The contract of ``module``'s class, or of a torch base class whose forward it keeps."""
    return contract_for_class(type(module))


def contract_for_class(cls: type[nn.Module]) -> Contract | None:
    """The contract of instances of ``cls`` (see :func:`contract_for`)."""
    found = CONTRACTS.get(cls)
    if found is not None:
        return found
    for base in cls.__mro__[1:]:
        if base in CONTRACTS and cls.forward is base.forward:
            return CONTRACTS[base]
    return None
