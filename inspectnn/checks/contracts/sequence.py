"""Contracts of the sequence layers: ``RNN``/``LSTM``/``GRU`` (input and state),
``MultiheadAttention``, ``TransformerEncoderLayer``/``TransformerDecoderLayer``.

May import: ``inspectnn.checks.contracts.base`` and torch.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from inspectnn.checks.contracts.base import (
    Violation,
    _arg,
    _input,
    check_device_dtype,
    fmt_shape,
)


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
