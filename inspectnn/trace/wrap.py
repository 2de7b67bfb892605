"""Forward wrapping and the per-module facts read around a wrapped call.

Owns ``_wrap`` (the ``traced_forward`` put in a module's instance ``__dict__``: a
pre step, the forward, a post step, even when the forward raises), ``_NO_FORWARD``
(the module had no instance-level ``forward``), ``_class_facts`` (name, whether torch
defines it, contract and leaf kind, once per class), ``_device_type``,
``_buffer_state``/``_version`` (buffers before a forward, to see writes),
``_holder_of`` (who holds an unregistered parameter) and ``safe_extra_repr``.

May import: ``inspectnn.checks.contracts``, ``inspectnn.flops`` and
``inspectnn.values``, nothing of the rest of ``inspectnn.trace``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from inspectnn.checks.contracts import Contract, contract_for_class
from inspectnn.flops import LEAF_KINDS
from inspectnn.values import leaves, tensors


def _device_type(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The device type of the call's first tensor, nested ones included; ``"cpu"`` if none."""
    found = tensors((args, kwargs))
    return found[0].device.type if found else "cpu"


_NO_FORWARD = object()  # the module had no instance-level ``forward`` of its own


def _wrap(
    forward: Callable[..., Any],
    module: nn.Module,
    pre: Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None],
    post: Callable[[nn.Module, tuple[Any, ...], Any, BaseException | None], None],
) -> Callable[..., Any]:
    def traced_forward(*args: Any, **kwargs: Any) -> Any:
        try:
            pre(module, args, kwargs)
            out = forward(*args, **kwargs)
        except BaseException as exc:
            post(module, args, None, exc)
            raise
        post(module, args, out, None)
        return out

    traced_forward.__wrapped__ = forward  # type: ignore[attr-defined]  # inspect.signature
    return traced_forward


# class -> (name, defined in torch.nn, contract, leaf kind): the same for every instance
_CLASS_FACTS: dict[type, tuple[str, bool, Contract | None, str | None]] = {}


def _class_facts(cls: type[nn.Module]) -> tuple[str, bool, Contract | None, str | None]:
    facts = (
        cls.__name__,
        cls.__module__.startswith("torch.nn."),
        contract_for_class(cls),
        LEAF_KINDS.get(cls),
    )
    _CLASS_FACTS[cls] = facts
    return facts


def _version(t: Tensor) -> int:
    """``t._version``; -1 for a tensor without a version counter (made in inference mode)."""
    try:
        return t._version
    except RuntimeError:
        return -1


def _buffer_state(module: nn.Module) -> list[tuple[str, Tensor, int]]:
    """``(name, tensor, version)`` of the module's own buffers, before its forward."""
    return [(name, t, _version(t)) for name, t in module._buffers.items() if t is not None]


def _holder_of(p: Tensor, modules: Any) -> tuple[str, str]:
    """``(path, type)`` of the module outside the model's tree that holds parameter ``p``:
    one a model's module keeps in a plain list, dict or attribute; ``("", "")`` if none."""
    for name, _, mod in modules:
        for attr, value in vars(mod).items():
            if attr.startswith("_"):  # torch's own tables, private state
                continue
            for suffix, held in leaves(value):
                if not isinstance(held, nn.Module):
                    continue
                for sub_name, sub in held.named_modules():
                    if any(q is p for q in sub._parameters.values()):
                        where = f"{name}.{attr}{suffix}" if name else f"{attr}{suffix}"
                        where += f".{sub_name}" if sub_name else ""
                        return where, type(sub).__name__
    return "", ""


def safe_extra_repr(module: nn.Module) -> str:
    try:
        return module.extra_repr()
    except Exception:  # a broken extra_repr must not break the report
        return ""
