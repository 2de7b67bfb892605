"""One walker over nested values: every place inspectnn looks inside a value uses it.

A value is a tree whose leaves are tensors and plain values. Containers are:

* tuples and lists (a named tuple, ``PackedSequence`` included, by field name);
* mappings (Hugging Face ``ModelOutput`` included: it is an ``OrderedDict``);
* dataclass instances, by field;
* other objects that hold tensors in their attributes (transformers'
  ``DynamicCache`` / ``EncoderDecoderCache`` and their per-layer ``keys`` and
  ``values``): the attributes that hold a tensor somewhere below them, in order.

Modules, classes and functions are never entered, and the walk stops at depth 8
(deeper values are leaves), so a cycle or a huge object graph cannot run away.

Example:
    >>> import torch
    >>> [path for path, _ in leaves({"a": (torch.ones(1), None)})]
    ["['a'][0]", "['a'][1]"]
"""

from __future__ import annotations

import copy
import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

__all__ = ["MAX_DEPTH", "has_tensor", "leaves", "map_tensors", "tensors", "walk"]

MAX_DEPTH = 8
Visit = Callable[[str, object], None]

# Never entered as objects: their attributes are not the value's content.
_OPAQUE = (
    nn.Module,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    torch.dtype,
    torch.device,
)
_SCALARS = (str, bytes, int, float, complex, type(None), torch.dtype, torch.device)
_LEAVES = (Tensor, *_SCALARS)


def _parts(
    value: object, depth: int, objects: bool = True
) -> list[tuple[str, Any, object]] | None:
    """``(path suffix, key, child)`` of each part of a container; None for a leaf.

    The key is what ``map_tensors`` rebuilds the container with: the mapping key,
    the position, or the field/attribute name. ``objects=False`` leaves objects
    that are not containers or dataclasses (a cache) whole.
    """
    if isinstance(value, (tuple, list)):
        fields = getattr(value, "_fields", None)
        if fields:
            return [(f".{f}", f, v) for f, v in zip(fields, value, strict=False)]
        return [(f"[{i}]", i, v) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return [(f"[{k!r}]", k, v) for k, v in value.items()]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f".{f.name}", f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    attrs = getattr(value, "__dict__", None) if objects else None
    if type(attrs) is dict and attrs and not isinstance(value, _OPAQUE):
        found = [(f".{k}", k, v) for k, v in attrs.items() if _holds_tensor(v, depth + 1)]
        return found or None
    return None


def _holds_tensor(value: object, depth: int) -> bool:
    if isinstance(value, Tensor):
        return True
    if depth >= MAX_DEPTH or isinstance(value, _SCALARS):
        return False
    if isinstance(value, (tuple, list, Mapping)):
        # a loop, not any(genexpr): op outputs such as x.size() come here on the hot path
        for v in value.values() if isinstance(value, Mapping) else value:
            if isinstance(v, Tensor):
                return True
            if not isinstance(v, _SCALARS) and _holds_tensor(v, depth + 1):
                return True
        return False
    parts = _parts(value, depth)
    return parts is not None and any(_holds_tensor(v, depth + 1) for _, _, v in parts)


def walk(
    value: object, visit: Visit, path: str = "", depth: int = 0, objects: bool = True
) -> None:
    """Call ``visit(path, leaf)`` for every leaf of ``value``, depth first, in order.

    Args:
        value: Any value: a tensor, a container of them, an object holding them.
        visit: Called with the leaf's path (``"[0]"``, ``"['logits']"``,
            ``".layers[0].keys"``, appended to ``path``) and the leaf itself.
        path: The path of ``value`` itself.
        depth: How deep ``value`` already is; at ``MAX_DEPTH`` it is a leaf.
        objects: Enter objects that hold tensors (a KV cache); False makes them
            leaves, as where one object is handed to every layer.
    """
    if isinstance(value, _LEAVES):  # the common leaves, without an ABC check
        visit(path, value)
        return
    parts = _parts(value, depth, objects) if depth < MAX_DEPTH else None
    if parts is None:
        visit(path, value)
        return
    for suffix, _, child in parts:
        walk(child, visit, path + suffix, depth + 1, objects)


def leaves(value: object, path: str = "") -> list[tuple[str, object]]:
    """``(path, leaf)`` of every leaf of ``value``, in order (see :func:`walk`)."""
    out: list[tuple[str, object]] = []
    walk(value, lambda p, leaf: out.append((p, leaf)), path)
    return out


def tensors(value: object) -> list[Tensor]:
    """Every tensor in ``value``, in order."""
    if isinstance(value, Tensor):
        return [value]
    out: list[Tensor] = []
    walk(value, lambda _, leaf: out.append(leaf) if isinstance(leaf, Tensor) else None)
    return out


def has_tensor(value: object) -> bool:
    """Whether ``value`` holds a tensor anywhere (a tensor itself included)."""
    return _holds_tensor(value, 0)


def map_tensors(value: Any, fn: Callable[[Tensor], Any], depth: int = 0) -> Any:
    """``value`` with ``fn`` applied to each tensor; containers are rebuilt, never changed.

    Tuples, lists and named tuples are made anew; a dict (``defaultdict``,
    ``ModelOutput``), a dataclass or an object holding tensors is copied
    (``copy.copy``) and the copy's items or fields set.
    """
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, PackedSequence):  # batch_sizes is bookkeeping: it stays on the CPU
        data, sizes, order, unorder = value
        again = (None if t is None else map_tensors(t, fn, depth + 1) for t in (order, unorder))
        return PackedSequence(map_tensors(data, fn, depth + 1), sizes, *again)
    parts = _parts(value, depth) if depth < MAX_DEPTH else None
    if parts is None:
        return value
    new = [(key, map_tensors(child, fn, depth + 1)) for _, key, child in parts]
    if isinstance(value, tuple) and getattr(value, "_fields", None):
        return type(value)(*(v for _, v in new))
    if isinstance(value, (tuple, list)):
        return type(value)(v for _, v in new)
    if isinstance(value, Mapping) and not isinstance(value, dict):
        try:
            return type(value)(dict(new))  # type: ignore[call-arg]
        except TypeError:  # a mapping type that cannot be built from a dict
            return dict(new)
    out = copy.copy(value)
    if isinstance(out, dict):  # defaultdict, OrderedDict, ModelOutput: same type, same extras
        for key, v in new:
            out[key] = v  # ModelOutput refuses update() but takes items
        return out
    for key, v in new:
        object.__setattr__(out, key, v)
    return out
