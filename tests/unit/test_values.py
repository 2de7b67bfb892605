"""The one walker over nested values (inspectnn.values), on its own."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, defaultdict
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from inspectnn.values import MAX_DEPTH, has_tensor, leaves, map_tensors, tensors


@dataclasses.dataclass
class Out:
    logits: Tensor
    extra: object = None


class Pair(NamedTuple):
    first: Tensor
    second: int


class Layer:
    """Like transformers' cache layer: tensors in plain attributes."""

    def __init__(self, keys: Tensor | None, values: Tensor | None) -> None:
        self.keys = keys
        self.values = values
        self.is_initialized = keys is not None


class Cache:
    """Like transformers' DynamicCache: a list of layers in an attribute."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers
        self.offloading = False


def test_paths_of_every_container_kind() -> None:
    a, b, c = torch.ones(1), torch.zeros(2), torch.ones(3)
    value = ((a, [b]), {"k": Out(c, 3)}, Pair(a, 7))
    got = [(p, leaf) for p, leaf in leaves(value)]
    assert [p for p, _ in got] == [
        "[0][0]", "[0][1][0]", "[1]['k'].logits", "[1]['k'].extra", "[2].first", "[2].second",
    ]  # fmt: skip
    assert got[0][1] is a and got[3][1] == 3 and got[5][1] == 7


def test_objects_holding_tensors_list_only_their_tensor_attributes() -> None:
    k, v = torch.ones(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)
    empty_layer = Layer(None, None)
    cache = Cache([Layer(k, v), empty_layer])
    assert leaves(cache, "past") == [
        ("past.layers[0].keys", k),
        ("past.layers[0].values", v),
        ("past.layers[1]", empty_layer),  # a list shows every item; this one is opaque
    ]
    empty = Cache([])
    assert leaves(empty) == [("", empty)]  # nothing inside: one opaque leaf


def test_packed_sequence_by_field() -> None:
    packed = pack_padded_sequence(torch.randn(5, 3, 8), torch.tensor([5, 3, 2]))
    paths = [p for p, _ in leaves(packed)]
    assert paths[:2] == [".data", ".batch_sizes"]
    assert len(tensors(packed)) == 2  # sorted/unsorted indices are None here


def test_modules_and_classes_are_leaves() -> None:
    lin = nn.Linear(2, 2)
    assert leaves([lin, nn.Linear]) == [("[0]", lin), ("[1]", nn.Linear)]
    assert not has_tensor(lin)


def test_depth_limit_stops_cycles() -> None:
    loop: list[object] = [torch.ones(1)]
    loop.append(loop)
    found = leaves(loop)
    assert len(found) == MAX_DEPTH + 1  # one tensor per level, then the opaque rest


def test_has_tensor_and_tensors_agree_with_leaves() -> None:
    t = torch.ones(2)
    for value in (t, (1, t), {"a": [None, Out(t)]}, Cache([Layer(t, t)]), Pair(t, 1)):
        assert has_tensor(value)
        assert all(x is t for x in tensors(value)) and tensors(value)
    for value in (1, "x", (1, 2), {"a": None}, Cache([]), Out(None)):  # type: ignore[arg-type]
        assert not has_tensor(value) and tensors(value) == []


def test_map_tensors_rebuilds_without_changing_the_original() -> None:
    t = torch.ones(2)
    cache = Cache([Layer(t, t)])
    value = {"out": Out(t, Pair(t, 3)), "cache": cache, "seq": [t, (t,)]}
    moved = map_tensors(value, lambda x: x * 2)
    assert all(bool((x == 2).all()) for x in tensors(moved))
    assert all(x is t for x in tensors(value))  # the input is untouched
    assert cache.layers[0].keys is t
    assert isinstance(moved["out"], Out) and isinstance(moved["out"].extra, Pair)
    assert isinstance(moved["cache"], Cache) and moved["cache"].offloading is False
    assert type(moved["seq"][1]) is tuple


def test_map_tensors_keeps_dict_types() -> None:
    t = torch.ones(1)
    counts: defaultdict[str, list[Tensor]] = defaultdict(list, a=[t])
    moved = map_tensors(counts, lambda x: x + 1)
    assert type(moved) is defaultdict and moved.default_factory is list
    assert float(moved["a"][0]) == 2.0 and counts["a"][0] is t
    ordered = map_tensors(OrderedDict(b=t, a=t), lambda x: x)
    assert type(ordered) is OrderedDict and list(ordered) == ["b", "a"]


def test_objects_false_leaves_objects_whole_but_walks_containers() -> None:
    t = torch.ones(1)
    cache = Cache([Layer(t, t)])
    found = []
    from inspectnn.values import walk

    walk({"c": cache, "x": [t]}, lambda p, leaf: found.append((p, leaf)), objects=False)
    assert found == [("['c']", cache), ("['x'][0]", t)]


def test_map_tensors_keeps_a_packed_sequences_batch_sizes_where_they_are() -> None:
    packed = pack_padded_sequence(torch.randn(4, 2, 3), torch.tensor([4, 2]))
    doubled = map_tensors(packed, lambda x: x.to(torch.float64))
    assert doubled.data.dtype == torch.float64 and doubled.batch_sizes.dtype == torch.int64
    assert doubled.batch_sizes is packed.batch_sizes  # bookkeeping, not data: not mapped
    assert doubled.sorted_indices is None or doubled.sorted_indices.dtype == torch.int64


def test_map_tensors_stops_at_the_depth_limit() -> None:
    t = torch.ones(1)
    deep: object = t
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    moved, kept = map_tensors(deep, lambda x: x + 1), deep
    for _ in range(MAX_DEPTH):
        assert moved is not kept  # rebuilt down to the limit
        moved, kept = moved[0], kept[0]  # type: ignore[index]
    assert moved is kept and kept[0][0] is t  # at the limit kept whole, not mapped


def test_a_read_only_mapping_is_rebuilt_as_its_own_type_or_a_dict() -> None:
    from types import MappingProxyType

    t = torch.ones(1)
    moved = map_tensors(MappingProxyType({"a": t}), lambda x: x + 1)
    assert isinstance(moved, (MappingProxyType, dict)) and float(moved["a"][0]) == 2.0
