"""``distributed/rank.py``, the columns a sharded report adds, and per-rank FLOPs'
``local_view``: pure functions on hand-made values and torch's fake process group."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch import nn

from inspectnn.distributed.rank import RankInfo, rank_info
from inspectnn.flops import local_view
from inspectnn.records import TensorMeta
from inspectnn.renderers.columns import format_shapes, placement_short


@pytest.fixture
def fake_group() -> Iterator[None]:
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=5, world_size=8)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_describe_says_rank_mesh_coordinate_and_view() -> None:
    info = RankInfo(5, 8, ("dp", "tp"), (2, 4), (1, 1))
    assert info.describe() == "rank 5 of 8 · mesh dp=2 × tp=4 at (1, 1) · local shapes"
    assert info.describe("global").endswith("· global shapes")
    assert RankInfo(1, 2).describe() == "rank 1 of 2 · local shapes"
    info = RankInfo(0, 2, (), (2,), (0,))
    assert info.describe() == "rank 0 of 2 · mesh dim0=2 at (0,) · local shapes"


def test_to_dict_is_the_sharding_section() -> None:
    assert RankInfo(5, 8, ("dp", "tp"), (2, 4), (1, 1), "global").to_dict() == {
        "schema": "inspectnn.sharding/1", "rank": 5, "world_size": 8,
        "mesh_dim_names": ["dp", "tp"], "mesh_shape": [2, 4], "coordinate": [1, 1],
        "view": "global",
    }  # fmt: skip


def test_rank_info_is_none_outside_a_process_group() -> None:
    assert not dist.is_initialized()
    assert rank_info(nn.Linear(2, 2).parameters()) is None


def test_rank_info_reads_the_group_and_the_whole_mesh_of_a_submesh(fake_group: None) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    assert rank_info(nn.Linear(2, 2).parameters()) == RankInfo(5, 8)
    mesh = init_device_mesh("cpu", (2, 4), mesh_dim_names=("dp", "tp"))
    p = nn.Parameter(distribute_tensor(torch.zeros(8, 2), mesh["tp"], [Shard(0)]))
    assert rank_info([p], "global") == RankInfo(5, 8, ("dp", "tp"), (2, 4), (1, 1), "global")


def test_placement_short_is_torch_s_short_form() -> None:
    assert placement_short(("Shard(0)", "Replicate()")) == "S(0),R"
    assert placement_short(("Partial(sum)",)) == "P"
    assert placement_short(("Partial(max)",)) == "P(max)"
    assert placement_short(("_StridedShard(dim=0, sf=2)",)) == "_StridedShard(dim=0, sf=2)"


def test_format_shapes_shows_the_view_asked() -> None:
    d = TensorMeta((4, 32), "float32", "cpu", local_shape=(4, 16), placements=("Shard(1)",))
    plain = TensorMeta((4, 16), "float32", "cpu")
    assert format_shapes([d, plain], view="local") == "[4, 16], [4, 16]"
    assert format_shapes([d, plain], view="global") == "[4, 32], [4, 16]"
    assert (d.numel, d.held_numel, plain.held_numel) == (128, 64, 64)


def test_local_view_swaps_each_dtensor_for_its_shard(fake_group: None) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (8,))
    d = distribute_tensor(torch.zeros(16, 3), mesh, [Shard(0)])
    plain = torch.ones(2)
    args, kwargs = local_view(((d, [plain]), {"w": d}))
    assert args[0].shape == (2, 3) and type(args[0]) is torch.Tensor
    assert args[1][0] is plain and kwargs["w"] is args[0]
