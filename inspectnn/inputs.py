"""Argument checking and input building for :func:`inspectnn.inspect`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from inspectnn.errors import InvalidInputError
from inspectnn.values import map_tensors

__all__ = [
    "build_inputs",
    "check_model",
    "model_device",
    "move_to",
    "parse_device",
    "parse_dtype",
    "parse_shapes",
]

_DTYPE_EXAMPLES = "'float32', 'float16', 'bfloat16', 'long', 'int64', 'bool' or a torch.dtype"


def check_model(model: object) -> nn.Module:
    """Return ``model`` if it can be traced, else raise InvalidInputError."""
    if isinstance(model, torch.jit.ScriptModule):
        raise InvalidInputError(
            f"inspectnn cannot trace a TorchScript module ({type(model).__name__}): scripted "
            "code runs outside Python, where submodule calls cannot be seen. Pass the eager "
            "nn.Module you scripted (the object before torch.jit.script / torch.jit.trace)."
        )
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"model must be a torch.nn.Module (got {model!r} that is a "
            f"{type(model).__name__!r}). Pass the model object itself, e.g. "
            "inspect(MyNet(), x), not its class, its state_dict or its output."
        )
    return model


def parse_dtype(value: object) -> torch.dtype:
    """``"float16"``, ``"long"``, ``"torch.int64"`` or a torch.dtype to a torch.dtype."""
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str):
        found = getattr(torch, value.strip().removeprefix("torch."), None)
        if isinstance(found, torch.dtype):
            return found
    raise InvalidInputError(f"{value!r} is not a torch dtype. Pass {_DTYPE_EXAMPLES}.")


def parse_device(value: object) -> torch.device:
    """A device string or torch.device, checked to exist on this machine."""
    device: torch.device
    if isinstance(value, torch.device):
        device = value
    elif isinstance(value, str):
        try:
            device = torch.device(value)
        except RuntimeError as err:
            raise InvalidInputError(
                f"{value!r} is not a device. Pass 'cpu', 'meta', 'cuda' or 'cuda:N'."
            ) from err
    else:
        raise InvalidInputError(
            f"device must be a string or torch.device (got {value!r} that is a "
            f"{type(value).__name__!r}). Pass 'cpu', 'meta', 'cuda' or 'cuda:N'."
        )
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidInputError(
                f"device {str(device)!r} was asked for but this machine has no CUDA GPU. "
                "Pass device='cpu', or device='meta' to check shapes without memory."
            )
        if device.index is not None and device.index >= count:
            raise InvalidInputError(
                f"device {str(device)!r} does not exist: this machine has {count} GPU(s), "
                f"cuda:0 to cuda:{count - 1}."
            )
    return device


def model_device(model: nn.Module) -> torch.device:
    """Where the model's first parameter (or buffer) lives; CPU for a stateless model."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def parse_shapes(input_size: object) -> list[tuple[int, ...]]:
    """One shape, or a sequence of shapes, to a list of shapes of non-negative ints."""

    def is_shape(s: object) -> bool:
        return isinstance(s, (tuple, list, torch.Size)) and all(
            isinstance(d, int) and not isinstance(d, bool) for d in s
        )

    shapes: list[tuple[int, ...]]
    if is_shape(input_size):
        shapes = [tuple(input_size)]  # type: ignore[arg-type]
    elif isinstance(input_size, Sequence) and input_size and all(is_shape(s) for s in input_size):
        shapes = [tuple(s) for s in input_size]
    else:
        raise InvalidInputError(
            f"input_size must be one shape such as (1, 3, 224, 224) or a list of shapes "
            f"such as [(1, 10), (1, 5)] for a model with two inputs (got {input_size!r})."
        )
    for shape in shapes:
        if any(d < 0 for d in shape):
            raise InvalidInputError(
                f"input_size {shape} has a negative dimension; sizes must be >= 0, "
                "e.g. (64, 1, 28, 28) for a batch of 64 one-channel 28x28 images."
            )
    return shapes


def _index_bound(model: nn.Module) -> int:
    """A high bound for integer inputs: valid indices for every Embedding in the model."""
    bounds = [
        m.num_embeddings for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
    ]
    return max(1, min(bounds)) if bounds else 2


def _default_float(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def build_inputs(
    model: nn.Module, input_size: object, dtypes: object, device: torch.device
) -> tuple[Tensor, ...]:
    """Make example inputs of the given shapes.

    Floating inputs are standard normal (dtype of the model's parameters unless
    ``dtypes`` says otherwise); integer inputs are valid indices for every
    ``nn.Embedding`` in the model; bool inputs are all True (an attention mask
    that keeps everything). A private generator leaves the global RNG alone.
    """
    shapes = parse_shapes(input_size)
    if dtypes is None:
        kinds = [_default_float(model)] * len(shapes)
    else:
        given = dtypes if isinstance(dtypes, (list, tuple)) else [dtypes]
        kinds = [parse_dtype(d) for d in given]
        if len(kinds) == 1:
            kinds = kinds * len(shapes)
        if len(kinds) != len(shapes):
            raise InvalidInputError(
                f"dtypes has {len(kinds)} entries for {len(shapes)} input shapes; pass one "
                "dtype for all inputs or one per shape."
            )
    gen = torch.Generator().manual_seed(0)
    out: list[Tensor] = []
    for shape, dtype in zip(shapes, kinds, strict=True):
        if device.type == "meta":
            out.append(torch.empty(shape, dtype=dtype, device=device))
        elif dtype == torch.bool:
            out.append(torch.ones(shape, dtype=dtype).to(device))
        elif dtype.is_floating_point or dtype.is_complex:
            out.append(torch.randn(shape, generator=gen, dtype=dtype).to(device))
        else:
            high = _index_bound(model)
            out.append(torch.randint(0, high, shape, generator=gen, dtype=dtype).to(device))
    return tuple(out)


def move_to(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it moved to ``device`` (containers rebuilt)."""
    return map_tensors(value, lambda t: t.to(device))
