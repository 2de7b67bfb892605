"""The summary of a model given no input: its module tree, parameters and configuration.

``inspect(model)`` with no inputs cannot run the forward, so it reports what the
model holds rather than what a forward did: one record per module (in
``named_modules()`` order, a module held twice listed once), each with its
parameter counts, its own parameters and its ``extra_repr()``; no shapes and no
FLOPs. The report says so in a ``"not-run"`` finding, and the renderers show
``-`` where a forward would have put shapes. The JSON keeps the ``inspectnn/1``
schema: every layer's ``inputs`` and ``outputs`` are empty lists and ``call`` is 0.

Lazy modules (``nn.LazyLinear`` ...) are listed as uninitialised: their
parameters do not exist until the first forward, so they count as 0.
"""

from __future__ import annotations

import inspect as pyinspect

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from inspectnn.checks.coverage import NOT_RUN, not_run_findings
from inspectnn.checks.sharding import sharding_findings
from inspectnn.distributed.placement import ShardFacts, is_dtensor, shard_facts
from inspectnn.params import count_parameters, local_tensor
from inspectnn.records import LayerCall, ParamMeta, Totals
from inspectnn.report import Report
from inspectnn.trace.wrap import safe_extra_repr

__all__ = [
    "NOT_RUN",
    "has_lazy",
    "own_params",
    "param_metas",
    "raw_params",
    "static_report",
    "takes_no_input",
]


def takes_no_input(model: nn.Module) -> bool:
    """Whether ``model.forward`` declares no parameters at all, so ``model()`` is a full call.

    A forward with only optional parameters (``forward(self, x=None)``) does not
    count: calling it bare usually fails (a Hugging Face model wants ``input_ids``).
    """
    try:
        return not pyinspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a builtin or TorchScript forward: no signature
        return False


def has_lazy(walk: list[tuple[str, nn.Module]]) -> bool:
    """Whether some module holds a lazy parameter not created yet."""
    return any(is_lazy(p) for _, m in walk for p in m._parameters.values() if p is not None)


RawParams = list[tuple[str, "torch.Size | None", torch.dtype, bool, "ShardFacts | None"]]
"""A module's own parameters as read from it: name, shape (None while lazy; global for a
``DTensor``), dtype, ``requires_grad``, and a ``DTensor``'s sharding (``None`` for a
plain tensor). Read after each traced forward, so kept to attribute reads."""


def raw_params(module: nn.Module, lazy: bool = True) -> RawParams:
    """The module's own parameters; ``lazy=False`` when none can be lazy (skips the test)."""
    return [
        (name, None if lazy and is_lazy(p) else p.shape, p.dtype, p.requires_grad,
         shard_facts(p))
        for name, p in module._parameters.items()
        if p is not None
    ]  # fmt: skip


def param_metas(raw: RawParams) -> tuple[ParamMeta, ...]:
    """``raw_params``' result as records (a ``DTensor``'s with placements and local shape)."""
    return tuple(
        ParamMeta(name, None if shape is None else tuple(shape),
                  str(dtype).removeprefix("torch."), grad,
                  *(() if facts is None else (facts.placements, facts.local_shape,
                                              facts.mesh_shape, facts.mesh_dim_names)))
        for name, shape, dtype, grad, facts in raw
    )  # fmt: skip


def own_params(module: nn.Module) -> tuple[ParamMeta, ...]:
    """The module's own parameters as records (shape ``None`` while lazy)."""
    return param_metas(raw_params(module))


def _subtree_counts(mod: nn.Module) -> tuple[int, int]:
    """(params, trainable) of a subtree, each tensor once, lazy parameters as 0."""
    ps = [p for p in mod.parameters() if not is_lazy(p)]
    return sum(p.numel() for p in ps), sum(p.numel() for p in ps if p.requires_grad)


def static_report(model: nn.Module, device: torch.device, training: bool) -> Report:
    """The no-input summary of ``model``: its tree, parameter counts and configuration.

    Args:
        model: The model; it is only read.
        device: Where its tensors are (the report's ``device``).
        training: The mode the summary describes.

    Returns:
        A Report with one record per module, a ``"not-run"`` finding, one
        ``"lazy"`` finding per uninitialised module and, on a sharded rank,
        ``checks/sharding.py``'s findings.
    """
    tree = list(model.named_modules())
    lazy = has_lazy(tree)
    counts = None if lazy else count_parameters(model)
    index: dict[str, int] = {}
    layers: list[LayerCall] = []
    for i, (name, mod) in enumerate(tree):
        parent_name = name.rpartition(".")[0]
        parent = index.get(parent_name, 0) if name else -1
        index[name] = i
        if counts is not None:
            params, trainable, shared = counts.per_module[id(mod)]
        else:
            (params, trainable), shared = _subtree_counts(mod), ()
        layers.append(
            LayerCall(
                index=i,
                name=name,
                type=type(mod).__name__,
                depth=name.count(".") + 1 if name else 0,
                call=0,
                parent=parent,
                inputs=(),
                outputs=(),
                params=params,
                trainable_params=trainable,
                shared=shared,
                extra=safe_extra_repr(mod),
                weights=own_params(mod),
            )
        )
    totals = _totals(model, layers[0])
    findings = not_run_findings(layers)
    if totals.sharded:  # uneven shards and forgotten plan entries show without a forward
        findings += sharding_findings(
            {c.name: c.weights for c in layers if c.weights},
            {c.name: c.type for c in layers if c.weights},
        )
    return Report(
        type(model).__name__,
        str(device),
        "train" if training else "eval",
        totals,
        layers,
        findings=findings,
    )


def _totals(model: nn.Module, root: LayerCall) -> Totals:
    """Global parameter counts (the root's), this rank's parameter bytes (local shards)."""
    params = [p for p in model.parameters() if not is_lazy(p)]
    held = [local_tensor(p) for p in params]
    buffers = [b for b in model.buffers() if not is_lazy(b)]
    sharded = any(is_dtensor(p) for p in params)
    return Totals(
        params=root.params,
        trainable_params=root.trainable_params,
        buffers=sum(b.numel() for b in buffers),
        param_bytes=sum(t.numel() * t.element_size() for t in held),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        activation_bytes=0,
        flops=0,
        sharded=sharded,
        local_params=sum(t.numel() for t in held) if sharded else None,
    )
