"""Raw value metadata: flattening call arguments and outputs into raw tuples, tensor
provenance, and turning raw tuples into records.

Owns :func:`flatten_values`, ``_flatten_call`` (a call's arguments, with the
single-tensor fast path), ``_flatten_op_args`` (an op's arguments: tensors as raw
tuples, other values kept for ``_args_text``), ``_Producers`` (which call or op made
each live tensor), ``_value_text`` and ``_args_text`` (non-tensor values as text) and
``_MetaConverter`` (raw tuples to :class:`~inspectnn.records.TensorMeta`). The layout
of the tuples it makes (``RawMeta``) and the provenance codes are
``inspectnn.trace.raw``'s. Flattening and provenance run in the tracer's pre/post
steps and op recorder (hot path); ``_MetaConverter`` and ``_args_text`` run in
``build()``.

May import: ``inspectnn.records``, ``inspectnn.values`` and ``inspectnn.trace.raw``,
nothing else of inspectnn's.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from inspectnn.distributed.placement import placement_text
from inspectnn.records import TensorMeta
from inspectnn.trace.raw import (
    NO_CODE,
    NO_SOURCE,
    RawMeta,
    Sharding,
    Source,
    decode,
    input_code,
)
from inspectnn.values import has_tensor, walk

Lookup = Callable[[Tensor], Source]


def _no_source(t: Tensor) -> Source:
    return NO_SOURCE


_SIMPLE = (int, float, bool, str, type(None), torch.dtype, torch.device)

_DTENSOR: list[type] = []  # torch's DTensor class, once torch.distributed.tensor is loaded


def sharding(t: Tensor) -> Sharding:
    """A ``DTensor``'s ``(local shape, placements)`` as this rank holds it; None for any
    other tensor. Reads metadata only (the local tensor it wraps, its spec): no
    collective, no op the recorder would see. Costs a dictionary lookup until
    ``torch.distributed.tensor`` is loaded, and an ``isinstance`` after."""
    if not _DTENSOR:
        module = sys.modules.get("torch.distributed.tensor")
        kind = getattr(module, "DTensor", None)
        if kind is None:
            return None
        _DTENSOR.append(kind)
    if not isinstance(t, _DTENSOR[0]):
        return None
    local = t._local_tensor  # type: ignore[attr-defined]
    return tuple(local.shape), tuple(placement_text(p) for p in t.placements)  # type: ignore[attr-defined]


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

    Tensors give ``(path, shape, dtype, device, None, code, p, sharding)``; any other
    leaf gives ``(path, None, None, None, text, NO_CODE, 0, None)``, so None and other values stay
    visible. ``source`` maps a tensor to the ``(code, p)`` of the call or op output
    that produced it; ``objects`` says whether objects holding tensors (a KV
    cache) are entered.
    """

    def visit(where: str, leaf: object) -> None:
        if isinstance(leaf, Tensor) and not leaf.is_nested:
            code, pos = source(leaf)
            shard = None if type(leaf) is Tensor else sharding(leaf)
            out.append((where, tuple(leaf.shape), leaf.dtype, leaf.device, None, code, pos, shard))
        else:
            out.append((where, None, None, None, _value_text(leaf), NO_CODE, 0, None))

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
            return (("[0]", tuple(a.shape), a.dtype, a.device, None, code, pos, None),)
    out: list[RawMeta] = []
    for i, a in enumerate(args):
        flatten_values(a, f"[{i}]", out, source, objects)
    for k, v in kwargs.items():
        flatten_values(v, k, out, source, objects)
    return tuple(out)


_PATHS = tuple(f"[{i}]" for i in range(16))
OnParameter = Callable[[Tensor, bool], None]


def _flatten_op_args(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    lookup: Lookup,
    on_parameter: OnParameter,
    failed: bool,
) -> tuple[tuple[RawMeta, ...], tuple[tuple[str, object], ...]]:
    """An op's arguments: ``(inputs, others)``.

    ``inputs`` holds the tensors (and containers holding tensors) as raw tuples;
    ``others`` the non-tensor arguments as ``(keyword or "", value)``, a plain value
    kept as it is and formatted by ``_args_text`` after the forward. Each
    ``nn.Parameter`` passed directly is handed to ``on_parameter`` with ``failed``.
    Runs once per recorded op (hot path).
    """
    inputs: list[RawMeta] = []
    others: list[tuple[str, object]] = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and not a.is_nested:
            path = _PATHS[i] if i < len(_PATHS) else f"[{i}]"
            code, pos = lookup(a)
            if type(a) is Tensor:
                inputs.append((path, tuple(a.shape), a.dtype, a.device, None, code, pos, None))
                continue
            inputs.append((path, tuple(a.shape), a.dtype, a.device, None, code, pos, sharding(a)))
            if isinstance(a, nn.Parameter):
                on_parameter(a, failed)
        elif isinstance(a, _SIMPLE):
            others.append(("", a))
        elif has_tensor(a):
            flatten_values(a, f"[{i}]", inputs, lookup)
        else:
            others.append(("", _value_text(a)))
    for k, v in kwargs.items():
        if has_tensor(v):
            flatten_values(v, k, inputs, lookup)
        else:
            others.append((k, v if isinstance(v, _SIMPLE) else _value_text(v)))
    return tuple(inputs), tuple(others)


class _Producers:
    """Which call or op produced each live tensor: ``id`` plus a weakref to be sure.

    Only a weak reference is kept, so no activation outlives its last use.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[weakref.ref[Tensor], Source]] = {}

    def mark_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The model's own inputs: ``(input_code(k), 0)`` for ``inputs[k]``."""
        n = 0  # the index the next leaf gets in the root's inputs

        def mark(_: str, leaf: object) -> None:
            nonlocal n
            if isinstance(leaf, Tensor):
                self._mark(leaf, (input_code(n), 0))
            n += 1

        for a in (*args, *kwargs.values()):
            walk(a, mark)

    def lookup(self, t: Tensor) -> Source:
        entry = self._by_id.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        return NO_SOURCE

    def _mark(self, t: Tensor, source: Source) -> Source:
        """Record ``source`` as ``t``'s producer; return its previous producer."""
        previous = self.lookup(t)
        try:
            self._by_id[id(t)] = (weakref.ref(t), source)
        except TypeError:  # a tensor type without weakref support
            return NO_SOURCE
        return previous

    def flatten_output(self, value: object, code: int) -> tuple[RawMeta, ...]:
        """Flatten ``value``, recording its leaf ``p`` as made by ``(code, p)``.

        ``code`` is ``layer_code`` or ``op_code`` of the call or op returning it.
        Each output's source is what produced it inside the call (the last child
        of a Sequential, the op that made a model's logits), or ``NO_SOURCE``.
        """
        if type(value) is Tensor and not value.is_nested:
            shape = tuple(value.shape)
            was, pos = self._mark(value, (code, 0))
            return (("", shape, value.dtype, value.device, None, was, pos, None),)
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
    """Raw tuples to TensorMeta.

    Args:
        device_as: The device name every tensor is written with, or None for its own
            (``"meta"`` for a run on fake CPU tensors standing in for meta ones).
    """

    def __init__(self, device_as: str | None = None) -> None:
        self.device_as = device_as

    def all(self, raws: Any) -> tuple[TensorMeta, ...]:
        one = self.one
        return tuple([one(r) for r in raws])

    def one(self, raw: RawMeta) -> TensorMeta:
        path, shape, dtype, device, value, code, pos, shard = raw
        if shape is None:
            return TensorMeta(None, None, None, path, value)
        where = decode(code)
        if where is None:
            source = None
        else:
            source = f"{where[0]}[{where[1]}]"
            if pos:
                source += f".outputs[{pos}]"
        where_to = self.device_as or _name(device)
        if shard is None:
            return TensorMeta(tuple(shape), _name(dtype), where_to, path, None, source)
        local, placements = shard
        return TensorMeta(
            tuple(shape), _name(dtype), where_to, path, None, source, local, placements
        )
