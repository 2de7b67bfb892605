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
    values: dict[str, dict[str, tuple[Any, tuple[Any, ...] | None]]]


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


def _values(mod: nn.Module) -> dict[str, tuple[Any, tuple[Any, ...] | None]]:
    """Each instance attribute's object, and for a list, dict or set the objects in it
    (an RNN's ``_flat_weights``); references, so that no id is reused meanwhile."""
    out: dict[str, tuple[Any, tuple[Any, ...] | None]] = {}
    for name, value in mod.__dict__.items():
        if name == "forward":
            continue  # _attrs checks it
        inside: tuple[Any, ...] | None = None
        if isinstance(value, (list, set)):
            inside = tuple(value)
        elif isinstance(value, dict):
            inside = (*value.keys(), *value.values())
        out[name] = (value, inside)
    return out


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two tuples hold the very same objects."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


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
        values={k: _values(m) for k, m in model.named_modules(remove_duplicate=False)},
    )


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same layout, shape and values (a sparse tensor compared as its dense form)."""
    if a.layout != b.layout:
        return False
    if a.layout != torch.strided:
        return torch.equal(a.to_dense(), b.to_dense())
    return torch.equal(a, b)


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
            assert _equal(now[1], value), f"{k} values changed"
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
    for k, values in before.values.items():
        for name, (value, inside) in values.items():
            now, now_inside = after.values[k][name]
            where = f"{k or '(root)'}.{name}"
            assert now is value, f"{where} was rebound to another object"
            if inside is not None:
                assert now_inside is not None and _same(now_inside, inside), (
                    f"{where} holds other objects"
                )
    assert torch.equal(after.rng, before.rng), "global RNG state changed"


def all_tensors(value: Any, seen: set[int] | None = None, depth: int = 0) -> list[torch.Tensor]:
    """Every tensor anywhere in ``value``: containers, dataclasses and the attributes of
    other objects (a Hugging Face cache's key/value tensors), in order."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        return [value]
    if value is None or isinstance(value, (int, float, str, bool, torch.dtype, torch.device)):
        return []
    if id(value) in seen or depth > 8 or isinstance(value, nn.Module):
        return []
    seen.add(id(value))
    if isinstance(value, dict):
        items: list[Any] = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        items = list(vars(value).values())
    else:
        return []
    return [t for item in items for t in all_tensors(item, seen, depth + 1)]


def same_tensors(got: Any, want: Any) -> str | None:
    """None when every tensor in ``got`` equals ``want``'s bit for bit (NaN = NaN)."""
    a_all, b_all = all_tensors(got), all_tensors(want)
    if len(a_all) != len(b_all):
        return f"{len(a_all)} output tensors, the plain forward has {len(b_all)}"
    for i, (a, b) in enumerate(zip(a_all, b_all, strict=True)):
        if a.layout != b.layout:
            return f"output tensor {i}: layout {a.layout}, the plain forward's {b.layout}"
        if a.layout != torch.strided or a.is_quantized:
            a, b = a.to_dense() if a.is_sparse else a, b.to_dense() if b.is_sparse else b
            a, b = (a.dequantize(), b.dequantize()) if a.is_quantized else (a, b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output tensor {i}: {a.dtype} {tuple(a.shape)}, plain: {b.dtype} {b.shape}"
        if not (torch.equal(a.cpu(), b.cpu()) or _nan_equal(a, b)):
            return f"output tensor {i} {tuple(a.shape)} differs from the plain forward's"
    return None


def _nan_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if not (a.is_floating_point() or a.is_complex()):
        return False
    return bool(torch.allclose(a.cpu(), b.cpu(), rtol=0, atol=0, equal_nan=True))


_SLOTS = ("_parameters", "_buffers", "_modules")


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool, bytes, torch.dtype))


def _same_attr(a: Any, b: Any) -> bool:
    """The same object, an equal plain value, or a list/tuple of the same objects."""
    if a is b:
        return True
    if _plain(a) and _plain(b):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and type(a) is type(b) and len(a) == len(b):
        pairs = zip(a, b, strict=True)
        return all(x is y or (_plain(x) and _plain(y) and x == y) for x, y in pairs)
    return False


def attributes(model: nn.Module) -> dict[tuple[str, str], Any]:
    """Every module's shallow instance attributes other than its params, buffers and
    children (an RNN's ``_flat_weights`` as a copy of the list, so a rebinding of its
    items shows)."""
    out: dict[tuple[str, str], Any] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        for key, value in vars(mod).items():
            if key not in _SLOTS:
                out[(name, key)] = list(value) if key == "_flat_weights" else value
    return out


def attribute_changes(model: nn.Module, before: dict[tuple[str, str], Any]) -> list[str]:
    """Instance attributes added, removed or rebound since ``attributes(model)`` was
    ``before``; empty when none."""
    now = attributes(model)
    changed = [f"{n or '<root>'}.{k} added" for n, k in now.keys() - before.keys()]
    changed += [f"{n or '<root>'}.{k} removed" for n, k in before.keys() - now.keys()]
    for key in now.keys() & before.keys():
        if not _same_attr(now[key], before[key]):
            changed.append(f"{key[0] or '<root>'}.{key[1]} rebound")
    return sorted(changed)


def explains(err: BaseException) -> bool:
    """True for an inspectnn error that says why in its own words: it carries a fix
    (``.fix`` or a ``fix:`` line), not torch's text alone."""
    from inspectnn.errors import InspectnnError, InvalidInputError

    if not isinstance(err, InspectnnError):
        return False
    if isinstance(err, InvalidInputError):  # refused up front, in inspectnn's words
        return True
    return bool(getattr(err, "fix", "")) or "\n  fix:" in str(err)


class Untouched:
    """Everything ``inspect`` must leave as it was: :func:`snapshot` plus every instance
    attribute (:func:`attributes`); ``check()`` fails with the first difference."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.state = snapshot(model)
        self.attrs = attributes(model)

    def check(self) -> None:
        assert_unchanged(self.model, self.state)
        changes = attribute_changes(self.model, self.attrs)
        assert not changes, f"instance attributes changed: {', '.join(changes[:5])}"
