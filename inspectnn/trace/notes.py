"""What the tracer notes about a call besides its values: contract enforcement, the
numerics check, buffer writes and parameters that are not the model's.

Owns ``ContractBreach`` and ``enforce`` (a layer's contract checked before its call,
the violation noted, and the call stopped where PyTorch would fail or silently go
wrong), ``nonfinite_note`` (the numerics check), ``buffer_state``/``buffers_written``
(which buffers a forward wrote, in place or rebound) and ``ParameterWatch`` /
``holder_of`` (a parameter an op used that no module of the model registers). The
functions hold no state: the tables they fill are the ``Tracer``'s. They run in the
tracer's pre/post steps and op recorder, under ``_hidden()``; the findings made from
the notes are built in ``inspectnn.checks``.

May import: ``inspectnn.checks.contracts`` and ``inspectnn.values``, nothing of the
rest of ``inspectnn.trace``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from inspectnn.checks.contracts import STRICT_DTYPE, Contract, Violation
from inspectnn.values import leaves, tensors

__all__ = [
    "ContractBreach",
    "ParameterWatch",
    "buffer_state",
    "buffers_written",
    "enforce",
    "holder_of",
    "nonfinite_note",
]

# (call index, has NaN, (min, max) of each float input) of the first non-finite output
NonFinite = tuple[int, bool, list[tuple[float, float]]]
BufferState = list[tuple[str, Tensor, int]]


class ContractBreach(RuntimeError):
    """Raised before a layer's call when it cannot run correctly: a device mismatch, or a
    dtype mismatch into a matmul/conv layer. Turned into a diagnosed error by the API."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(
            f"inspectnn: {violation.arg} {violation.got}, expected {violation.expected}"
        )
        self.violation = violation


def _device_type(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The device type of the call's first tensor, nested ones included; ``"cpu"`` if none."""
    found = tensors((args, kwargs))
    return found[0].device.type if found else "cpu"


def enforce(
    contract: Contract,
    module: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    violations: dict[int, Violation],
    idx: int,
) -> None:
    """Check call ``idx`` against its layer's contract; a violation goes in ``violations``.

    Raises:
        ContractBreach: A device mismatch, or a dtype mismatch into a layer in
            ``STRICT_DTYPE``: PyTorch would raise, or (a CPU tensor into meta weights)
            silently go on.
    """
    try:
        violation = contract(module, args, kwargs)
    except Exception:  # a contract must never break a forward that would run
        return
    if violation is None:
        return
    if violation.kind == "dtype" and torch.is_autocast_enabled(_device_type(args, kwargs)):
        return  # autocast casts the inputs of matmuls and convolutions itself
    violations[idx] = violation
    if violation.kind == "device" or (violation.kind == "dtype" and type(module) in STRICT_DTYPE):
        raise ContractBreach(violation)


def nonfinite_note(idx: int, args: tuple[Any, ...], output: Any) -> NonFinite | None:
    """``(idx, has NaN, input ranges)`` when call ``idx``'s output holds NaN or Inf, else
    None. A tensor it cannot reduce (a nested or sparse one, a layout without
    ``isfinite``) is skipped: the check must never fail a forward that runs."""
    for t in tensors(output):
        if not t.is_floating_point() or t.device.type == "meta" or t.layout != torch.strided:
            continue
        try:
            if bool(t.isfinite().all()):
                continue
            floats = [x for x in tensors(args) if x.is_floating_point() and x.numel()]
            ranges = [(float(x.min()), float(x.max())) for x in floats]
            return idx, bool(t.isnan().any()), ranges
        except (RuntimeError, NotImplementedError):  # a tensor type without these ops
            continue
    return None


def _version(t: Tensor) -> int:
    """``t._version``; -1 for a tensor without a version counter (made in inference mode)."""
    try:
        return t._version
    except RuntimeError:
        return -1


def buffer_state(module: nn.Module) -> BufferState:
    """``(name, tensor, version)`` of the module's own buffers, before its forward."""
    return [(name, t, _version(t)) for name, t in module._buffers.items() if t is not None]


def buffers_written(module: nn.Module, before: BufferState) -> tuple[tuple[str, ...], bool] | None:
    """``(names, the module was training)`` of the buffers its forward wrote (in place or
    rebound) since ``before``; None when it wrote none."""
    now = module._buffers
    written = [name for name, t, version in before if now.get(name) is not t
               or _version(t) != version]  # fmt: skip
    known = {name for name, _, _ in before}
    written += [name for name, t in now.items() if t is not None and name not in known]
    if "num_batches_tracked" in written and isinstance(module, _NormBase):
        # the native kernel updates the running statistics without a version bump
        written[:0] = [n for n in ("running_mean", "running_var") if now.get(n) is not None]
    return (tuple(written), module.training) if written else None


def holder_of(p: Tensor, modules: Iterable[tuple[str, str, nn.Module]]) -> tuple[str, str]:
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


# ParameterWatch entries: [holder path, holder type, shape, device, module whose forward
# used it, op index, an op using it failed] (read by index in checks/state.py)
_OP_FAILED = 6


class ParameterWatch:
    """Parameters an op used that no module of the model registers: a module held in a
    plain list, dict or attribute (``entries``, the tracer's ``unregistered``).

    Args:
        modules: ``id(module) -> (name, type name, module)`` of the model's modules.
    """

    def __init__(self, modules: dict[int, tuple[str, str, nn.Module]]) -> None:
        self._modules = modules
        self._known: set[int] | None = None
        self.entries: dict[int, list[Any]] = {}  # id(parameter) -> entry

    def check(self, p: Tensor, failed: bool, user: int, op_index: int) -> None:
        """Note ``p``, used by op ``op_index`` in the forward of module id ``user``, when
        it is no parameter of the model.

        The model's parameter ids are gathered on the first parameter an op sees,
        inside the forward, so substituted copies (``device=``) are the ones known;
        again on the first use of a parameter not known then, as the model's slots may
        hold other tensors by now (FSDP2 registers a module's gathered parameters in
        its pre-forward hook, after an earlier module's ops ran).
        """
        known = self._known
        if known is None:
            known = self._known = self._registered()
        if id(p) in known:
            return
        seen = self.entries.get(id(p))
        if seen is None:
            known |= self._registered()
            if id(p) in known:
                return
            holder, kind = holder_of(p, self._modules.values())
            name, _, _ = self._modules[user]
            self.entries[id(p)] = [holder, kind, tuple(p.shape), str(p.device), name, op_index,
                                   failed]  # fmt: skip
        elif failed:
            seen[_OP_FAILED] = True

    def _registered(self) -> set[int]:
        """The ids of the tensors in every module's parameter slots now."""
        return {id(q) for _, _, m in self._modules.values() for q in m._parameters.values()}

    def release(self) -> None:
        """Drop the modules and the known ids; ``entries`` stay."""
        self._modules = {}
        self._known = None
