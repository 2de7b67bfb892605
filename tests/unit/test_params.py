"""``params.py``: each tensor counted once, per subtree and in total."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inspectnn.errors import InvalidInputError
from inspectnn.params import count_parameters


def _tied_lm() -> nn.Module:
    """An embedding and a head sharing one weight, as GPT-2 does."""
    model = nn.Module()
    model.emb = nn.Embedding(10, 4)
    model.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    model.head = nn.Linear(4, 10, bias=False)
    model.head.weight = model.emb.weight
    return model


def _shared_module() -> nn.Module:
    """One Linear reached through two parents and twice in one Sequential."""
    lin = nn.Linear(3, 3)
    model = nn.Module()
    model.a = nn.Sequential(lin, nn.Tanh(), lin)
    model.b = nn.Sequential(lin, nn.Linear(3, 2))
    return model


def _frozen() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    return model


@pytest.mark.parametrize("build", [_tied_lm, _shared_module, _frozen])
def test_every_subtree_counts_what_parameters_yields(build: object) -> None:
    model = build()  # type: ignore[operator]
    counts = count_parameters(model)
    for name, mod in model.named_modules():
        params = list(mod.parameters())  # torch yields each tensor once
        want = (sum(p.numel() for p in params),
                sum(p.numel() for p in params if p.requires_grad))  # fmt: skip
        assert counts.per_module[id(mod)][:2] == want, name
    assert (counts.params, counts.trainable) == counts.per_module[id(model)][:2]


def test_a_tied_weight_counts_once_and_names_its_other_place() -> None:
    model = _tied_lm()
    counts = count_parameters(model)
    assert counts.params == 40 + 20 + 0  # emb (= head) 40, body 20
    assert counts.param_bytes == 4 * 60
    assert counts.per_module[id(model.head)] == (40, 40, ("weight=emb.weight",))
    assert counts.per_module[id(model.emb)] == (40, 40, ("weight=head.weight",))
    assert counts.per_module[id(model.body)] == (20, 20, ())


def test_a_module_in_two_places_is_counted_once_in_each_subtree() -> None:
    model = _shared_module()
    counts = count_parameters(model)
    assert counts.per_module[id(model.a)][:2] == (12, 12)
    assert counts.per_module[id(model.b)][:2] == (12 + 8, 12 + 8)
    assert counts.params == 12 + 8
    lin = model.a[0]
    assert counts.per_module[id(lin)][2] == ("weight=a.2.weight", "weight=b.0.weight",
                                              "bias=a.2.bias", "bias=b.0.bias")  # fmt: skip
    assert count_parameters(nn.Sequential(lin, lin)).params == 12


def test_frozen_buffers_and_the_walk_given() -> None:
    model = _frozen()
    counts = count_parameters(model, walk=list(model.named_modules(remove_duplicate=False)))
    assert (counts.params, counts.trainable) == (20 + 8 + 10, 8 + 10)
    # running_mean, running_var (4 float32 each) and num_batches_tracked (1 int64)
    assert (counts.buffers, counts.buffer_bytes) == (9, 4 * 8 + 8)
    assert counts.uniform  # the int64 counter is not a float dtype


def test_uniform_is_false_for_two_float_dtypes() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double())
    assert not count_parameters(model).uniform
    assert count_parameters(nn.Sequential(nn.Linear(2, 2), nn.ReLU())).uniform


def test_stateless_model_counts_nothing() -> None:
    counts = count_parameters(nn.ReLU())
    assert counts[1:] == (0, 0, 0, 0, 0, True, 0, False)  # ..., local_params, sharded


def test_sparse_parameter_bytes_are_what_it_stores() -> None:
    holder = nn.Module()
    dense = torch.zeros(100, 100)
    dense[0, 0] = 1.0
    holder.w = nn.Parameter(dense.to_sparse(), requires_grad=False)
    counts = count_parameters(holder)
    assert counts.params == 10_000  # elements of the dense shape
    assert counts.param_bytes == 2 * 8 + 4  # one int64 index pair and one float32 value


def test_a_lazy_module_asks_for_a_first_forward() -> None:
    with pytest.raises(InvalidInputError, match=r"run model\(x\) once"):
        count_parameters(nn.Sequential(nn.LazyLinear(3)))
