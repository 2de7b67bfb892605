"""The optimizer of a measured step, always built on shadow tensors.

A user names the optimizer as a string (``"adamw"``, ``"adam"``, ``"sgd"``), an
``torch.optim.Optimizer`` subclass, a callable ``params -> Optimizer`` or an
existing instance. ``shadow_optimizer`` builds one of the same kind on shadows of
the model's parameters: meta tensors (or, given ``device``, empty tensors there)
of the same shape, strides and dtype, so that its ``step()`` allocates what the
real one would, and never touches the user's parameters or optimizer.

The names' defaults: ``"adamw"`` is ``AdamW()`` (lr 1e-3, weight decay 0.01: two
moments and a step count per parameter), ``"adam"`` is ``Adam()``, ``"sgd"`` is
``SGD(momentum=0.9)`` (one momentum buffer per parameter: the usual setting; plain
SGD holds no state). When the real device is CUDA, groups that leave ``foreach``
unset get ``foreach=True``, which torch would pick there, so that the step's
transients match the real step's; elsewhere torch's own default stays.

May import: torch, ``distributed/placement.py``, ``errors.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from inspectnn.distributed.placement import is_dtensor
from inspectnn.errors import InvalidInputError

__all__ = [
    "NAMES",
    "OptimizerLike",
    "ShadowOptimizer",
    "build_optimizer",
    "shadow_optimizer",
    "state_tensors",
]

OptimizerLike: TypeAlias = (
    str | type[Optimizer] | Callable[[list[Tensor]], Optimizer] | Optimizer
)

NAMES: dict[str, Callable[[list[Tensor]], Optimizer]] = {
    "adamw": lambda params: torch.optim.AdamW(params),
    "adam": lambda params: torch.optim.Adam(params),
    "sgd": lambda params: torch.optim.SGD(params, momentum=0.9),
}


@dataclass(frozen=True, slots=True)
class ShadowOptimizer:
    """An optimizer built on shadows of the model's parameters.

    Attributes:
        optimizer: The optimizer, holding only shadow tensors.
        shadows: ``id(user parameter)`` -> its shadow, for each parameter given to it.
        frozen: Names of parameters with ``requires_grad=False`` handed to the
            user's optimizer instance (empty unless an instance was given).
        left_out: Names of trainable parameters the user's optimizer instance
            does not hold (empty unless an instance was given).
    """

    optimizer: Optimizer
    shadows: dict[int, Tensor]
    frozen: tuple[str, ...]
    left_out: tuple[str, ...]

    def attach(self, grads: Mapping[int, Tensor]) -> list[Tensor]:
        """Give shadows empty gradients like the real ones; returns those gradients.

        Args:
            grads: ``id(user parameter)`` -> its gradient after the backward.
                A parameter without one leaves its shadow without one (the
                optimizer skips it, as it would the parameter).
        """
        made = []
        for key, grad in grads.items():
            shadow = self.shadows.get(key)
            if shadow is not None:
                shadow.grad = _empty_like(grad, shadow.device)
                made.append(shadow.grad)
        return made

    def detach(self) -> None:
        """Drop the shadows' gradients."""
        for shadow in self.shadows.values():
            shadow.grad = None


def _empty_like(t: Tensor, device: torch.device) -> Tensor:
    """An empty plain tensor like ``t``; like this rank's shard of a ``DTensor``, whose
    optimizer state each rank holds only for its own shard."""
    if is_dtensor(t):
        t = t.to_local()  # type: ignore[attr-defined]  # metadata only: no collective
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=device)


def _shadow(p: Tensor, device: torch.device) -> Tensor:
    return _empty_like(p, device).requires_grad_(p.requires_grad)


def _prefer_foreach(opt: Optimizer) -> None:
    """Set ``foreach=True`` where a group leaves it to torch (what torch picks on CUDA)."""
    for group in opt.param_groups:
        if (
            "foreach" in group
            and group["foreach"] is None
            and not group.get("fused")
            and not group.get("differentiable")
        ):
            group["foreach"] = True


def build_optimizer(spec: OptimizerLike, params: list[Tensor]) -> Optimizer:
    """An optimizer of the kind ``spec`` names, over ``params`` (not for an instance).

    Raises:
        InvalidInputError: ``spec`` is none of the accepted kinds, or makes no optimizer.
    """
    if isinstance(spec, str):
        make = NAMES.get(spec.lower())
        if make is None:
            raise InvalidInputError(
                f"optimizer={spec!r} is not known; pass one of {sorted(NAMES)}, an "
                "Optimizer class (torch.optim.AdamW), a callable params -> Optimizer, "
                "or an optimizer instance"
            )
        return make(params)
    make_any: Any = spec  # a class or a callable: both called with the parameters
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        made: Optimizer = make_any(params)
        return made
    if callable(spec) and not isinstance(spec, Optimizer):
        opt = make_any(params)
        if not isinstance(opt, Optimizer):
            raise InvalidInputError(
                f"optimizer= was called with the parameters and returned "
                f"{type(opt).__name__}, not a torch.optim.Optimizer; pass a callable "
                "that returns one"
            )
        return opt
    raise InvalidInputError(
        f"optimizer= got {type(spec).__name__}; pass a name ({', '.join(sorted(NAMES))}), "
        "an Optimizer class, a callable params -> Optimizer, or an optimizer instance"
    )


def _copy_instance(
    opt: Optimizer, shadow_of: Callable[[Tensor], Tensor]
) -> Optimizer:
    """An optimizer of ``opt``'s class and defaults over shadows of its groups' tensors."""
    groups = [
        {**g, "params": [shadow_of(p) for p in g["params"]]} for g in opt.param_groups
    ]
    cls: Any = type(opt)
    accepted = inspect.signature(cls.__init__).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    kwargs = {k: v for k, v in opt.defaults.items() if takes_all or k in accepted}
    try:
        made: Optimizer = cls(groups, **kwargs)
        return made
    except (TypeError, ValueError) as err:
        raise InvalidInputError(
            f"could not make another {cls.__name__} like the one given ({err}); pass "
            f"its class or a callable params -> {cls.__name__} instead"
        ) from err


def shadow_optimizer(
    spec: OptimizerLike,
    named_params: Sequence[tuple[str, nn.Parameter]],
    *,
    real_device: str,
    device: torch.device | str = "meta",
) -> ShadowOptimizer:
    """Build the optimizer ``spec`` names over shadows of ``named_params``.

    A name or class gets the trainable parameters, a callable every parameter (as
    ``model.parameters()`` would give it), an instance the tensors of its own
    param groups (by identity; tensors that are not the model's get shadows too).

    Args:
        spec: What the user passed as the optimizer.
        named_params: The model's parameters, each once, with their names.
        real_device: The device type the step runs on (``"cuda"``, ``"cpu"``,
            ``"meta"``): on CUDA, ``foreach`` is set where torch would set it.
        device: Where the shadows live.

    Returns:
        The optimizer with its shadows and, for an instance, the frozen
        parameters it holds and the trainable ones it leaves out.
    """
    where = torch.device(device)
    shadows: dict[int, Tensor] = {}

    def shadow_of(p: Tensor) -> Tensor:
        if id(p) not in shadows:
            shadows[id(p)] = _shadow(p, where)
        return shadows[id(p)]

    frozen: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    if isinstance(spec, Optimizer):
        opt = _copy_instance(spec, shadow_of)
        held = {id(p) for g in spec.param_groups for p in g["params"]}
        frozen = tuple(n for n, p in named_params if id(p) in held and not p.requires_grad)
        left_out = tuple(n for n, p in named_params if id(p) not in held and p.requires_grad)
    else:
        given = [p for _, p in named_params if p.requires_grad or _is_callable(spec)]
        opt = build_optimizer(spec, [shadow_of(p) for p in given])
    if real_device == "cuda":
        _prefer_foreach(opt)
    return ShadowOptimizer(opt, shadows, frozen, left_out)


def _is_callable(spec: Any) -> bool:
    return not isinstance(spec, (str, type)) and callable(spec)


def state_tensors(opt: Optimizer) -> dict[int, list[Tensor]]:
    """``id(shadow parameter)`` -> the tensors the optimizer holds in its state for it."""
    return {
        id(p): [v for v in state.values() if isinstance(v, Tensor)]
        for p, state in opt.state.items()
    }
