"""``distributed/placement.py``: a DTensor's sharding read on one rank, no collective.

Each test joins torch's ``"fake"`` process group (``FakeStore``: no other process, no
collective really runs; torchtitan and torch's own tests simulate ranks this way) as one
rank of the job and leaves it at the end, so the next test starts with no group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor
from torch.distributed.tensor.placement_types import _StridedShard
from torch.testing._internal.distributed.fake_pg import FakeStore

from inspectnn.distributed.placement import (
    ShardFacts,
    global_numel,
    is_dtensor,
    local_bytes,
    placement_text,
    shard_facts,
)


@contextmanager
def _rank(rank: int, world: int) -> Iterator[None]:
    """This process as rank ``rank`` of ``world`` in the fake process group."""
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _mesh_2d() -> DeviceMesh:
    return init_device_mesh("cpu", (2, 4), mesh_dim_names=("dp", "tp"))


def test_a_1d_mesh_of_8_shards_rows_and_keeps_the_global_shape() -> None:
    with _rank(5, 8):
        mesh = init_device_mesh("cpu", (8,))
        d = distribute_tensor(torch.randn(16, 6), mesh, [Shard(0)])
        assert shard_facts(d) == ShardFacts(
            global_shape=(16, 6),
            local_shape=(2, 6),
            placements=("Shard(0)",),
            mesh_shape=(8,),
            mesh_dim_names=(),
            coordinate=(5,),
        )
        assert is_dtensor(d)
        assert global_numel(d) == 96
        assert local_bytes(d) == 2 * 6 * 4 == d.to_local().untyped_storage().nbytes()


def test_a_replicated_tensor_holds_it_all_on_every_rank() -> None:
    with _rank(0, 8):
        d = distribute_tensor(torch.randn(3, 5), init_device_mesh("cpu", (8,)), [Replicate()])
        facts = shard_facts(d)
        assert facts is not None
        assert (facts.global_shape, facts.local_shape, facts.placements) == (
            (3, 5), (3, 5), ("Replicate()",)
        )  # fmt: skip
        assert local_bytes(d) == 60


@pytest.mark.parametrize(("rank", "rows"), [(0, 3), (1, 3), (2, 3), (3, 1), (4, 3), (7, 1)])
def test_10_rows_over_tp_4_are_uneven_shards_3_3_3_1(rank: int, rows: int) -> None:
    with _rank(rank, 8):
        d = distribute_tensor(torch.randn(10, 6), _mesh_2d(), [Replicate(), Shard(0)])
        facts = shard_facts(d)
        assert facts == ShardFacts(
            global_shape=(10, 6),
            local_shape=(rows, 6),
            placements=("Replicate()", "Shard(0)"),
            mesh_shape=(2, 4),
            mesh_dim_names=("dp", "tp"),
            coordinate=(rank // 4, rank % 4),
        )
        assert facts.local_shape == tuple(d.to_local().shape)
        assert global_numel(d) == 60


def test_2_rows_over_tp_4_leave_rank_3_an_empty_shard() -> None:
    with _rank(3, 8):
        d = distribute_tensor(torch.randn(2, 3), _mesh_2d(), [Replicate(), Shard(0)])
        facts = shard_facts(d)
        assert facts is not None
        assert (facts.global_shape, facts.local_shape, facts.coordinate) == ((2, 3), (0, 3), (0, 3))
        assert d.to_local().numel() == 0
        # The scatter pads to even shards; the empty shard keeps its padded row's storage.
        assert local_bytes(d) == d.to_local().untyped_storage().nbytes() == 1 * 3 * 4


def test_a_2d_mesh_sharding_both_dims_splits_each_over_its_mesh_dim() -> None:
    with _rank(6, 8):
        d = distribute_tensor(torch.randn(8, 12), _mesh_2d(), [Shard(0), Shard(1)])
        facts = shard_facts(d)
        assert facts is not None
        assert facts.local_shape == (4, 3) == tuple(d.to_local().shape)
        assert facts.placements == ("Shard(0)", "Shard(1)")
        assert facts.coordinate == (1, 2)
        assert local_bytes(d) == 4 * 3 * 4


def test_a_dtensor_on_meta_is_read_the_same_way() -> None:
    with _rank(3, 8):
        empty = torch.empty(10, 6, device="meta")
        d = distribute_tensor(empty, _mesh_2d(), [Replicate(), Shard(0)])
        facts = shard_facts(d)
        assert facts is not None
        assert (facts.global_shape, facts.local_shape) == ((10, 6), (1, 6))
        assert d.to_local().device.type == "meta"


def test_partial_and_strided_placements_are_written_as_torch_writes_them() -> None:
    with _rank(1, 2):
        mesh = init_device_mesh("cpu", (2,))
        local = torch.ones(4, 2)
        d = DTensor.from_local(local, mesh, [Partial()], run_check=False)
        facts = shard_facts(d)
        assert facts is not None
        assert (facts.global_shape, facts.local_shape, facts.placements) == (
            (4, 2), (4, 2), ("Partial(sum)",)
        )  # fmt: skip
        assert local_bytes(d) == 32
    assert placement_text(_StridedShard(0, split_factor=2)) == "_StridedShard(dim=0, sf=2)"
    assert placement_text(Shard(-1)) == "Shard(-1)"


def test_a_plain_tensor_and_a_parameter_have_no_sharding() -> None:
    t = torch.zeros(10, 6)
    assert shard_facts(t) is None
    assert not is_dtensor(t)
    assert shard_facts(torch.nn.Parameter(t)) is None
    assert (global_numel(t), local_bytes(t)) == (60, 240)
    assert local_bytes(t[:2]) == 240  # a view holds its whole base


def test_a_dtensor_parameter_is_a_dtensor() -> None:
    with _rank(1, 2):
        d = distribute_tensor(torch.randn(6, 4), init_device_mesh("cpu", (2,)), [Shard(1)])
        p = torch.nn.Parameter(d)
        facts = shard_facts(p)
        assert facts is not None
        assert (facts.global_shape, facts.local_shape, facts.placements) == (
            (6, 4), (6, 2), ("Shard(1)",)
        )  # fmt: skip
