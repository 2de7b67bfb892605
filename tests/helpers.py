"""Shared helpers for the tests: an independent reference trace and model snapshots."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def tensors(value: Any, depth: int = 0) -> list[torch.Tensor]:
    """The tensors in a nested value, in order: containers, dataclasses and the attributes
    of other objects (a Hugging Face cache's per-layer keys and values)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if depth > 8:
        return []
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors(v, depth + 1)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for f in dataclasses.fields(value)
                for t in tensors(getattr(value, f.name), depth + 1)]  # fmt: skip
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors(v, depth + 1)]
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict) and not isinstance(value, (nn.Module, type)):
        return [t for v in attrs.values() for t in tensors(v, depth + 1)]
    return []


def reference_shapes(
    model: nn.Module, *args: Any, **kwargs: Any
) -> tuple[list[tuple[str, list[tuple[int, ...]]]], Any]:
    """(name, output shapes) of every module call in a plain eval forward, and the output.

    Uses plain forward hooks, independent of inspectnn, on a deep copy of the model.
    """
    import copy

    model = copy.deepcopy(model).eval()
    seen: list[tuple[str, list[tuple[int, ...]]]] = []
    starts: list[int] = []
    handles = []
    for name, mod in model.named_modules():

        def pre(m: nn.Module, a: Any, n: str = name) -> None:
            starts.append(len(seen))
            seen.append((n, []))

        def post(m: nn.Module, a: Any, out: Any) -> None:
            idx = starts.pop()
            seen[idx] = (seen[idx][0], [tuple(t.shape) for t in tensors(out)])

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        with torch.no_grad():
            out = model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return seen, out


@dataclasses.dataclass
class Snapshot:
    """Everything about a model that inspect must leave untouched."""

    tensors: dict[str, tuple[int, torch.Tensor, bool, torch.device, torch.dtype]]
    grads: dict[str, tuple[int, torch.Tensor] | None]
    flags: dict[str, bool]
    hooks: dict[str, tuple[int, ...]]
    rng: torch.Tensor
    global_hooks: tuple[int, ...]
    attrs: dict[str, tuple[tuple[str, ...], int | None]]


def _hook_dicts(mod: nn.Module) -> Iterator[dict[Any, Any]]:
    for attr in (
        "_forward_hooks",
        "_forward_pre_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks_with_kwargs",
        "_backward_hooks",
        "_backward_pre_hooks",
        "_state_dict_hooks",
        "_load_state_dict_pre_hooks",
    ):
        yield getattr(mod, attr)


def _global_hook_sizes() -> tuple[int, ...]:
    from torch.nn.modules import module as m

    return tuple(
        len(d)
        for d in (
            m._global_forward_hooks,
            m._global_forward_pre_hooks,
            m._global_backward_hooks,
            m._global_backward_pre_hooks,
            m._global_forward_hooks_always_called,
        )
    )


def _attrs(mod: nn.Module) -> tuple[tuple[str, ...], int | None]:
    """The module's instance attribute names, and which instance-level forward it has."""
    forward = mod.__dict__.get("forward")
    return tuple(sorted(mod.__dict__)), id(forward) if forward is not None else None


def snapshot(model: nn.Module) -> Snapshot:
    """Copy every value, flag, hook table and the RNG state."""
    named = dict(model.named_parameters(remove_duplicate=False))
    named.update(dict(model.named_buffers(remove_duplicate=False)))
    return Snapshot(
        tensors={
            k: (id(t), t.detach().clone(), t.requires_grad, t.device, t.dtype)
            for k, t in named.items()
        },
        grads={
            k: (id(p.grad), p.grad.clone()) if p.grad is not None else None
            for k, p in model.named_parameters(remove_duplicate=False)
        },
        flags={k: m.training for k, m in model.named_modules(remove_duplicate=False)},
        hooks={
            k: tuple(len(d) for d in _hook_dicts(m))
            for k, m in model.named_modules(remove_duplicate=False)
        },
        rng=torch.get_rng_state(),
        global_hooks=_global_hook_sizes(),
        attrs={k: _attrs(m) for k, m in model.named_modules(remove_duplicate=False)},
    )


def assert_unchanged(model: nn.Module, before: Snapshot) -> None:
    """Fail with the first difference between ``model`` now and ``before``."""
    after = snapshot(model)
    assert after.tensors.keys() == before.tensors.keys()
    for k, (oid, value, req, dev, dtype) in before.tensors.items():
        now = after.tensors[k]
        assert now[0] == oid, f"{k} was replaced by another tensor object"
        assert now[2] == req, f"{k}.requires_grad changed"
        assert now[3] == dev, f"{k} moved from {dev} to {now[3]}"
        assert now[4] == dtype, f"{k} dtype changed"
        if dev.type != "meta":
            assert torch.equal(now[1], value), f"{k} values changed"
    for k, grad in before.grads.items():
        now_grad = after.grads[k]
        if grad is None:
            assert now_grad is None, f"{k}.grad appeared"
        else:
            assert now_grad is not None and now_grad[0] == grad[0], f"{k}.grad replaced"
            assert torch.equal(now_grad[1], grad[1]), f"{k}.grad changed"
    assert after.flags == before.flags, "train/eval flags changed"
    assert after.hooks == before.hooks, "hooks left behind"
    assert after.global_hooks == before.global_hooks, "global hooks left behind"
    assert after.attrs == before.attrs, "module attributes (a forward wrapper?) left behind"
    assert torch.equal(after.rng, before.rng), "global RNG state changed"
