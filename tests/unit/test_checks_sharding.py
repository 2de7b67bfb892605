"""``checks/sharding.py`` and ``checks/device_memory.py`` on hand-made records (issue 16).

The shard sizes are checked against torch's own computation of each rank's local shape
(``torch.distributed.tensor._utils._compute_local_shape_and_global_offset``, given every
coordinate of the mesh), the findings against parameter rows written by hand as a
sharded rank records them (``ParamMeta`` with placements, local shape and mesh).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor._utils import _compute_local_shape_and_global_offset
from torch.distributed.tensor.placement_types import Placement, _StridedShard

import inspectnn as inn
from inspectnn.checks.device_memory import device_memory_bytes, device_memory_findings
from inspectnn.checks.sharding import shard_dims, shard_sizes, sharding_findings
from inspectnn.distributed.placement import placement_text
from inspectnn.records import Finding, ParamMeta, Totals
from inspectnn.training.records import CATEGORIES, MemoryReport
from inspectnn.units import parse_size


def _param(
    name: str,
    shape: tuple[int, ...],
    placements: tuple[str, ...] = (),
    mesh: dict[str, int] | None = None,
) -> ParamMeta:
    """A parameter row; a sharded one's local shape is rank 0's (its first chunks)."""
    if not placements or mesh is None:
        return ParamMeta(name, shape, "float32", True)
    sizes = tuple(mesh.values())
    param = ParamMeta(name, shape, "float32", True, placements, None, sizes, tuple(mesh))
    local = list(shape)
    for dim, order in shard_dims(param).items():
        local[dim] = shard_sizes(shape[dim], order, sizes)[0]
    return ParamMeta(name, shape, "float32", True, placements, tuple(local), sizes, tuple(mesh))


TP8 = {"tp": 8}


def _torch_sizes(size: int, mesh: tuple[int, ...], placements: list[Placement]) -> list[int]:
    """Each rank's local size of dimension 0, in mesh order, as torch computes it."""
    return [
        _compute_local_shape_and_global_offset((size, 3), mesh, list(c), placements)[0][0]
        for c in itertools.product(*(range(n) for n in mesh))
    ]


@pytest.mark.parametrize("size", [0, 1, 2, 5, 9, 10, 36, 64, 100])
@pytest.mark.parametrize(
    ("mesh", "placements"),
    [
        ((8,), [Shard(0)]),
        ((4,), [Shard(0)]),
        ((2, 4), [Shard(0), Shard(0)]),
        ((2, 4), [_StridedShard(0, split_factor=4), Shard(0)]),
        ((2, 4), [Replicate(), Shard(0)]),
        ((3, 2), [Shard(0), Replicate()]),
    ],
)
def test_shard_sizes_are_torch_s_local_shapes(
    size: int, mesh: tuple[int, ...], placements: list[Placement]
) -> None:
    texts = tuple(placement_text(p) for p in placements)
    param = ParamMeta("w", (size, 3), "float32", True, texts, None, mesh, ())
    order = shard_dims(param)[0]
    mine = shard_sizes(size, order, mesh)
    theirs = _torch_sizes(size, mesh, placements)
    # torch lists every coordinate; ours only those of the mesh dimensions that cut
    cut = sorted(order)
    by_coordinate = {
        tuple(c[i] for i in cut): s
        for c, s in zip(itertools.product(*(range(n) for n in mesh)), theirs, strict=True)
    }
    assert list(mine) == list(by_coordinate.values())


def test_the_two_examples_of_the_issue() -> None:
    assert shard_sizes(36, [0], [8]) == (5, 5, 5, 5, 5, 5, 5, 1)
    assert shard_sizes(2, [0], [4]) == (1, 1, 0, 0)


def _mlp_36(tp: int = 8) -> dict[str, tuple[ParamMeta, ...]]:
    """Linear(8, 36) Colwise, ReLU, Linear(36, 8) Rowwise over tp, as parameter rows."""
    mesh = {"tp": tp}
    return {
        "0": (_param("weight", (36, 8), ("Shard(0)",), mesh),
              _param("bias", (36,), ("Shard(0)",), mesh)),
        "2": (_param("weight", (8, 36), ("Shard(1)",), mesh),
              _param("bias", (8,), ("Replicate()",), mesh)),
    }  # fmt: skip


TYPES = {"0": "Linear", "2": "Linear"}


def test_36_over_tp_8_is_one_finding_naming_every_parameter_cut_so() -> None:
    found = sharding_findings(_mlp_36(), TYPES)
    assert found == [
        Finding(
            "uneven-shards",
            "warning",
            "0",
            "36 does not divide by tp=8: 0.weight (dimension 0), 0.bias (dimension 0) and "
            "2.weight (dimension 1) are cut into shards of 5, 5, 5, 5, 5, 5, 5, 1 over the 8 "
            "ranks (this rank holds 5).",
            "make 36 divisible by 8, e.g. 40 or 32, or shard it over a mesh dimension whose "
            "size divides 36: collectives pad uneven shards, and a RowwiseParallel layer fed "
            "them fails (its input hook, DTensor.from_local, takes every rank's shard to be as "
            "large as its own)",
        )
    ]


def test_an_even_plan_has_no_finding() -> None:
    mesh = {"tp": 4}
    weights = {
        "0": (_param("weight", (32, 8), ("Shard(0)",), mesh),
              _param("bias", (32,), ("Shard(0)",), mesh)),
        "2": (_param("weight", (8, 32), ("Shard(1)",), mesh),
              _param("bias", (8,), ("Replicate()",), mesh)),
    }  # fmt: skip
    assert sharding_findings(weights, TYPES) == []


def test_empty_shards_say_which_ranks_hold_nothing() -> None:
    weights = {"head": (_param("weight", (2, 16), ("Shard(0)",), {"tp": 4}),)}
    (found,) = sharding_findings(weights, {"head": "Linear"})
    assert (found.kind, found.severity, found.layer) == ("empty-shards", "warning", "head")
    assert "2 does not divide by tp=4: head.weight (dimension 0) is cut into shards of " in (
        found.message
    )
    assert "1, 1, 0, 0 over the 4 ranks (this rank holds 1). 2 of them hold nothing " in (
        found.message
    )
    assert found.message.endswith("(tp ranks 2, 3).")
    assert found.fix.startswith("make 2 divisible by 4, e.g. 4, or")


def test_blocks_repeated_across_layers_are_one_finding() -> None:
    weights = {f"layers.{i}.up": (_param("weight", (36, 8), ("Shard(0)",), TP8),) for i in range(4)}
    (found,) = sharding_findings(weights, dict.fromkeys(weights, "Linear"))
    assert found.layer == "layers.0.up"
    assert "36 does not divide by tp=8: layers.*.up.weight (dimension 0) (x4) are cut" in (
        found.message
    )


def test_many_ranks_are_listed_in_runs() -> None:
    (found,) = sharding_findings({"a": (_param("weight", (100, 4), ("Shard(0)",), {"tp": 64}),)},
                                 {"a": "Linear"})  # fmt: skip
    # ceil(100 / 64) = 2: 50 ranks hold 2, the other 14 nothing
    assert "cut into shards of 2 x 50, 0 x 14 over the 64 ranks" in found.message
    assert "14 of them hold nothing (tp ranks 50, 51, 52, 53, 54, 55, 56, 57 ...)" in found.message


def test_a_data_parallel_dimension_is_info_fsdp_pads_it() -> None:
    """FSDP shards every parameter (norms too) on dimension 0: uneven costs padding only."""
    mesh = {"dp": 4}
    weights = {
        "fc": (_param("weight", (10, 6), ("Shard(0)",), mesh),
               _param("bias", (10,), ("Shard(0)",), mesh)),
        "norm": (_param("weight", (6,), ("Shard(0)",), mesh),),
    }  # fmt: skip
    found = sharding_findings(weights, {"fc": "Linear", "norm": "LayerNorm"})
    # 10 rows: 3, 3, 3, 1; the norm's 6: 2, 2, 2, 0
    assert [(f.kind, f.severity) for f in found] == [
        ("uneven-shards", "info"), ("empty-shards", "info"),
    ]  # fmt: skip
    assert found[0].fix.startswith("nothing breaks: FSDP pads uneven shards")


def test_a_2d_mesh_cuts_a_dimension_by_both() -> None:
    mesh = {"dp": 2, "tp": 4}
    weights = {"fc": (_param("weight", (10, 8), ("_StridedShard(dim=0, sf=4)", "Shard(0)"), mesh),
                      _param("bias", (8,), ("Replicate()", "Replicate()"), mesh))}  # fmt: skip
    (found,) = sharding_findings(weights, {"fc": "Linear"})
    assert "10 does not divide by dp=2 x tp=4: fc.weight (dimension 0) is cut into shards of " in (
        found.message
    )
    assert "2, 2, 2, 1, 1, 1, 1, 0 over the 8 ranks" in found.message
    assert found.message.endswith("1 of them holds nothing ((dp, tp) rank (1, 3)).")


def _block(
    i: int, up: tuple[str, ...] = ("Shard(0)",), mesh: dict[str, int] = TP8
) -> dict[str, tuple[ParamMeta, ...]]:
    """A LLaMA block's parameters under a TP plan, ``up``'s placement as given."""
    p = f"layers.{i}."
    return {
        f"{p}attn_norm": (_param("weight", (64,)),),
        f"{p}attn.q": (_param("weight", (64, 64), ("Shard(0)",), mesh),),
        f"{p}attn.o": (_param("weight", (64, 64), ("Shard(1)",), mesh),
                       _param("bias", (64,), ("Replicate()",), mesh)),
        f"{p}mlp.gate": (_param("weight", (128, 64), ("Shard(0)",), mesh),),
        f"{p}mlp.up": (_param("weight", (128, 64), up, mesh),),
        f"{p}mlp.down": (_param("weight", (64, 128), ("Shard(1)",), mesh),
                         _param("bias", (64,), ("Replicate()",), mesh)),
        f"{p}mlp.router": (_param("weight", (4, 64), ("Replicate()",), mesh),),
    }  # fmt: skip


def _types(weights: dict[str, tuple[ParamMeta, ...]]) -> dict[str, str]:
    return {name: "RMSNorm" if name.endswith("norm") else "Linear" for name in weights}


def test_a_correct_tp_plan_has_no_replicated_finding() -> None:
    """Rowwise biases, norms and a small router are whole on every rank by design."""
    weights = {**_block(0), **_block(1)}
    assert sharding_findings(weights, _types(weights)) == []


def test_a_projection_the_plan_forgot_is_found_once_for_all_blocks() -> None:
    weights = {**_block(0, up=()), **_block(1, up=())}  # up left plain in both blocks
    (found,) = sharding_findings(weights, _types(weights))
    assert (found.kind, found.severity, found.layer) == (
        "replicated-param", "warning", "layers.0.mlp.up",
    )  # fmt: skip
    assert found.message == (
        "'layers.*.mlp.up' (2 Linear modules) each hold their whole weight [128, 64] on every "
        "tp rank (a plain tensor), while the plan shards their siblings 'layers.0.mlp.gate' "
        "(Shard(0)), 'layers.0.mlp.down' (Shard(1)) over tp: the plan most likely left them out."
    )
    assert found.fix.startswith(
        "add it to the tensor-parallel plan as 'layers.0.mlp.gate' is: "
        "{'layers.*.mlp.up': ColwiseParallel()}"
    )


def test_a_replicated_dtensor_sibling_is_found_too() -> None:
    weights = _block(0, up=("Replicate()",))
    (found,) = sharding_findings(weights, _types(weights))
    assert "'layers.0.mlp.up' (Linear) holds its whole weight [128, 64] on every tp rank " in (
        found.message
    )
    assert "(Replicate() on tp)" in found.message


def test_fsdp_only_shards_everything_and_finds_nothing() -> None:
    mesh = {"dp": 4}
    weights = {
        "layers.0.norm": (_param("weight", (64,), ("Shard(0)",), mesh),),
        "layers.0.gate": (_param("weight", (128, 64), ("Shard(0)",), mesh),),
        "layers.0.up": (_param("weight", (128, 64), ("Shard(0)",), mesh),),
        "layers.0.down": (_param("weight", (64, 128), ("Shard(0)",), mesh),),
    }
    assert sharding_findings(weights, _types(weights)) == []


@pytest.mark.parametrize(
    ("text", "size"),
    [("80GB", 80 * 1024**3), ("80 GiB", 80 * 1024**3), ("80g", 80 * 1024**3),
     ("512MB", 512 * 1024**2), ("1.5 KB", 1536), ("1024", 1024), ("2TB", 2 * 1024**4)],
)  # fmt: skip
def test_sizes_are_read_in_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert device_memory_bytes(text) == size


@pytest.mark.parametrize("value", ["lots", "80 XB", "-1GB", "0", 0, -5, 1.5, True, [80]])
def test_a_bad_device_memory_is_refused_saying_what_to_pass(value: object) -> None:
    with pytest.raises(inn.InvalidInputError, match=r'a size such as "80GB"'):
        device_memory_bytes(value)


def _totals(params: int, buffers: int, activations: int) -> Totals:
    return Totals(1, 1, 0, param_bytes=params, buffer_bytes=buffers,
                  activation_bytes=activations, flops=0)  # fmt: skip


GB = 1024**3


def test_a_forward_that_fits_has_no_finding() -> None:
    assert device_memory_findings(80 * GB, _totals(40 * GB, 0, 39 * GB), None, False) == []
    assert device_memory_findings(None, _totals(400 * GB, 0, 0), None, False) == []


def test_a_forward_that_does_not_fit_names_what_dominates() -> None:
    (found,) = device_memory_findings(80 * GB, _totals(30 * GB, GB, 60 * GB), None, False)
    assert (found.kind, found.severity, found.layer) == ("device-memory", "error", "")
    assert found.message == (
        "This rank needs 91.0 GB for its parameters, buffers and the forward's activations, "
        "more than device_memory=80.0 GB by 11.0 GB: activations 60.0 GB (66%), parameters "
        "30.0 GB (33%), buffers 1.0 GB (1%). Activations dominate."
    )
    assert found.fix.startswith("checkpoint the blocks that save most")


def test_a_failed_forward_holds_only_parameters_and_buffers_against_the_limit() -> None:
    assert device_memory_findings(80 * GB, _totals(30 * GB, 0, 60 * GB), None, True) == []
    (found,) = device_memory_findings(20 * GB, _totals(30 * GB, 0, 60 * GB), None, True)
    assert "needs 30.0 GB for its parameters and buffers" in found.message


def test_a_training_step_is_held_to_its_peak() -> None:
    at_peak = dict.fromkeys(CATEGORIES, 0) | {
        "parameters": 20 * GB, "gradients": 20 * GB, "optimizer_state": 40 * GB,
        "activations": 10 * GB,
    }  # fmt: skip
    memory = MemoryReport(
        device="meta", optimizer="AdamW", amp=None, held=tuple(at_peak.values()),
        peak=90 * GB, peak_phase="optimizer", peak_module="", at_peak=tuple(at_peak.values()),
        timeline=(), modules=(),
    )  # fmt: skip
    (found,) = device_memory_findings(80 * GB, _totals(0, 0, 0), memory, False)
    assert found.message == (
        "This rank needs 90.0 GB at the training step's peak (in the optimizer), more than "
        "device_memory=80.0 GB by 10.0 GB: optimizer state 40.0 GB (44%), parameters 20.0 GB "
        "(22%), gradients 20.0 GB (22%), activations 10.0 GB (11%). Optimizer state dominates."
    )
    assert found.fix.startswith("shard the optimizer state")
    assert device_memory_findings(90 * GB, _totals(0, 0, 0), memory, False) == []
    in_backward = replace(memory, peak_phase="backward", peak_module="layers.3")
    (found,) = device_memory_findings(80 * GB, _totals(0, 0, 0), in_backward, False)
    assert "at the training step's peak (in the backward, in 'layers.3')" in found.message


def test_fsdp2_over_tensor_parallel_rows_as_torch_makes_them() -> None:
    """``fully_shard`` over ``dp`` of a model made tensor parallel over ``tp`` (rank 7 of a
    (dp=2, tp=4) mesh, on the fake process group): the rows torch records read back."""
    import torch.distributed as dist
    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from inspectnn.summary import param_metas, raw_params

    dist.init_process_group("fake", store=FakeStore(), rank=7, world_size=8)
    try:
        mesh = init_device_mesh("cpu", (2, 4), mesh_dim_names=("dp", "tp"))
        model = nn.Sequential(nn.Linear(16, 10), nn.ReLU(), nn.Linear(10, 16), nn.LayerNorm(16))
        parallelize_module(model, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})
        fully_shard(model, mesh=mesh["dp"])
        named = [(n, m) for n, m in model.named_modules() if m._parameters]
        held = {n: p.to_local().shape for n, p in model.named_parameters()}
        weights = {n: param_metas(raw_params(m)) for n, m in named}
        found = sharding_findings(weights, {n: type(m).__name__ for n, m in named})
    finally:
        dist.destroy_process_group()
    assert weights["0"][0].placements == ("_StridedShard(dim=0, sf=4)", "Shard(0)")
    assert held["0.weight"] == (0, 16)  # rank (1, 3) holds no row of the 10
    assert [(f.kind, f.severity, f.layer) for f in found] == [
        ("empty-shards", "warning", "0"), ("uneven-shards", "warning", "2"),
    ]  # fmt: skip
    assert "shards of 2, 2, 2, 1, 1, 1, 1, 0 over the 8 ranks (this rank holds 0)" in (
        found[0].message
    )
    assert (
        "10 does not divide by tp=4: 2.weight (dimension 1) is cut into shards of 3, 3, 3, 1"
        in (found[1].message)
    )


def test_a_forgotten_lm_head_beside_a_sharded_embedding_gets_the_linear_s_style() -> None:
    """torchtitan's plan: the embedding RowwiseParallel (vocabulary rows, Shard(0)), the
    output ColwiseParallel (the same rows of a Linear); the plan forgot the output."""
    weights = {
        "tok": (_param("weight", (1000, 64), ("Shard(0)",), TP8),),
        "norm": (_param("weight", (64,)),),
        "output": (_param("weight", (1000, 64)),),
    }
    types = {"tok": "Embedding", "norm": "RMSNorm", "output": "Linear"}
    (found,) = sharding_findings(weights, types)
    assert found.layer == "output"
    assert "{'output': ColwiseParallel()}" in found.fix


def test_a_forgotten_projection_alike_only_by_one_size_gets_its_style() -> None:
    """``proj`` [128, 64] beside a RowwiseParallel ``down`` [64, 128] (Shard(1) cuts the
    128): ``proj``'s 128 is its dimension 0, so ColwiseParallel."""
    weights = {
        "m.down": (_param("weight", (64, 128), ("Shard(1)",), TP8),),
        "m.proj": (_param("weight", (128, 64)),),
    }
    (found,) = sharding_findings(weights, dict.fromkeys(weights, "Linear"))
    assert "{'m.proj': ColwiseParallel()}" in found.fix
