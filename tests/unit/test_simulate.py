"""``distributed/simulate.py``: one rank of a sharded job inspected in one process (issue 16).

``simulate`` joins torch's ``"fake"`` process group itself and leaves it at the end, so
each test checks that no group is left initialised, also when the builder raises.
The MLP is ``Linear(16, 32)`` (``ColwiseParallel``), ``ReLU``, ``Linear(32, 16)``
(``RowwiseParallel``) on the ``"tp"`` dimension of a ``{"dp": 2, "tp": 4}`` mesh: rank 5
sits at coordinate ``(1, 1)`` and holds a quarter of the first layer's rows, a quarter
of the second's columns and the whole of its (replicated) bias.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

import inspectnn as inn
from inspectnn.distributed.simulate import simulate

MESH = {"dp": 2, "tp": 4}


@pytest.fixture(autouse=True)
def _no_group_left() -> Iterator[None]:
    """Every test starts and ends with no process group."""
    assert not dist.is_initialized()
    yield
    assert not dist.is_initialized()


def _mlp(mesh: DeviceMesh) -> nn.Module:
    """The tensor-parallel MLP, its plan applied on ``mesh["tp"]``."""
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))
    return parallelize_module(model, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})


def test_rank_5_of_dp2_tp4_counts_globally_and_holds_its_shard() -> None:
    built: list[nn.Module] = []

    def build(mesh: DeviceMesh) -> nn.Module:
        assert mesh.mesh_dim_names == ("dp", "tp") and tuple(mesh.shape) == (2, 4)
        assert tuple(mesh.get_coordinate() or ()) == (1, 1)
        built.append(_mlp(mesh))
        return built[-1]

    report = simulate(build, torch.randn(4, 16), mesh=MESH, rank=5)
    totals = report.totals
    assert report.error is None
    assert next(built[0].parameters()).device.type == "meta"
    assert totals.params == 16 * 32 + 32 + 32 * 16 + 16 == 1072
    assert totals.sharded
    # Colwise: weight rows 32/4 = 8 of 16, bias 8; Rowwise: weight columns 32/4 = 8 of 16 rows,
    # bias replicated (16).
    assert totals.local_params == 8 * 16 + 8 + 16 * 8 + 16 == 280
    assert totals.param_bytes == 4 * 280
    assert report.layers[2].outputs[0].shape == (4, 8)  # the ReLU sees this rank's columns
    assert "Params: 1,072 (global) · this rank holds 280 (1.1 KB)" in report.table()


def test_inspect_keywords_pass_through() -> None:
    report = simulate(_mlp, mesh=MESH, rank=0, input_size=(4, 16), mode="train")
    assert report.error is None
    assert report.totals.local_params == 280
    assert report.layers[0].inputs[0].shape == (4, 16)
    assert (report.mode, report.device) == ("train", "meta")


def test_the_group_is_destroyed_when_the_builder_raises() -> None:
    def build(mesh: DeviceMesh) -> nn.Module:
        assert dist.is_initialized() and dist.get_rank() == 3 and dist.get_world_size() == 8
        raise RuntimeError("plan failed")

    with pytest.raises(RuntimeError, match="plan failed"):
        simulate(build, torch.randn(4, 16), mesh=MESH, rank=3)


@pytest.mark.parametrize(
    ("mesh", "rank", "words"),
    [
        ({"dp": 2, "tp": 4}, 8, "rank must be an int from 0 to 7"),
        ({"dp": 2, "tp": 4}, -1, "rank must be an int from 0 to 7"),
        ({"dp": 2, "tp": 4}, True, "rank must be an int"),
        ({"dp": 0, "tp": 4}, 0, "mesh sizes must be positive ints; got dp=0"),
        ({"dp": 2.0, "tp": 4}, 0, "mesh sizes must be positive ints; got dp=2.0"),
        ({}, 0, "mesh must be a non-empty mapping"),
    ],
)
def test_bad_mesh_or_rank_is_refused(mesh: dict[str, object], rank: object, words: str) -> None:
    with pytest.raises(inn.InvalidInputError, match=words):
        simulate(_mlp, torch.randn(4, 16), mesh=mesh, rank=rank)  # type: ignore[arg-type]


def test_refused_inside_a_process_group() -> None:
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    try:
        with pytest.raises(inn.InvalidInputError, match="outside a distributed job"):
            simulate(_mlp, torch.randn(4, 16), mesh=MESH, rank=0)
        assert dist.is_initialized()  # the caller's group is left alone
    finally:
        dist.destroy_process_group()


def test_device_is_refused() -> None:
    with pytest.raises(inn.InvalidInputError, match="drop device="):
        simulate(_mlp, torch.randn(4, 16), mesh=MESH, rank=0, device="cpu")


class _Attention(nn.Module):
    """LLaMA-style attention; the head count is read from the (local) projection's width."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (
            p(x).view(b, t, -1, self.head_dim).transpose(1, 2) for p in (self.q, self.k, self.v)
        )
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, -1))


class _Block(nn.Module):
    """Pre-norm attention and SwiGLU MLP with residuals."""

    def __init__(self, dim: int, hidden: int, head_dim: int) -> None:
        super().__init__()
        self.attn_norm, self.mlp_norm = nn.RMSNorm(dim), nn.RMSNorm(dim)
        self.attn = _Attention(dim, head_dim)
        self.gate, self.up = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        h = self.mlp_norm(x)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


def _llama(mesh: DeviceMesh) -> nn.Module:
    """Three blocks of dim 64 (8 heads of 8), MLP 128, TP on every projection over ``tp``."""
    model = nn.Sequential(*(_Block(64, 128, 8) for _ in range(3)))
    plan = {"attn.q": ColwiseParallel(), "attn.k": ColwiseParallel(), "attn.v": ColwiseParallel(),
            "attn.o": RowwiseParallel(), "gate": ColwiseParallel(), "up": ColwiseParallel(),
            "down": RowwiseParallel()}  # fmt: skip
    for block in model:
        parallelize_module(block, mesh["tp"], plan)
    return model


def test_a_llama_style_model_at_tp_8_holds_an_eighth_of_each_projection() -> None:
    report = simulate(_llama, torch.randn(2, 5, 64), mesh={"dp": 4, "tp": 8}, rank=13)
    totals = report.totals
    assert report.error is None
    assert totals.params == 3 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64)
    # rank 13 is tp coordinate 5: 8 of each q/k/v/o's 64 rows or columns, 16 of the MLP's 128;
    # the norms (plain tensors) are whole on every rank.
    assert totals.local_params == 3 * (4 * 8 * 64 + 3 * 16 * 64 + 2 * 64)
    assert totals.param_bytes == 4 * totals.local_params
    q = next(c for c in report.layers if c.name == "0.attn.q")
    assert q.weights[0].local_shape == (8, 64)
    assert report.layers[0].outputs[0].shape == (2, 5, 64)


def test_the_group_is_destroyed_when_the_traced_forward_fails() -> None:
    """36 hidden units over tp=8 do not divide: the Rowwise layer fails as a real job would."""

    def build(mesh: DeviceMesh) -> nn.Module:
        model = nn.Sequential(nn.Linear(8, 36), nn.ReLU(), nn.Linear(36, 8))
        return parallelize_module(
            model, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()}
        )

    with pytest.raises(inn.ShapeMismatchError):
        simulate(build, torch.randn(4, 8), mesh={"tp": 8}, rank=5)
    report = simulate(build, torch.randn(4, 8), mesh={"tp": 8}, rank=5, on_error="report")
    assert report.error is not None and report.error.layer == "2"


def test_a_rank_s_training_step_holds_its_shards_gradients_and_optimizer_state() -> None:
    """backward=True under simulate: parameters, gradients and AdamW's two moments are this
    rank's shards (280 elements), not the global 1,072: state is per shard on every rank."""
    report = simulate(_mlp, torch.randn(4, 16), mesh=MESH, rank=5, optimizer="adamw")
    memory = report.memory
    assert memory is not None and memory.device == "meta"
    local = 4 * 280
    assert memory.category("parameters") == memory.category("gradients") == local
    # two moments per shard, and AdamW's 4-byte step count for each of the 4 parameters
    assert memory.category("optimizer_state") == 2 * local + 4 * 4


def test_a_rank_computes_and_holds_its_share_of_the_activations() -> None:
    """Every projection is sharded over tp=8 and the attention runs on this rank's heads:
    the rank's FLOPs are exactly an eighth of the unsharded model's. Each DTensor value
    is recorded with its global shape, its local shard and placements; the default
    (local) table shows the shard with its placement, ``view="global"`` the whole."""
    x = torch.randn(2, 5, 64)
    whole = inn.inspect(nn.Sequential(*(_Block(64, 128, 8) for _ in range(3))), x)
    report = simulate(_llama, x, mesh={"dp": 4, "tp": 8}, rank=13)
    assert report.error is None
    assert report.totals.flops * 8 == whole.totals.flops
    q = next(c for c in report.layers if c.name == "0.attn.q")
    out = q.outputs[0]
    assert (out.shape, out.local_shape, out.placements) == ((2, 5, 64), (2, 5, 8), ("Shard(2)",))
    down = next(c for c in report.layers if c.name == "0.down")
    assert down.inputs[0].local_shape == (2, 5, 16) and down.inputs[0].shape == (2, 5, 128)
    assert down.outputs[0].placements == ("Partial(sum)",)
    rank = report.rank
    assert rank is not None
    assert (rank.rank, rank.world_size, rank.mesh_dim_names) == (13, 32, ("dp", "tp"))
    assert (rank.mesh_shape, rank.coordinate, rank.view) == ((4, 8), (1, 5), "local")
    table = report.table(depth=3)
    assert "Job: rank 13 of 32 · mesh dp=4 × tp=8 at (1, 5) · local shapes" in table
    row = next(line for line in table.splitlines() if "q (Linear)" in line)
    assert row.split()[-3:] == ["8]", "S(2)", "4,096"] and "[2, 5, 8]" in row
    glob = simulate(_llama, x, mesh={"dp": 4, "tp": 8}, rank=13, view="global")
    row = next(line for line in glob.table(depth=3).splitlines() if "q (Linear)" in line)
    assert "[2, 5, 64]" in row and "global shapes" in glob.table()
    assert glob.to_dict()["sharding"]["view"] == "global"


def test_a_bad_view_is_refused() -> None:
    with pytest.raises(inn.InvalidInputError, match="view must be one of 'local', 'global'"):
        simulate(_mlp, torch.randn(4, 16), mesh=MESH, rank=0, view="both")
    report = simulate(_mlp, torch.randn(4, 16), mesh=MESH, rank=0)
    with pytest.raises(inn.InvalidInputError, match="view is 'local'"):
        report.table(view="all")  # type: ignore[arg-type]
