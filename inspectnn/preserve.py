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
* every module's instance attributes: an attribute that ``forward`` rebinds
  (``self.n += 1``, ``self.cache = self.fc(x)``), adds or deletes is put back as
  it was. The contents of plain ``list``, ``dict`` and ``set`` attributes are put
  back one level deep (an RNN's ``_flat_weights``, a list ``forward`` appends
  to); the objects inside them, and other objects ``forward`` changes in place,
  are not copied. TorchScript submodules' own script attributes live in C++
  and are not covered; their parameter and buffer slots are;
* the global CPU (and, when initialised, CUDA) RNG state;
* with ``save_grads`` (a forward run with autograd on), every ``.grad``;
* an FSDP2 (``fully_shard``) module's parameters, sharded before the forward,
  are resharded after it (``distributed/fsdp.py``: FSDP leaves the root's
  gathered), before the slots are put back.

Everything is saved by identity or shallow copy (see ``_Attributes`` for the
cost), never a copy of a tensor other than a buffer that may be written or a
``.grad`` that ``backward()`` may add to.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, compress, islice, repeat
from operator import eq, is_not
from types import TracebackType
from typing import Any, Literal

import torch
from torch import Tensor, nn

from inspectnn.distributed.fsdp import reshard, sharded_before

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


def _restore(now: Any, saved: dict[str, Any] | None) -> None:
    """Put the slot dict ``now`` back to ``saved`` (None: it was empty) if it changed."""
    if type(now) is not dict:  # a TorchScript module's view of its C++ slots
        for k, v in (saved or {}).items():
            if now[k] is not v:
                now[k] = v
        return
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


def _copy_slots(slots: Any) -> dict[str, Any] | None:
    """A copy of a ``_parameters`` / ``_buffers`` dict, None when it is empty."""
    if not slots:
        return None
    return slots.copy() if type(slots) is dict else dict(slots.items())


_INTERNAL = tuple(nn.Module().__dict__)  # what nn.Module.__init__ sets, in this order
_PLAIN = frozenset({list, dict, set})


def _changed(now: dict[Any, Any], saved: dict[Any, Any]) -> bool:
    """Whether some entry of ``now`` was rebound, added or deleted since ``saved``."""
    return (
        len(now) != len(saved)
        or any(map(is_not, now.values(), saved.values()))
        or now.keys() != saved.keys()
    )


def _put_back(container: Any, saved: Any) -> None:
    """Restore a list, dict or set to its copy ``saved`` if its contents changed."""
    if type(container) is list:
        if len(container) != len(saved) or any(map(is_not, container, saved)):
            container[:] = saved
    elif type(container) is dict:
        if _changed(container, saved):
            container.clear()
            container.update(saved)
    elif container != saved:
        container.clear()
        container.update(saved)


def _version(t: Tensor) -> int:
    """The tensor's version counter (bumped by every in-place write); -1 if it has none."""
    try:
        return int(t._version)
    except RuntimeError:  # an inference tensor
        return -1


class _Attributes:
    """Every module's instance attributes, saved before the forward and put back after it.

    Saving and checking are a few C-level passes over all modules and their own
    attributes, with no Python code run per module (a 400-block MLP has 1,202
    modules): a shallow copy of each ``__dict__``; each module's ``training`` flag
    and its own attributes, those after the entries ``nn.Module.__init__`` makes
    first (hook tables, slot dicts), kept to compare by identity; a copy of each
    plain ``list``, ``dict`` or ``set`` among them. After the forward, a module whose
    flag or own attributes are other objects, or that gained or lost an attribute,
    gets its ``__dict__`` back; a container whose contents changed gets them back.
    nn.Module's own tables are not compared: its parameter and buffer slots are
    restored apart, and a forward does not rebind its hook tables.

    A tensor attribute that is neither a parameter nor a buffer is not copied, but
    its version counter is kept: ``written()`` names those the forward wrote in place.
    """

    def __init__(self, modules: list[nn.Module]) -> None:
        self.dicts: list[dict[str, Any]] = [m.__dict__ for m in modules]
        dicts = self.dicts
        self.copies = list(map(dict.copy, dicts))
        self.lens = list(map(len, dicts))
        # nn.Module.__init__'s entries come first unless something was set before it ran
        self.starts = [
            len(_INTERNAL) if first else 0
            for first in map(eq, map(next, map(iter, dicts), repeat(None)), repeat(_INTERNAL[0]))
        ]
        self.flags = list(map(dict.get, dicts, repeat("training")))
        self.own = list(self._own())
        types = list(map(type, self.own))
        plain = compress(self.own, map(_PLAIN.__contains__, types))
        self.contents = [(c, c.copy()) for c in plain]
        self.tensors = list(compress(self.own, map(issubclass, types, repeat(Tensor))))
        self.versions = list(map(_version, self.tensors))

    def written(self) -> list[Tensor]:
        """The tensor attributes (not parameters or buffers) written in place since saved."""
        return [t for t, v in zip(self.tensors, self.versions, strict=True) if _version(t) != v]

    def _own(self) -> Iterator[Any]:
        values = map(dict.values, self.dicts)
        return chain.from_iterable(map(islice, values, self.starts, repeat(None)))

    def restore(self) -> None:
        """Put back what the forward rebound, added or deleted, and container contents."""
        dicts = self.dicts
        if (
            list(map(len, dicts)) != self.lens
            or any(map(is_not, map(dict.get, dicts, repeat("training")), self.flags))
            or any(map(is_not, self._own(), self.own))
        ):
            for state, saved in zip(dicts, self.copies, strict=True):
                if _changed(state, saved):
                    state.clear()
                    state.update(saved)
        for container, contents in self.contents:
            _put_back(container, contents)


class Preserved:
    """Context manager: set the mode, then restore flags, tensors, attributes and RNG on exit.

    Args:
        model: The user's model.
        mode: ``"eval"`` or ``"train"`` sets every submodule's flag; ``"same"``
            leaves the flags as they are.
        save_buffers: Copy buffer values to restore them (skip when the forward
            runs on substituted tensors and cannot touch the model's own).
        modules: ``list(model.modules())`` if the caller has it already.
        save_grads: Save every parameter's ``.grad`` (object and values) to put it
            back: for a forward run with gradients enabled, which may call
            ``backward()``.
    """

    def __init__(
        self,
        model: nn.Module,
        mode: Mode,
        *,
        save_buffers: bool = True,
        modules: list[nn.Module] | None = None,
        save_grads: bool = False,
    ) -> None:
        self.model = model
        self.modules = modules if modules is not None else list(model.modules())
        self.mode = mode
        self.save_buffers = save_buffers
        self.save_grads = save_grads
        self._flags: list[tuple[nn.Module, bool]] = []
        self._slots: list[tuple[nn.Module, dict[str, Any] | None, dict[str, Any] | None]] = []
        self._attrs: _Attributes | None = None
        # tensor attributes (not parameters or buffers) the forward wrote in place:
        # not undone, reported
        self.written: list[Tensor] = []
        self._values: list[tuple[Tensor, Tensor]] = []
        self._grads: list[tuple[Tensor, Tensor | None, Tensor | None]] = []
        self._rng: Tensor | None = None
        self._cuda_rng: list[Tensor] | None = None
        self._sharded: list[nn.Module] = []  # FSDP2 modules to reshard after the forward

    def __enter__(self) -> Preserved:
        self._rng = torch.get_rng_state()
        if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            self._cuda_rng = torch.cuda.get_rng_state_all()
        self._sharded = sharded_before(self.modules)
        slots = self._slots
        writable: list[Tensor] = []
        self._attrs = _Attributes(self.modules)
        for mod in self.modules:
            params, buffers = mod._parameters, mod._buffers
            slots.append((mod, _copy_slots(params), _copy_slots(buffers)))
            if not self.save_buffers or not buffers:
                continue
            # torch's norm layers read, never write, their running stats in eval.
            if type(mod) in _EVAL_READ_ONLY and not self._training_during(mod):
                continue
            writable += [b for b in buffers.values() if b is not None and b.device.type != "meta"]
        with torch.no_grad():  # clone() of a tensor that requires grad records no graph
            if writable:
                self._values = [(buf, buf.clone()) for buf in writable]
            if self.save_grads:
                self._save_grads()
        if self.mode != "same":
            want = self.mode == "train"
            for mod in self.modules:
                if mod.training != want:
                    self._flags.append((mod, mod.training))
                    _set_training(mod, want)
        return self

    def _save_grads(self) -> None:
        seen: set[int] = set()
        for mod in self.modules:
            for p in mod._parameters.values():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    g = p.grad
                    self._grads.append((p, g, None if g is None else g.clone()))

    def _training_during(self, mod: nn.Module) -> bool:
        return mod.training if self.mode == "same" else self.mode == "train"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reshard(self._sharded)  # before the slots: FSDP puts its sharded parameters back
        for mod, flag in self._flags:
            _set_training(mod, flag)
        if self._attrs is not None:
            self._attrs.restore()
            self.written = self._attrs.written()
        for mod, params, buffers in self._slots:
            _restore(mod._parameters, params)
            _restore(mod._buffers, buffers)
        with torch.no_grad():
            for buf, saved_value in self._values:
                buf.copy_(saved_value)
            for p, grad, value in self._grads:
                p.grad = grad
                if grad is not None and value is not None:
                    grad.copy_(value)
        if self._rng is not None:
            torch.set_rng_state(self._rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state_all(self._cuda_rng)

