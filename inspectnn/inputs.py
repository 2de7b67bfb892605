"""Argument checking and input building for :func:`inspectnn.inspect`."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from inspectnn.distributed.fsdp import is_fsdp
from inspectnn.errors import InvalidInputError
from inspectnn.units import format_size
from inspectnn.values import map_tensors

__all__ = [
    "build_inputs",
    "check_model",
    "check_sharded",
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


def check_sharded(
    named: Sequence[tuple[str, nn.Module]], target: torch.device, moved: bool
) -> None:
    """Refuse an FSDP2 (``fully_shard``) model that cannot run as asked, saying why.

    FSDP2 gathers and frees its parameters itself, in hooks around each sharded
    module's forward, and initialises its state on the first forward: a model whose
    shards are still on meta fails there and is left half-initialised (the next
    forward fails on ``'FSDPParam' object has no attribute 'param_dtype'``), and
    substitute tensors on another device are not what FSDP gathers.

    Args:
        named: The model's modules, named.
        target: The device the forward would run on.
        moved: Whether ``device=`` asked for a run on substituted tensors.
    """
    if not is_fsdp(m for _, m in named):
        return
    devices = {
        p.device for _, m in named for p in m._parameters.values() if isinstance(p, Tensor)
    }
    if any(d.type == "meta" for d in devices):
        raise InvalidInputError(
            "the model is sharded with FSDP2 (fully_shard) and its parameters are still on the "
            "meta device: FSDP cannot run it, on meta or anywhere else, until they are "
            "materialized (and its first forward would leave it half-initialised). Call "
            "model.to_empty(device=...) and initialise the parameters (reset_parameters() on "
            "each module) first, inspect the model before fully_shard, with device='meta', or "
            "let inspectnn.simulate(build, x, mesh=..., rank=...) build it (it runs FSDP2 on "
            "fake shards)."
        )
    if moved and any(d != target for d in devices):
        raise InvalidInputError(
            f"the model is sharded with FSDP2 (fully_shard), whose hooks gather its own "
            f"parameters for each forward, so inspect cannot run it on copies on {target}. "
            "Leave device= out to run it where its shards are, or inspect the model before "
            "fully_shard, with device='meta' for shapes only."
        )


def parse_dtype(value: object) -> torch.dtype:
    """``"float16"``, ``"long"``, ``"torch.int64"`` or a torch.dtype to a torch.dtype."""
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str):
        found = getattr(torch, value.strip().removeprefix("torch."), None)
        if isinstance(found, torch.dtype):
            return found
    raise InvalidInputError(f"{value!r} is not a torch dtype. Pass {_DTYPE_EXAMPLES}.")


def parse_device(value: object, check_available: bool = True) -> torch.device:
    """A device string or torch.device, checked to exist on this machine.

    Args:
        value: ``"cpu"``, ``"meta"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``.
        check_available: Also refuse a CUDA device this machine does not have; off,
            only the spelling is checked (the pytest plugin skips such tests instead).
    """
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
    if device.type == "cuda" and check_available:
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
        if not shape:
            raise InvalidInputError(
                f"input_size {shape} has no dimensions: it would build a 0-d tensor (a single "
                "number). Pass the input's full shape, batch first, e.g. (1, 3, 224, 224) for "
                "one RGB image or (64, 10) for a batch of 64 vectors of 10 features."
            )
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
    _check_room(shapes, kinds, device)
    try:
        return _make(model, shapes, kinds, device)
    except (RuntimeError, MemoryError) as err:
        if not isinstance(err, (torch.OutOfMemoryError, MemoryError)) and "alloc" not in str(err):
            raise
        raise InvalidInputError(_too_big(shapes, kinds, device, "could not be allocated")) from err


_MAX_NUMEL = 2**63 - 1  # what a tensor's element count (int64) can hold


Shapes = list[tuple[int, ...]]


def _nbytes(shapes: Shapes, kinds: list[torch.dtype]) -> int:
    return sum(math.prod(s) * k.itemsize for s, k in zip(shapes, kinds, strict=True))


def _too_big(shapes: Shapes, kinds: list[torch.dtype], device: torch.device, why: str) -> str:
    pairs = zip(shapes, kinds, strict=True)
    what = ", ".join(f"{tuple(s)} {str(k).removeprefix('torch.')}" for s, k in pairs)
    return (
        f"input_size {what} needs {format_size(_nbytes(shapes, kinds))} on {device}, which {why}. "
        "Pass device='meta' to check shapes, parameters and FLOPs without allocating "
        "anything, or a smaller input_size."
    )


def _memory(device: torch.device) -> int | None:
    """The device's total memory in bytes, where it can be known cheaply."""
    try:
        if device.type == "cpu":
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
    except (AttributeError, OSError, ValueError, RuntimeError):  # no sysconf (Windows)
        return None
    return None


def _check_room(shapes: Shapes, kinds: list[torch.dtype], device: torch.device) -> None:
    """Refuse inputs no tensor can hold, or that need more memory than the device has."""
    for shape in shapes:
        if math.prod(shape) > _MAX_NUMEL or any(d > _MAX_NUMEL for d in shape):
            raise InvalidInputError(
                f"input_size {tuple(shape)} has {math.prod(shape):,} elements, more than a "
                "tensor can hold (2**63 - 1, on any device, meta included). Pass a smaller "
                "input_size."
            )
    if device.type == "meta":
        return
    room = _memory(device)
    if room is not None and _nbytes(shapes, kinds) > room:
        raise InvalidInputError(
            _too_big(shapes, kinds, device, f"is more than its {format_size(room)} of memory")
        )


def _make(
    model: nn.Module, shapes: Shapes, kinds: list[torch.dtype], device: torch.device
) -> tuple[Tensor, ...]:
    """The inputs themselves; a private generator leaves the global RNG alone."""
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
