"""Fake CPU tensors standing in for meta ones, so that CPU autocast applies on meta.

torch's autocast does nothing on meta tensors; on fake CPU tensors (a
``FakeTensorMode``) it casts as on the CPU, while nothing is allocated. ``FakeCpu`` makes
them, for ``inspect(..., device="meta", amp=...)`` (``forward.py``) and
``training/standalone.py``'s ``measure_step``.

May import: torch, ``values.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from inspectnn.values import map_tensors

__all__ = ["FakeCpu"]


class FakeCpu:
    """Fake CPU tensors standing in for meta (or any) tensors, so CPU autocast applies.

    Calling it gives the fake of a tensor (made once per tensor, inside ``mode``; a
    ``Parameter`` stays one, with its ``requires_grad``); ``values()`` maps a nested
    value. ``mode`` is the ``FakeTensorMode`` to run the forward, loss and backward
    under: the fakes hold no data, only shapes, dtypes and strides.
    """

    def __init__(self, mode: Any = None) -> None:
        from torch._subclasses.fake_tensor import FakeTensorMode

        # a plain tensor attribute (a 0-dim constant, not a buffer) joins as a fake
        # too: a plain meta run takes it as well. ``mode``: an existing one (the mode a
        # simulated FSDP2 model's fake shards live in, ``distributed/fsdp.py``)
        self.mode = mode if mode is not None else FakeTensorMode(allow_non_fake_inputs=True)
        self.made: dict[int, Tensor] = {}

    def __call__(self, t: Tensor) -> Tensor:
        fake = self.made.get(id(t))
        if fake is None:
            with self.mode:
                fake = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="cpu")
            if isinstance(t, nn.Parameter):
                fake = nn.Parameter(fake, requires_grad=t.requires_grad)
            self.made[id(t)] = fake
        return fake

    def values(self, values: Any) -> Any:
        """``values`` with every tensor replaced by its fake."""
        return map_tensors(values, self)
