"""Parameter and buffer counting where every tensor counts once.

torchinfo sums ``p.numel()`` per layer and so counts a tied embedding/head
weight twice (GPT-2: 163,037,184 instead of 124,439,808). Here a tensor that
sits in more than one place is tracked by identity and counted once in every
subtree that holds it, however many times it appears there.

On a sharded rank (``DTensor`` parameters: tensor parallel, FSDP2) the counts are
the model's, global: a ``DTensor``'s ``numel()`` is its global shape's, so a 6.7B
model counts 6.7B on every rank. The bytes are this rank's: ``param_bytes`` adds
up each parameter's local shard (``to_local()``), what the rank holds in memory,
and ``local_params`` its elements. A model with no ``DTensor`` parameter gets the
same figures either way (``local_params == params``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.parameter import is_lazy

from inspectnn.distributed.placement import is_dtensor

__all__ = ["ModelCounts", "ModuleCounts", "count_parameters", "local_tensor"]

_NO_IDS: frozenset[int] = frozenset()


ModuleCounts = tuple[int, int, tuple[str, ...]]
"""Counts for one module's subtree: ``(params, trainable, shared)``.

``params`` are the unique parameter elements in the subtree, ``trainable`` those
of tensors with ``requires_grad``, ``shared`` one ``"local=other.path"`` for each
of the module's own parameters that also sits elsewhere in the model. A plain
tuple of plain values: the garbage collector stops tracking it.
"""


class ModelCounts(NamedTuple):
    """Counts for the whole model, and per module (keyed by ``id(module)``).

    ``params``, ``trainable`` and ``per_module`` count global elements (a
    ``DTensor``'s global shape); ``param_bytes`` and ``local_params`` are this rank's
    share (each ``DTensor``'s local shard); ``sharded`` says some parameter is a
    ``DTensor``. Without one, ``local_params`` is ``params``.
    """

    per_module: dict[int, ModuleCounts]
    params: int
    trainable: int
    param_bytes: int
    buffers: int
    buffer_bytes: int
    uniform: bool = True  # one float dtype and one device across parameters and buffers
    local_params: int = 0
    sharded: bool = False


def count_parameters(
    model: nn.Module, walk: list[tuple[str, nn.Module]] | None = None
) -> ModelCounts:
    """Count parameters per module subtree and in total, each tensor once.

    Args:
        model: Any module; it is only read.
        walk: ``list(model.named_modules(remove_duplicate=False))`` if the
            caller has it already.

    Returns:
        The counts. ``per_module[id(m)][0]`` equals
        ``sum(p.numel() for p in m.parameters())`` for every submodule ``m``.

    Example:
        >>> lin = nn.Linear(3, 2)
        >>> count_parameters(nn.Sequential(lin, lin)).params
        8
    """
    per_module, tensors, buffers, repeated = _tree_counts(model)
    if repeated:  # a tensor or module in two places: count each once per subtree
        if walk is None:
            walk = list(model.named_modules(remove_duplicate=False))
        per_module = _shared_counts(model, walk, tensors)
    root = per_module[id(model)]
    param_bytes, n_buffers, buffer_bytes, kinds = _sizes(tensors, buffers)
    local_params, sharded = _local_params(tensors, root[0])
    return ModelCounts(
        per_module=per_module,
        params=root[0],
        trainable=root[1],
        param_bytes=param_bytes,
        buffers=n_buffers,
        buffer_bytes=buffer_bytes,
        uniform=len(kinds) <= 1
        or (len({d for d, _ in kinds} - {None}) <= 1 and len({v for _, v in kinds}) <= 1),
        local_params=local_params,
        sharded=sharded,
    )


def local_tensor(t: Tensor) -> Tensor:
    """What this rank holds of ``t``: a ``DTensor``'s local shard, else ``t`` itself."""
    return t.to_local() if is_dtensor(t) else t  # type: ignore[attr-defined]


def _local_params(tensors: dict[int, Tensor], params: int) -> tuple[int, bool]:
    """This rank's parameter elements and whether some parameter is a ``DTensor``;
    ``(params, False)`` without one."""
    if not any(is_dtensor(t) for t in tensors.values()):
        return params, False
    return sum(local_tensor(t).numel() for t in tensors.values()), True


Kinds = set[tuple["torch.dtype | None", torch.device]]


def _sizes(tensors: dict[int, Tensor], buffers: dict[int, Tensor]) -> tuple[int, int, int, Kinds]:
    """Parameter bytes, buffer elements and bytes, and the (float dtype, device) kinds."""
    kinds: Kinds = set()
    param_bytes = n_buffers = buffer_bytes = 0
    for t in tensors.values():
        param_bytes += _nbytes(local_tensor(t))
        dtype = t.dtype
        kinds.add((dtype if dtype.is_floating_point else None, t.device))
    for b in buffers.values():
        n_buffers += b.numel()
        buffer_bytes += _nbytes(b)
        dtype = b.dtype
        kinds.add((dtype if dtype.is_floating_point else None, b.device))
    return param_bytes, n_buffers, buffer_bytes, kinds


_COMPRESSED = {
    torch.sparse_csr: ("crow_indices", "col_indices"),
    torch.sparse_bsr: ("crow_indices", "col_indices"),
    torch.sparse_csc: ("ccol_indices", "row_indices"),
    torch.sparse_bsc: ("ccol_indices", "row_indices"),
}


def _nbytes(t: Tensor) -> int:
    """Bytes the tensor holds: for a sparse one, its indices and values as stored.

    Its elements (``numel()``, what the parameter and buffer counts add up) are
    those of the dense shape; its bytes are what it really takes.
    """
    layout = t.layout
    if layout == torch.strided:
        return t.nbytes
    if layout == torch.sparse_coo:
        return t._indices().nbytes + t._values().nbytes
    if layout in _COMPRESSED:
        compressed, plain = _COMPRESSED[layout]
        parts = (getattr(t, compressed)(), getattr(t, plain)(), t.values())
        return sum(part.nbytes for part in parts)
    return t.numel() * t.element_size()  # another layout: its dense size


def _tree_counts(
    model: nn.Module,
) -> tuple[dict[int, ModuleCounts], dict[int, Tensor], dict[int, Tensor], bool]:
    """Per-module subtree counts assuming no module or parameter appears twice, the
    unique parameters and buffers by id, and whether one did appear twice (then the
    counts are wrong and the caller recounts)."""
    per_module: dict[int, ModuleCounts] = {}
    tensors: dict[int, Tensor] = {}
    buffers: dict[int, Tensor] = {}
    repeated = _visit(model, per_module, tensors, buffers)
    return per_module, tensors, buffers, repeated


def _visit(
    mod: nn.Module,
    per_module: dict[int, ModuleCounts],
    tensors: dict[int, Tensor],
    buffers: dict[int, Tensor],
) -> bool:
    """Fill the counts of ``mod``'s subtree; True if a module or parameter repeated.

    A module-level function, not a closure: a recursive closure refers to itself,
    and the cycle would leave work for the garbage collector on every call.
    """
    repeated = False
    total = trainable = 0
    for p in mod._parameters.values():
        if p is not None:
            if type(p) is not nn.Parameter and is_lazy(p):  # numel() may not say so
                from inspectnn.errors import InvalidInputError

                raise InvalidInputError(
                    f"{type(mod).__name__} is a lazy module whose parameters are not created "
                    "yet: run model(x) once with a real input first, then count them."
                )
            if id(p) in tensors:
                repeated = True
            tensors[id(p)] = p
            n = p.numel()
            total += n
            if p.requires_grad:
                trainable += n
    if mod._buffers:
        for b in mod._buffers.values():
            if b is not None:
                buffers[id(b)] = b
    for child in mod._modules.values():
        if child is not None:
            if id(child) in per_module:
                repeated = True
            if _visit(child, per_module, tensors, buffers):
                repeated = True
            c = per_module[id(child)]
            total += c[0]
            trainable += c[1]
    per_module[id(mod)] = (total, trainable, ())
    return repeated


def _shared_counts(
    model: nn.Module, walk: list[tuple[str, nn.Module]], tensors: dict[int, Tensor]
) -> dict[int, ModuleCounts]:
    """Per-module subtree counts with tied tensors (or modules) counted once per subtree,
    and each module's ``shared`` labels."""
    counter = _SharedCounter(walk, tensors)
    counter.visit(model)
    return counter.per_module


class _SharedCounter:
    """State of one recount; a method recursing through ``self`` leaves no cycle."""

    def __init__(self, walk: list[tuple[str, nn.Module]], tensors: dict[int, Tensor]) -> None:
        self.tensors = tensors
        self.places: dict[int, list[str]] = defaultdict(list)
        self.names: dict[int, str] = {}
        for mname, mod in walk:
            self.names.setdefault(id(mod), mname)
            for pname, p in mod._parameters.items():
                if p is not None:
                    self.places[id(p)].append(f"{mname}.{pname}" if mname else pname)
        self.shared_ids = {pid for pid, where in self.places.items() if len(where) > 1}
        self.per_module: dict[int, ModuleCounts] = {}
        self.shared_sets: dict[int, frozenset[int]] = {}
        self.unshared: dict[int, tuple[int, int]] = {}

    def visit(self, mod: nn.Module) -> tuple[int, int]:
        """Returns (params, trainable) of the subtree's *unshared* tensors."""
        tensors, unshared, shared_sets = self.tensors, self.unshared, self.shared_sets
        total = trainable = 0
        own_shared: set[int] = set()
        labels: list[str] = []
        for pname, p in mod._parameters.items():
            if p is None:
                continue
            pid = id(p)
            if pid in self.shared_ids:
                own_shared.add(pid)
                mname = self.names[id(mod)]
                here = f"{mname}.{pname}" if mname else pname
                labels += [f"{pname}={w}" for w in self.places[pid] if w != here]
            else:
                total += p.numel()
                trainable += p.numel() if p.requires_grad else 0
        sub_shared: frozenset[int] = frozenset(own_shared) if own_shared else _NO_IDS
        seen: set[int] = set()
        for child in mod._modules.values():
            if child is None or id(child) in seen:
                continue
            seen.add(id(child))
            counts = unshared[id(child)] if id(child) in unshared else self.visit(child)
            total += counts[0]
            trainable += counts[1]
            if shared_sets[id(child)]:
                sub_shared = sub_shared | shared_sets[id(child)]
        unshared[id(mod)] = (total, trainable)
        shared_sets[id(mod)] = sub_shared
        if sub_shared:
            total_all = total + sum(tensors[i].numel() for i in sub_shared)
            train_all = trainable + sum(
                tensors[i].numel() for i in sub_shared if tensors[i].requires_grad
            )
            self.per_module[id(mod)] = (total_all, train_all, tuple(labels))
        else:
            self.per_module[id(mod)] = (total, trainable, ())
        return total, trainable
