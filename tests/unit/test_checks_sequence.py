"""``checks/sequence.py`` on hand-made records: ``sequence-unsharded`` (issue 16).

A sequence-parallel layer's input as a rank records it: a ``DTensor`` with its global
shape, this rank's shard and ``Shard(1)``. Given the model's whole sequence as its
shard, the global sequence is ``tp`` times too long; given its slice, all is well.
"""

from __future__ import annotations

from dataclasses import replace

from inspectnn.checks.sequence import sequence_findings
from inspectnn.records import LayerCall, TensorMeta
from tests.unit.reports import call, t


def _dt(whole: tuple[int, ...], local: tuple[int, ...], placement: str, source: str) -> TensorMeta:
    return replace(t(*whole, source=source), local_shape=local, placements=(placement,))


def _model(norm_input: TensorMeta, blocks: int = 2) -> list[LayerCall]:
    """ids [2, 8] -> emb -> blocks.i.norm (each given ``norm_input``)."""
    layers = [
        call(0, "", "Net", -1, [t(2, 8, source="inputs[0]")], [t(2, 8, 16)]),
        call(1, "emb", "Embedding", 0, [t(2, 8, source="inputs[0]")], [t(2, 8, 16)]),
    ]
    for i in range(blocks):
        layers.append(call(2 + i, f"blocks.{i}.norm", "LayerNorm", 0, [norm_input], [norm_input]))
    return layers


def test_a_whole_sequence_taken_for_a_shard_is_one_finding_for_repeated_blocks() -> None:
    given = _dt((2, 32, 16), (2, 8, 16), "Shard(1)", "layers[1]")
    found = sequence_findings(_model(given))
    assert len(found) == 1
    (f,) = found
    assert (f.kind, f.severity, f.layer) == ("sequence-unsharded", "warning", "blocks.0.norm")
    assert f.message == (
        "'blocks.0.norm' (LayerNorm) (and 1 more like it) was given this rank's whole "
        "sequence [2, 8, 16] from 'emb' (Embedding) as its Shard(1) shard: its input hook "
        "(DTensor.from_local) made it a global [2, 32, 16], a sequence 4 times the model's "
        "8, so every rank's copy counts as a different part of it and every layer after "
        "runs on the longer sequence."
    )
    assert "output_layouts=Shard(1)" in f.fix


def test_a_sequence_slice_is_fine() -> None:
    given = _dt((2, 8, 16), (2, 2, 16), "Shard(1)", "layers[1]")
    assert sequence_findings(_model(given)) == []


def test_a_feature_shard_or_a_replicated_input_is_not_a_sequence() -> None:
    features = _dt((2, 8, 64), (2, 8, 16), "Shard(2)", "layers[1]")
    replicated = _dt((2, 8, 16), (2, 8, 16), "Replicate()", "layers[1]")
    assert sequence_findings(_model(features)) == []
    assert sequence_findings(_model(replicated)) == []


def test_a_plain_model_has_nothing_to_say() -> None:
    assert sequence_findings(_model(t(2, 8, 16, source="layers[1]"))) == []
