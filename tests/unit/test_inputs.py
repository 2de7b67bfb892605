"""``inputs.py``: argument parsing and example inputs, without a forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inspectnn.errors import InvalidInputError
from inspectnn.inputs import (
    build_inputs,
    check_model,
    model_device,
    move_to,
    parse_device,
    parse_dtype,
    parse_shapes,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("given", "dtype"),
    [("float16", torch.float16), ("torch.int64", torch.int64), (" long ", torch.int64),
     ("bool", torch.bool), (torch.bfloat16, torch.bfloat16)],
)  # fmt: skip
def test_parse_dtype(given: object, dtype: torch.dtype) -> None:
    assert parse_dtype(given) is dtype


@pytest.mark.parametrize("bad", ["float23", "randn", "nn", 32, None])
def test_parse_dtype_says_what_to_pass(bad: object) -> None:
    with pytest.raises(InvalidInputError, match=r"is not a torch dtype\. Pass 'float32'"):
        parse_dtype(bad)


def test_parse_device() -> None:
    assert parse_device("meta") == torch.device("meta")
    assert parse_device(CPU) is CPU
    assert parse_device("cuda:3", check_available=False) == torch.device("cuda", 3)
    with pytest.raises(InvalidInputError, match="'gpu' is not a device"):
        parse_device("gpu")
    with pytest.raises(InvalidInputError, match="got 0 that is a 'int'"):
        parse_device(0)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="this machine has no CUDA GPU"):
            parse_device("cuda")


def test_parse_shapes() -> None:
    assert parse_shapes((1, 3)) == [(1, 3)]
    assert parse_shapes(torch.Size([2, 5])) == [(2, 5)]
    assert parse_shapes([[1, 10], (1, 5)]) == [(1, 10), (1, 5)]
    assert parse_shapes([(0, 4)]) == [(0, 4)]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ((), "has no dimensions"),
        ([()], "has no dimensions"),
        ((2, -1), "has a negative dimension"),
        ((True, 3), "input_size must be one shape"),
        ("1, 3", "input_size must be one shape"),
        ([], "has no dimensions"),
        ((1.0, 3), "input_size must be one shape"),
    ],
)
def test_bad_shapes_say_what_to_pass(bad: object, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        parse_shapes(bad)


def test_inputs_take_the_models_float_dtype_and_leave_the_rng_alone() -> None:
    model = nn.Linear(4, 2).double()
    state = torch.get_rng_state()
    (x,) = build_inputs(model, (3, 4), None, CPU)
    assert (x.shape, x.dtype) == ((3, 4), torch.float64)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(build_inputs(model, (3, 4), None, CPU)[0], x)  # the same every time


def test_integer_inputs_are_valid_indices_for_every_embedding() -> None:
    model = nn.Sequential(nn.Embedding(7, 2), nn.Embedding(3, 2))
    ids, mask = build_inputs(model, [(50,), (2, 2)], ["long", "bool"], CPU)
    assert ids.dtype == torch.int64 and int(ids.min()) >= 0 and int(ids.max()) < 3
    assert mask.dtype == torch.bool and bool(mask.all())
    (meta,) = build_inputs(model, (2, 2), torch.float16, torch.device("meta"))
    assert (meta.device.type, meta.dtype) == ("meta", torch.float16)


def test_dtypes_one_for_all_or_one_per_shape() -> None:
    model = nn.Linear(2, 2)
    a, b = build_inputs(model, [(1, 2), (1, 3)], "float16", CPU)
    assert a.dtype == b.dtype == torch.float16
    with pytest.raises(InvalidInputError, match="dtypes has 3 entries for 2 input shapes"):
        build_inputs(model, [(1, 2), (1, 3)], ["float16"] * 3, CPU)


def test_inputs_no_machine_could_hold_are_refused_before_allocating() -> None:
    with pytest.raises(InvalidInputError, match="more than a tensor can hold"):
        build_inputs(nn.Linear(2, 2), (2**40, 2**40), None, torch.device("meta"))
    with pytest.raises(InvalidInputError, match=r"needs .* on cpu, which is more than its"):
        build_inputs(nn.Linear(2, 2), (2**50, 2), None, CPU)


def test_model_device_and_move_to() -> None:
    assert model_device(nn.ReLU()) == CPU
    assert model_device(nn.BatchNorm1d(2, affine=False).to("meta")).type == "meta"
    value = {"x": torch.ones(2), "n": 3, "pair": (torch.zeros(1), None)}
    moved = move_to(value, torch.device("meta"))
    assert moved["x"].device.type == moved["pair"][0].device.type == "meta"
    assert moved["n"] == 3 and moved["pair"][1] is None
    assert value["x"].device == CPU  # the original is untouched


def test_check_model_refuses_what_is_not_a_module() -> None:
    lin = nn.Linear(2, 2)
    assert check_model(lin) is lin
    with pytest.raises(InvalidInputError):
        check_model(nn.Linear)  # the class, not an instance
