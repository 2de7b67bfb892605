"""A 2-rank tensor-parallel MLP inspected on each rank of a real gloo job (issue 16).

Every activation that is a ``DTensor`` is recorded with its global shape, the shard
the rank holds and its placements; the table shows one view (local by default, with
a placement column); FLOPs and activation bytes are the rank's own; counts are the
unsharded model's and bytes this rank's shards'; ``distributed/placement.py`` reads
every parameter's sharding as the rank holds it: local shapes equal ``to_local()``'s,
global shapes the unsharded model's. inspect leaves no collective pending (torch
warns at exit of every unwaited one). The collectives each call ran are recorded
(the Rowwise layer's all-reduce, none in the Colwise one) and drawn: the graph's
edges carry each ``DTensor``'s placements, the Rowwise node its all-reduce.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from ranks import run_ranks
from torch import nn

WORLD = 2


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))


def _shapes(model: nn.Module) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in model.named_parameters()}


def _weights(report: Any) -> dict[str, dict[str, list[list[Any]]]]:
    """Each layer's parameter rows: global shape, local shape, placements."""
    return {
        layer.name: {
            w.name: [list(w.shape or ()), list(w.local_shape or ()), list(w.placements)]
            for w in layer.weights
        }
        for layer in report.layers
        if layer.weights
    }


def _tp_rank(rank: int, world: int) -> dict[str, Any]:
    """On one rank: the MLP made tensor parallel, inspected; what each view says."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    import inspectnn
    from inspectnn.distributed.placement import local_bytes, shard_facts
    from inspectnn.renderers.markdown import render_markdown

    model = _mlp()
    unsharded = _shapes(model)
    mesh = init_device_mesh("cpu", (world,))
    parallelize_module(model, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    x = torch.randn(4, 8)
    seen: dict[str, list[int]] = {}

    def hook(name: str) -> Any:
        return lambda mod, args, out: seen.__setitem__(name, list(out.shape))

    hooks = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()]
    plain = model(x).wait()  # waited: the plain forward leaves nothing pending either
    for h in hooks:
        h.remove()
    report = inspectnn.inspect(model, x)
    facts = {name: shard_facts(p) for name, p in model.named_parameters()}
    return {
        "unsharded": unsharded,
        "plain_output": list(plain.shape),
        "after_hooks": seen,
        "layers": {layer.name: [list(t.shape) for t in layer.outputs] for layer in report.layers},
        "held": {
            layer.name: [list(t.held_shape or ()) for t in layer.outputs] for layer in report.layers
        },
        "placed": {
            layer.name: [list(t.placements) for t in layer.outputs] for layer in report.layers
        },
        "inputs": {layer.name: [list(t.shape) for t in layer.inputs] for layer in report.layers},
        "held_inputs": {
            layer.name: [list(t.held_shape or ()) for t in layer.inputs] for layer in report.layers
        },
        "flops": report.totals.flops,
        "activation_bytes": report.totals.activation_bytes,
        "global_table": report.table(view="global"),
        "json": report.to_dict(),
        "rank": report.rank.rank if report.rank is not None else None,
        "agreed": _comparable(report),
        "params": report.totals.params,
        "param_bytes": report.totals.param_bytes,
        "local_params": report.totals.local_params,
        "sharded": report.totals.sharded,
        "totals_json": report.totals.to_dict(),
        "weights": _weights(report),
        "local_numel": sum(p.to_local().numel() for p in model.parameters()),
        "local_nbytes": sum(p.to_local().nbytes for p in model.parameters()),
        "table": report.table(),
        "to_local": {n: list(p.to_local().shape) for n, p in model.named_parameters()},
        "global": {n: list(f.global_shape) for n, f in facts.items() if f is not None},
        "local": {n: list(f.local_shape) for n, f in facts.items() if f is not None},
        "placements": {n: list(f.placements) for n, f in facts.items() if f is not None},
        "coordinate": {n: list(f.coordinate or ()) for n, f in facts.items() if f is not None},
        "local_bytes": sum(local_bytes(p) for p in model.parameters()),
        "dot": report.graph().source,
        "markdown": render_markdown(report),
        "twice": _collectives(_twice(model, x)),
    }


def _collectives(report: Any) -> list[list[Any]]:
    """Each call's collectives: ``[label, op, count, bytes]``, in call order."""
    return [
        [layer.label, c.op, c.count, c.bytes] for layer in report.layers for c in layer.collectives
    ]


class _Twice(nn.Module):
    """Runs the same tensor-parallel block twice: one all-reduce per call."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.block(x))


def _twice(model: nn.Module, x: torch.Tensor) -> Any:
    import inspectnn

    return inspectnn.inspect(_Twice(model), x)


def _comparable(report: Any) -> dict[str, Any]:
    """Every shape, placement, count and byte of a report: what a simulation must match."""
    values = [
        [layer.name, side, t.shape, t.local_shape, t.placements, t.dtype]
        for layer in report.layers
        for side, metas in (("in", layer.inputs), ("out", layer.outputs))
        for t in metas
    ]
    totals = report.totals
    return {
        "values": values,
        "weights": _weights(report),
        "totals": [totals.params, totals.local_params, totals.param_bytes, totals.flops,
                   totals.activation_bytes, totals.sharded],
        "layer_flops": [layer.flops for layer in report.layers],
        "collectives": _collectives(report),
    }  # fmt: skip


def _tp_plan(mesh: Any) -> nn.Module:
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    model = _mlp()
    return parallelize_module(model, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Each rank's findings, from one 2-rank job shared by the tests below."""
    return run_ranks(_tp_rank, WORLD, tmp_path_factory.mktemp("tp"))


def test_shard_facts_on_each_rank_match_to_local_and_the_unsharded_model(
    results: list[dict[str, Any]],
) -> None:
    assert len(results) == WORLD
    for rank, got in enumerate(results):
        assert got["global"] == got["unsharded"] == {
            "0.weight": [32, 8], "0.bias": [32], "2.weight": [8, 32], "2.bias": [8],
        }  # fmt: skip
        assert got["local"] == got["to_local"] == {
            "0.weight": [16, 8], "0.bias": [16], "2.weight": [8, 16], "2.bias": [8],
        }  # fmt: skip
        assert got["placements"] == {
            "0.weight": ["Shard(0)"], "0.bias": ["Shard(0)"],
            "2.weight": ["Shard(1)"], "2.bias": ["Replicate()"],
        }  # fmt: skip
        assert set(map(tuple, got["coordinate"].values())) == {(rank,)}
        assert got["local_bytes"] == (16 * 8 + 16 + 8 * 16 + 8) * 4


def test_every_dtensor_value_has_its_global_and_local_shape_and_placements(
    results: list[dict[str, Any]],
) -> None:
    """The ColwiseParallel Linear's forward returns a ``Shard(1)`` DTensor (global
    ``[4, 32]``, the rank's ``[4, 16]``, what its output hook hands on and a plain
    forward's hook sees), the ReLU a plain ``[4, 16]``, the RowwiseParallel Linear takes
    its pre-hook's ``Shard(1)`` view of that ``[4, 16]`` and returns a partial sum."""
    for got in results:
        assert got["layers"] == {"": [[4, 8]], "0": [[4, 32]], "1": [[4, 16]], "2": [[4, 8]]}
        assert got["held"] == {"": [[4, 8]], "0": [[4, 16]], "1": [[4, 16]], "2": [[4, 8]]}
        assert got["held"] == {k: [v] for k, v in got["after_hooks"].items()}
        assert got["placed"] == {"": [[]], "0": [["Shard(1)"]], "1": [[]], "2": [["Partial(sum)"]]}
        assert got["inputs"] == {"": [[4, 8]], "0": [[4, 8]], "1": [[4, 16]], "2": [[4, 32]]}
        assert got["held_inputs"] == {"": [[4, 8]], "0": [[4, 8]], "1": [[4, 16]], "2": [[4, 16]]}
        assert got["plain_output"] == [4, 8]
        out = got["json"]["layers"][1]["outputs"][0]
        assert [out["shape"], out["local_shape"], out["placements"]] == [
            [4, 32], [4, 16], ["Shard(1)"],
        ]  # fmt: skip
        assert "local_shape" not in got["json"]["layers"][2]["outputs"][0]


def test_the_table_shows_one_view_with_a_placement_column(
    results: list[dict[str, Any]],
) -> None:
    for rank, got in enumerate(results):
        lines = got["table"].splitlines()
        assert lines[0].split() == ["Layer", "(type)", "Output", "shape", "Placement", "Params"]
        assert lines[2].split() == ["Sequential", "[4,", "8]", "local", "552"]
        assert lines[3].split() == ["├─", "0", "(Linear)", "[4,", "16]", "S(1)", "288"]
        assert lines[4].split() == ["├─", "1", "(ReLU)", "[4,", "16]", "local", "0"]
        assert lines[5].split() == ["└─", "2", "(Linear)", "[4,", "8]", "P", "264"]
        assert f"Job: rank {rank} of 2 · mesh dim0=2 at ({rank},) · local shapes" in lines
        glob = got["global_table"].splitlines()
        assert glob[3].split() == ["├─", "0", "(Linear)", "[4,", "32]", "S(1)", "288"]
        assert f"Job: rank {rank} of 2 · mesh dim0=2 at ({rank},) · global shapes" in glob
        assert got["rank"] == rank
        assert got["json"]["sharding"] == {
            "schema": "inspectnn.sharding/1", "rank": rank, "world_size": 2,
            "mesh_dim_names": [], "mesh_shape": [2], "coordinate": [rank], "view": "local",
        }  # fmt: skip


def test_flops_and_activation_bytes_are_this_rank_s(results: list[dict[str, Any]]) -> None:
    """Each Linear multiplies its rank's half: 2 * 4 * 8 * 16 FLOPs each, half the
    unsharded model's 4,096; activations are the shards the rank holds (the root's
    [4, 8] output is its children's, counted at them)."""
    for got in results:
        assert got["flops"] == 2 * (2 * 4 * 8 * 16) == 2048
        assert got["activation_bytes"] == 4 * (4 * 16 + 4 * 16 + 4 * 8)


def test_inspect_leaves_no_collective_pending(
    capfd: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The RowwiseParallel all-reduce's output is waited for: no rank prints torch's
    "unwaited collective calls" warning at exit."""
    run_ranks(_inspect_only, WORLD, tmp_path_factory.mktemp("pending"))
    err = capfd.readouterr().err
    assert "unwaited collective" not in err and "wait_tensor" not in err


def _inspect_only(rank: int, world: int) -> bool:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    import inspectnn

    model = _mlp()
    mesh = init_device_mesh("cpu", (world,))
    parallelize_module(model, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    return inspectnn.inspect(model, torch.randn(4, 8)).error is None


def test_counts_are_the_unsharded_model_s_and_bytes_this_rank_s(
    results: list[dict[str, Any]],
) -> None:
    """The parameter count is the unsharded model's on every rank (552); what the rank
    holds is its shards' elements (280: half of each sharded tensor, all of the
    replicated bias) and their bytes, and the table's totals line says both."""
    for got in results:
        assert got["params"] == 32 * 8 + 32 + 8 * 32 + 8
        assert got["sharded"] is True
        assert got["local_params"] == got["local_numel"] == 16 * 8 + 16 + 8 * 16 + 8
        assert got["param_bytes"] == got["local_nbytes"] == got["local_bytes"] == 4 * 280
        assert got["totals_json"]["params"] == 552
        assert (got["totals_json"]["sharded"], got["totals_json"]["local_params"]) == (True, 280)
        assert "Params: 552 (global) · this rank holds 280 (1.1 KB) ·" in got["table"]
        assert got["weights"] == {
            "0": {"weight": [[32, 8], [16, 8], ["Shard(0)"]], "bias": [[32], [16], ["Shard(0)"]]},
            "2": {"weight": [[8, 32], [8, 16], ["Shard(1)"]], "bias": [[8], [8], ["Replicate()"]]},
        }


def test_the_simulation_of_each_rank_agrees_with_the_real_run(
    results: list[dict[str, Any]],
) -> None:
    """``inspectnn.simulate`` of rank r of a tp=2 job (one process, fake group, meta)
    gives the real gloo rank r's every shape, placement, count, FLOP and byte."""
    import inspectnn

    for rank, got in enumerate(results):
        simulated = inspectnn.simulate(_tp_plan, torch.randn(4, 8), mesh={"tp": WORLD}, rank=rank)
        assert simulated.device == "meta"
        # the ranks' results come back through JSON: tuples as lists
        assert json.loads(json.dumps(_comparable(simulated))) == got["agreed"]


def test_the_collectives_each_call_ran_are_recorded(results: list[dict[str, Any]]) -> None:
    """The Rowwise layer's output hook all-reduces its partial sum once a forward, on
    this rank's local [4, 8] float32 (128 bytes); the Colwise layer (its input is
    replicated already) runs none; a block called twice, one per call."""
    for got in results:
        assert got["agreed"]["collectives"] == [["2", "_c10d_functional.all_reduce", 1, 128]]
        assert got["json"]["layers"][3]["collectives"] == [
            {"op": "_c10d_functional.all_reduce", "count": 1, "bytes": 128}
        ]
        assert all("collectives" not in layer for layer in got["json"]["layers"][:3])
        assert got["table"].splitlines()[-1] == "Collectives: 1 all_reduce (128 B)"
        assert "**Collectives:** 1 all_reduce (128 B)" in got["markdown"]
        assert got["twice"] == [
            ["block.2", "_c10d_functional.all_reduce", 1, 128],
            ["block.2#1", "_c10d_functional.all_reduce", 1, 128],
        ]


def test_the_graph_shows_placements_on_edges_and_the_all_reduce(
    results: list[dict[str, Any]],
) -> None:
    """Edges carry the placements of the ``DTensor`` they carry, with this rank's shard
    (the report's local view): the input replicated into the Colwise layer, the ReLU's
    local [4, 16] made ``Shard(1)`` for the Rowwise layer, whose node says the
    all-reduce that made its partial sum whole; the title names the rank."""
    for rank, got in enumerate(results):
        dot = got["dot"]
        assert 'in0 -> L1 [label="4×8 R"]' in dot
        assert 'L1 -> L2 [label="4×16"]' in dot  # the Colwise output hook's local shard
        assert 'L2 -> L3 [label="4×16 S(1)"]' in dot
        assert 'L3 -> out0 [label="4×8"]' in dot  # after the all-reduce and to_local()
        assert '2 · Linear 32→8 · 264 params\n⇄ all_reduce ×1 (128 B)" color="#1a73e8"' in dot
        assert "all_reduce" not in dot.split("L1 [label=")[1].split("]")[0]
        assert f"rank {rank} of 2" in dot
