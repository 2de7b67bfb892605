"""FSDP2 (``fully_shard``) inspected on 2 and 4 real gloo ranks, and simulated (issue 16).

A small pre-norm transformer-ish model, ``fully_shard`` per block and at the root
(whose own norm and head stay in the root's group); at 2 ranks also with blocks that
keep their gather after forward (``reshard_after_forward=False``). On each rank: every parameter row
has the unsharded model's global shape, ``to_local()``'s local shape and ``Shard(0)``;
``totals.param_bytes`` is the sum of the local shards' bytes; every activation has the
shape a plain forward gives. Nothing is lost: afterwards every registered parameter is
the same sharded ``DTensor`` object, every FSDP state and parameter group is as a plain
forward leaves it (sharded, idle; FSDP's one-time lazy init turns the root's
``reshard_after_forward`` off in any first forward), and the next real forward,
backward and optimizer step gives bit for bit what it gives on a twin never
inspected. No rank warns of an unwaited collective. ``simulate()`` of each rank (FSDP2
on fake shards under the fake process group) agrees with the real rank on every shape,
parameter byte and activation byte; so does each rank of examples/sharded_job.py's
FSDP2 x tensor-parallel job on a dp=2 x tp=2 mesh.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest
import torch
from ranks import run_ranks
from torch import nn

DIM, HIDDEN = 16, 32


class Block(nn.Module):
    """Pre-norm MLP block with a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.norm, self.up = nn.RMSNorm(DIM), nn.Linear(DIM, HIDDEN)
        self.down = nn.Linear(HIDDEN, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(self.norm(x))))


class Model(nn.Module):
    """Two blocks, a final norm and a head held by the root's own FSDP group."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.norm, self.head = nn.RMSNorm(DIM), nn.Linear(DIM, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _plain() -> Model:
    torch.manual_seed(0)
    return Model()


def build(mesh: Any, reshard: bool = True) -> nn.Module:
    """The model, ``fully_shard`` per block and at the root over the 1-D ``dp`` mesh;
    ``reshard=False``: the blocks keep their parameters gathered after their forward
    (``reshard_after_forward=False``, ZeRO-2 style)."""
    from torch.distributed.fsdp import fully_shard

    model = _plain()
    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh)
    return model


def _input(rank: int) -> torch.Tensor:
    return torch.randn(3, 5, DIM, generator=torch.Generator().manual_seed(1 + rank))


def _rows(report: Any) -> dict[str, list[Any]]:
    """Each parameter row: global shape, local shape, placements."""
    return {
        f"{layer.name}.{w.name}": [list(w.shape), list(w.local_shape or ()), list(w.placements)]
        for layer in report.layers
        for w in layer.weights
    }


def _facts(report: Any) -> dict[str, Any]:
    """What the real rank and the simulated one must agree on."""
    return {
        "rows": _rows(report),
        "outputs": {
            layer.name: [[list(t.shape), list(t.held_shape or ())] for t in layer.outputs]
            for layer in report.layers
        },
        "param_bytes": report.totals.param_bytes,
        "activation_bytes": report.totals.activation_bytes,
        "params": report.totals.params,
        "local_params": report.totals.local_params,
        "findings": sorted(f.kind for f in report.findings),
    }


def _states(model: nn.Module) -> list[Any]:
    """Every FSDP state's training state and its parameter group's."""
    out: list[Any] = []
    for name, mod in model.named_modules():
        get = getattr(mod, "_get_fsdp_state", None)
        if get is None:
            continue
        state = get()
        group = state._fsdp_param_group
        out.append([name, str(state._training_state)])
        if group is not None:
            out[-1] += [str(group._training_state), group.is_sharded,
                        group._reshard_after_forward, len(group.fsdp_params)]  # fmt: skip
    return out


def _step(model: nn.Module, x: torch.Tensor) -> list[list[float]]:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).square().mean().backward()
    opt.step()
    return [p.to_local().flatten().tolist() for p in model.parameters()]  # type: ignore[operator]


def _fsdp_rank_zero2(rank: int, world: int) -> dict[str, Any]:
    return _fsdp_rank(rank, world, reshard=False)


def _fsdp_rank(rank: int, world: int, reshard: bool = True) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    import inspectnn

    plain = _plain()
    x = _input(rank)
    seen: dict[str, list[int]] = {}
    for name, mod in plain.named_modules():
        mod.register_forward_hook(lambda m, a, out, n=name: seen.__setitem__(n, list(out.shape)))
    with torch.no_grad():
        plain(x)
    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("dp",))
    model, twin, ref = (build(mesh, reshard) for _ in range(3))
    with torch.no_grad():
        ref(x)  # a plain first forward: FSDP's one-time lazy init (the root keeps its gather)
    for mod in ref.modules():  # sharded again, as before the forward
        getattr(mod, "reshard", lambda: None)()
    slots = [(m, dict(m._parameters)) for m in model.modules()]
    states = _states(model)
    report = inspectnn.inspect(model, x)
    again = inspectnn.inspect(model, x)  # the second run finds FSDP as the first left it
    kept = all(
        m._parameters.keys() == saved.keys()
        and all(m._parameters[k] is p for k, p in saved.items())
        for m, saved in slots
    )
    params = dict(model.named_parameters())
    return {
        "facts": _facts(report),
        "again": _facts(again),
        "unsharded": {n: list(p.shape) for n, p in plain.named_parameters()},
        "local": {n: list(p.to_local().shape) for n, p in params.items()},  # type: ignore[operator]
        "local_bytes": sum(
            p.to_local().numel() * p.element_size() for p in params.values()  # type: ignore[operator]
        ),
        "dtensors": all(isinstance(p, DTensor) for p in params.values()),
        "plain": seen,
        "slots_kept": kept,
        "states": [states, _states(model), _states(ref)],
        "after": _step(model, x),
        "twin": _step(twin, x),
    }


@pytest.mark.parametrize(("world", "reshard"), [(2, True), (4, True), (2, False)])
def test_fsdp2_on_real_ranks_leaves_the_model_and_agrees_with_simulate(
    world: int, reshard: bool, tmp_path: Any, capfd: Any
) -> None:
    import inspectnn

    work = _fsdp_rank if reshard else _fsdp_rank_zero2
    results = run_ranks(work, world, tmp_path, timeout=90)
    err = capfd.readouterr().err
    assert "wait_tensor" not in err and "unwaited" not in err
    for rank, got in enumerate(results):
        facts = got["facts"]
        assert facts == got["again"]
        rows = facts["rows"]
        names = sorted(got["unsharded"])
        assert sorted(n.lstrip(".") for n in rows) == names
        for name, (shape, local, placements) in rows.items():
            key = name.lstrip(".")
            assert shape == got["unsharded"][key]
            assert local == got["local"][key]
            assert placements == ["Shard(0)"]
            assert local[0] * world == shape[0]  # every dimension 0 divides evenly here
        assert facts["param_bytes"] == got["local_bytes"]
        assert facts["params"] == sum(torch.Size(s).numel() for s in got["unsharded"].values())
        assert facts["local_params"] * world == facts["params"]
        assert {n: o[0][0] for n, o in facts["outputs"].items()} == got["plain"]
        assert facts["activation_bytes"] > 0
        # FSDP's gathered parameters, registered in each module's pre-forward hook, are
        # the model's: no unregistered-module warning (nor any other finding)
        assert facts["findings"] == []
        # nothing lost: the same sharded DTensors, FSDP's states as they were, the same step
        assert got["dtensors"] and got["slots_kept"]
        before, after, plain_forward = got["states"]
        # as a plain forward leaves them: every group idle and sharded; the root's
        # reshard_after_forward turned off by FSDP's own lazy init, as any first forward does
        assert after == plain_forward
        assert [s[2:4] + s[5:] for s in before] == [s[2:4] + s[5:] for s in after]
        # every group resharded, the blocks' too when they keep their gather after forward
        assert [s[3:] for s in after] == [
            [True, False, 2], [True, reshard, 5], [True, reshard, 5]
        ]  # fmt: skip
        assert got["after"] == got["twin"], rank
        # simulate() of the same rank: FSDP2 on fake shards under the fake process group
        simulated = inspectnn.simulate(
            partial(build, reshard=reshard), _input(rank), mesh={"dp": world}, rank=rank
        )
        assert simulated.device == "meta"
        assert _facts(simulated) == facts, rank


def _job_build() -> Any:
    """examples/sharded_job.py's ``build`` (FSDP2 on dp x Megatron-style TP on tp) and DIM."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    try:
        import sharded_job
    finally:
        sys.path.pop(0)
    return sharded_job.build, sharded_job.DIM


def _job_rank(rank: int, world: int) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh

    import inspectnn

    job_build, dim = _job_build()
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    x = torch.randn(2, 8, dim, generator=torch.Generator().manual_seed(rank))
    return _facts(inspectnn.inspect(job_build(mesh), x))


def test_fsdp2_x_tp_on_4_real_ranks_agrees_with_simulate(tmp_path: Any, capfd: Any) -> None:
    """The LLaMA-ish job of examples/sharded_job.py on a dp=2 x tp=2 mesh: every rank's
    shapes (global and held), parameter rows, bytes and findings, real and simulated."""
    import inspectnn

    real = run_ranks(_job_rank, 4, tmp_path, timeout=90)
    err = capfd.readouterr().err
    assert "wait_tensor" not in err and "unwaited" not in err
    job_build, dim = _job_build()
    for rank, facts in enumerate(real):
        start = time.perf_counter()
        simulated = inspectnn.simulate(
            job_build, torch.randn(2, 8, dim), mesh={"dp": 2, "tp": 2}, rank=rank
        )
        assert time.perf_counter() - start < 20
        assert _facts(simulated) == facts, rank
        gate = facts["outputs"]["0.gate"]
        assert gate == [[[2, 8, 160], [2, 8, 80]]]  # S(2) over tp
        assert facts["params"] == 94_464 and facts["local_params"] == 23_680
        q = facts["rows"]["0.attn.q.weight"]
        assert q[0] == [64, 64] and q[1] == [16, 64]  # a quarter: rows over tp, then dp
