"""Leave the user's model exactly as it was found.

``Preserved`` saves, before the forward, what a forward can change and puts it
back afterwards, whether the forward returned or raised:

* the train/eval flag of every submodule (only flags that differ are flipped);
* which tensor objects sit in every ``_parameters`` / ``_buffers`` slot;
* buffer values (BatchNorm running statistics), bit for bit: each is copied
  before the forward and written back after it (kernels update running stats
  without bumping version counters, so every copy is written back). The running
  stats of torch's own norm layers in eval mode, which torch only reads, are
  not copied;
* the global CPU (and, when initialised, CUDA) RNG state.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["Mode", "Preserved"]

Mode = Literal["eval", "train", "same"]


_EVAL_READ_ONLY = frozenset(
    {nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
     nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d}
)  # fmt: skip


def _set_training(mod: nn.Module, flag: bool) -> None:
    # nn.Module.__setattr__ checks parameters, buffers and submodules first: ~2 µs.
    if "training" in mod.__dict__:
        mod.__dict__["training"] = flag
    else:  # pragma: no cover - a module with a training property
        mod.training = flag


def _restore(now: dict[str, Any], saved: dict[str, Any] | None) -> None:
    """Put the slot dict ``now`` back to ``saved`` (None: it was empty) if it changed."""
    if saved is None:
        if now:
            now.clear()
        return
    if len(now) == len(saved):
        for k, v in now.items():
            if saved.get(k, now) is not v:
                break
        else:
            return
    now.clear()
    now.update(saved)


class Preserved:
    """Context manager: set the mode, then restore flags, tensors and RNG on exit.

    Args:
        model: The user's model.
        mode: ``"eval"`` or ``"train"`` sets every submodule's flag; ``"same"``
            leaves the flags as they are.
        save_buffers: Copy buffer values to restore them (skip when the forward
            runs on substituted tensors and cannot touch the model's own).
        modules: ``list(model.modules())`` if the caller has it already.
    """

    def __init__(
        self,
        model: nn.Module,
        mode: Mode,
        *,
        save_buffers: bool = True,
        modules: list[nn.Module] | None = None,
    ) -> None:
        self.model = model
        self.modules = modules if modules is not None else list(model.modules())
        self.mode = mode
        self.save_buffers = save_buffers
        self._flags: list[tuple[nn.Module, bool]] = []
        self._slots: list[tuple[nn.Module, dict[str, Any] | None, dict[str, Any] | None]] = []
        self._values: list[tuple[Tensor, Tensor]] = []
        self._rng: Tensor | None = None
        self._cuda_rng: list[Tensor] | None = None

    def __enter__(self) -> Preserved:
        self._rng = torch.get_rng_state()
        if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            self._cuda_rng = torch.cuda.get_rng_state_all()
        slots = self._slots
        writable: list[Tensor] = []
        for mod in self.modules:
            params, buffers = mod._parameters, mod._buffers
            slots.append(
                (mod, params.copy() if params else None, buffers.copy() if buffers else None)
            )
            if not self.save_buffers or not buffers:
                continue
            # torch's norm layers read, never write, their running stats in eval.
            if type(mod) in _EVAL_READ_ONLY and not self._training_during(mod):
                continue
            writable += [b for b in buffers.values() if b is not None and b.device.type != "meta"]
        if writable:
            with torch.no_grad():  # clone() of a buffer that requires grad records no graph
                self._values = [(buf, buf.clone()) for buf in writable]
        if self.mode != "same":
            want = self.mode == "train"
            for mod in self.modules:
                if mod.training != want:
                    self._flags.append((mod, mod.training))
                    _set_training(mod, want)
        return self

    def _training_during(self, mod: nn.Module) -> bool:
        return mod.training if self.mode == "same" else self.mode == "train"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for mod, flag in self._flags:
            _set_training(mod, flag)
        for mod, params, buffers in self._slots:
            _restore(mod._parameters, params)
            _restore(mod._buffers, buffers)
        if self._values:
            with torch.no_grad():
                for buf, saved in self._values:
                    buf.copy_(saved)
        if self._rng is not None:
            torch.set_rng_state(self._rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state_all(self._cuda_rng)
