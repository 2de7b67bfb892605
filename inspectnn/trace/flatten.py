"""Raw value metadata: flattening call arguments and outputs into raw tuples, tensor
provenance, and turning raw tuples into records.

Owns the raw meta layout (``RawMeta``, ``Source``), :func:`flatten_values`,
``_flatten_call`` (a call's arguments, with the single-tensor fast path),
``_Producers`` (which call or op made each live tensor), ``_value_text`` and
``_args_text`` (non-tensor values as text) and ``_MetaConverter`` (raw tuples to
:class:`~inspectnn.records.TensorMeta`). Flattening and provenance run in the tracer's
pre/post steps and op recorder (hot path); ``_MetaConverter`` and ``_args_text`` run
in ``Tracer.build()``.

May import: ``inspectnn.records`` and ``inspectnn.values``, nothing else of inspectnn's
(not the rest of ``inspectnn.trace``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from inspectnn.records import TensorMeta
from inspectnn.values import walk

# (path, shape, dtype, device, value-text, code, p): shape/dtype/device are None for
# non-tensors; the source (code, p) is output p of layers[i] for code 2*i, of ops[j] for
# code 2*j+1; (-2-k, 0) the model's input k; (-1, 0) none known. The source is two plain
# ints, not a pair, so a finished record holds no tuple the collector must untrack first.
Source = tuple[int, int]
RawMeta = tuple[
    str, "tuple[int, ...] | None", "torch.dtype | None", "torch.device | None", "str | None",
    int, int,
]
Lookup = Callable[[Tensor], Source]
_NO_SOURCE: Source = (-1, 0)


def _no_source(t: Tensor) -> Source:
    return _NO_SOURCE


_SIMPLE = (int, float, bool, str, type(None), torch.dtype, torch.device)


def _value_text(value: object) -> str:
    if isinstance(value, _SIMPLE):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, Tensor):  # a nested (ragged) tensor: it has no shape to record
        return f"<nested tensor, {value.dim()}-d {str(value.dtype).removeprefix('torch.')}>"
    return f"<{type(value).__name__}>"


def flatten_values(
    value: object,
    path: str,
    out: list[RawMeta],
    source: Lookup = _no_source,
    objects: bool = True,
) -> None:
    """Append one raw meta tuple per leaf of ``value`` (see :func:`inspectnn.values.walk`).

    Tensors give ``(path, shape, dtype, device, None, code, p)``; any other leaf
    gives ``(path, None, None, None, text, -1, 0)``, so None and other values stay
    visible. ``source`` maps a tensor to the ``(code, p)`` of the call or op output
    that produced it; ``objects`` says whether objects holding tensors (a KV
    cache) are entered.
    """

    def visit(where: str, leaf: object) -> None:
        if isinstance(leaf, Tensor) and not leaf.is_nested:
            code, pos = source(leaf)
            out.append((where, tuple(leaf.shape), leaf.dtype, leaf.device, None, code, pos))
        else:
            out.append((where, None, None, None, _value_text(leaf), -1, 0))

    walk(value, visit, path, objects=objects)


def _flatten_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], source: Lookup, objects: bool = True
) -> tuple[RawMeta, ...]:
    """A call's arguments flattened. ``objects=False`` for a call inside the model: an
    object handed to every layer (a KV cache that fills up layer by layer) is shown
    whole there, not with every layer's keys and values at every layer; its
    contents are listed where a call returns it, and in the model's own inputs."""
    if not kwargs and len(args) == 1:
        a = args[0]
        if type(a) is Tensor and not a.is_nested:
            code, pos = source(a)
            return (("[0]", tuple(a.shape), a.dtype, a.device, None, code, pos),)
    out: list[RawMeta] = []
    for i, a in enumerate(args):
        flatten_values(a, f"[{i}]", out, source, objects)
    for k, v in kwargs.items():
        flatten_values(v, k, out, source, objects)
    return tuple(out)


class _Producers:
    """Which call or op produced each live tensor: ``id`` plus a weakref to be sure.

    Only a weak reference is kept, so no activation outlives its last use.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[weakref.ref[Tensor], Source]] = {}

    def mark_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The model's own inputs: (-2, 0), (-3, 0) ... for inputs[0], inputs[1] ..."""
        n = 0  # the index the next leaf gets in the root's inputs

        def mark(_: str, leaf: object) -> None:
            nonlocal n
            if isinstance(leaf, Tensor):
                self._mark(leaf, (-2 - n, 0))
            n += 1

        for a in (*args, *kwargs.values()):
            walk(a, mark)

    def lookup(self, t: Tensor) -> Source:
        entry = self._by_id.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        return _NO_SOURCE

    def _mark(self, t: Tensor, source: Source) -> Source:
        """Record ``source`` as ``t``'s producer; return its previous producer."""
        previous = self.lookup(t)
        try:
            self._by_id[id(t)] = (weakref.ref(t), source)
        except TypeError:  # a tensor type without weakref support
            return _NO_SOURCE
        return previous

    def flatten_output(self, value: object, code: int) -> tuple[RawMeta, ...]:
        """Flatten ``value``, recording its leaf ``p`` as made by ``(code, p)``.

        Each output's source is what produced it inside the call (the last child
        of a Sequential, the op that made a model's logits), or (-1, 0).
        """
        if type(value) is Tensor and not value.is_nested:
            shape = tuple(value.shape)
            was, pos = self._mark(value, (code, 0))
            return (("", shape, value.dtype, value.device, None, was, pos),)
        out: list[RawMeta] = []
        flatten_values(value, "", out, lambda t: self._mark(t, (code, len(out))))
        return tuple(out)


def _args_text(others: tuple[tuple[str, object], ...]) -> str:
    parts = []
    for key, value in others:
        text = value if isinstance(value, str) and value.startswith("<") else _value_text(value)
        parts.append(f"{key}={text}" if key else text)
    return ", ".join(parts)


_NAMES: dict[object, str] = {}  # torch.float32 -> "float32", device(type='cpu') -> "cpu"


def _name(obj: object) -> str:
    text = _NAMES.get(obj)
    if text is None:
        text = _NAMES[obj] = str(obj).removeprefix("torch.")
    return text


class _MetaConverter:
    """Raw tuples to TensorMeta."""

    def all(self, raws: Any) -> tuple[TensorMeta, ...]:
        one = self.one
        return tuple([one(r) for r in raws])

    @staticmethod
    def one(raw: RawMeta) -> TensorMeta:
        path, shape, dtype, device, value, code, pos = raw
        if shape is None:
            return TensorMeta(None, None, None, path, value)
        if code == -1:
            source = None
        elif code < 0:
            source = f"inputs[{-2 - code}]"
        else:
            source = f"ops[{code // 2}]" if code % 2 else f"layers[{code // 2}]"
            if pos:
                source += f".outputs[{pos}]"
        return TensorMeta(tuple(shape), _name(dtype), _name(device), path, None, source)
