"""FSDP2 (``fully_shard``) models: found, and run on fake shards in a simulation.

FSDP2 gathers its parameters itself, in hooks around each sharded module's forward,
so a model built on meta cannot run (its first forward fails half-way and leaves
the model half-initialised) and substitute tensors are not what it gathers.
``simulate()`` therefore materialises the model it built on meta as *fake* CPU
tensors (``fake_materialize``: ``to_empty`` under a ``FakeTensorMode``, which
FSDP2 supports as it supports meta initialisation), and ``inspect`` runs that model's
forward inside the same mode (``fake_mode_of``): FSDP's all-gathers run on fakes
under the fake process group, every shape is real, nothing is allocated.

After a forward, FSDP2 leaves the root module's parameters unsharded (its
``reshard_after_forward`` is off, for the backward): the root's slots hold the
gathered tensors and its parameter group says so. ``preserve.py`` would put the
sharded ``DTensor`` objects back in the slots while FSDP still believes them
unsharded, and the next forward would run with shards (``mixed torch.Tensor and
DTensor``). So ``Preserved`` notes the groups that were sharded before the forward
(``sharded_before``) and reshards them after it (``reshard``), before it restores the
slots: the model is left with the same sharded parameters and FSDP state it had
(``tests/distributed/test_fsdp.py`` checks it against a twin never inspected).

May import: ``training/fake.py`` (and torch). Imports nothing of ``torch.distributed``
that was not already loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn

from inspectnn.training.fake import FakeCpu

__all__ = ["fake_materialize", "fake_mode_of", "is_fsdp", "reshard", "sharded_before"]


def is_fsdp(modules: Iterable[nn.Module]) -> bool:
    """Whether some module is sharded with FSDP2 (``fully_shard``)."""
    fsdp = sys.modules.get("torch.distributed.fsdp")  # not imported: no FSDP2 module exists
    kind = getattr(fsdp, "FSDPModule", None)
    return kind is not None and any(isinstance(m, kind) for m in modules)


def _local(t: Tensor) -> Tensor:
    local = getattr(t, "_local_tensor", None)  # a DTensor's shard
    return local if isinstance(local, Tensor) else t


def fake_mode_of(modules: Iterable[nn.Module]) -> Any | None:
    """The ``FakeTensorMode`` of an FSDP2 model whose shards are fake tensors, else None."""
    modules = list(modules)
    if not is_fsdp(modules):
        return None
    for mod in modules:
        for p in mod._parameters.values():
            if p is not None:
                return getattr(_local(p), "fake_mode", None)
    return None


def fake_materialize(model: nn.Module) -> FakeCpu | None:
    """Materialise an FSDP2 model built on meta as fake CPU tensors, in place.

    Returns:
        The ``FakeCpu`` whose mode holds the model's fake shards (``inspect`` runs the
        forward inside it), or None for a model without FSDP2 modules, left as it was.
    """
    if not is_fsdp(model.modules()):
        return None
    fake = FakeCpu()
    with fake.mode:
        model.to_empty(device="cpu")
    return fake


def sharded_before(modules: Iterable[nn.Module]) -> list[nn.Module]:
    """The FSDP2 modules whose parameter group is sharded now (before a forward)."""
    modules = list(modules)
    if not is_fsdp(modules):
        return []
    found: list[nn.Module] = []
    for mod in modules:
        get = getattr(mod, "_get_fsdp_state", None)
        group = getattr(get(), "_fsdp_param_group", None) if callable(get) else None
        if group is not None and group.is_sharded:
            found.append(mod)
    return found


def reshard(modules: list[nn.Module]) -> None:
    """Reshard each of ``modules`` (``sharded_before``'s) that a forward left unsharded."""
    for mod in modules:
        group = mod._get_fsdp_state()._fsdp_param_group  # type: ignore[operator]
        if not group.is_sharded:
            mod.reshard()  # type: ignore[operator]
