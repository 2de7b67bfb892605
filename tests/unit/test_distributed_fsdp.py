"""``distributed/fsdp.py`` on models without FSDP2: nothing found, nothing changed."""

from __future__ import annotations

import torch
from torch import nn

from inspectnn.distributed.fsdp import fake_materialize, fake_mode_of, is_fsdp, sharded_before


def test_a_plain_model_is_not_fsdp_and_stays_on_meta() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    modules = list(model.modules())
    assert not is_fsdp(modules)
    assert fake_mode_of(modules) is None
    assert sharded_before(modules) == []
    assert fake_materialize(model) is None
    assert model[0].weight.device.type == "meta"
