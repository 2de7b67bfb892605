"""The raw trace's layout: what the tracer records during the forward, slot by slot.

Owns the names of every slot: the call in flight (``RunningCall``, a list written in
place) and the finished call (``RawCall``, a plain tuple of its first eight slots),
both read through the index constants below; a value (``RawMeta``); an op
(``RawOp``); and provenance, the ``(code, position)`` pair that says which call, op
or model input made a tensor, with its encode/decode pair (``layer_code``,
``op_code``, ``input_code``, ``decode``). docs/architecture.md describes the same
layout in prose.

Records are plain tuples rather than named tuples on purpose: the garbage collector
stops tracking a plain tuple of atomic values on its next pass, but never a tuple
subclass (``typing.NamedTuple`` included), and a large model keeps thousands of
records alive through the forward.

May import: nothing of inspectnn's (only ``torch``, for the types).
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import torch

# -- a value --------------------------------------------------------------------

# Provenance: (code, position), two plain ints rather than a pair, so a finished
# record holds no tuple that the collector would have to untrack first.
Source = tuple[int, int]

# A DTensor's sharding as this rank sees it: (local shape, placements as text, such as
# ("Shard(0)", "Replicate()")); None for a plain tensor and a non-tensor.
Sharding: TypeAlias = "tuple[tuple[int, ...], tuple[str, ...]] | None"

# One leaf of a flattened argument or return value:
# (path, shape, dtype, device, value text, code, position, sharding). Shape, dtype and
# device are None for a non-tensor; value text is None for a tensor.
RawMeta = tuple[
    str,
    "tuple[int, ...] | None",
    "torch.dtype | None",
    "torch.device | None",
    "str | None",
    int,
    int,
    "Sharding",
]
PATH: Final = 0  # "[0]", "['logits']", "mask" ...: where the leaf sits in the value
SHAPE: Final = 1  # tuple(t.shape); None for a non-tensor
DTYPE: Final = 2  # torch.dtype; None for a non-tensor
DEVICE: Final = 3  # torch.device; None for a non-tensor
TEXT: Final = 4  # a non-tensor's repr (cut to 40 characters) or <TypeName>; None for a tensor
CODE: Final = 5  # provenance: who made the tensor (layer_code, op_code, input_code, NO_CODE)
POSITION: Final = 6  # provenance: the leaf's index in its producer's flattened output
SHARD: Final = 7  # a DTensor's (local shape, placements); SHAPE is then the global shape


def held_shape(meta: RawMeta) -> tuple[int, ...] | None:
    """The shape of what this rank holds: a DTensor's local shard, else ``SHAPE``."""
    shard = meta[SHARD]
    return meta[SHAPE] if shard is None else shard[0]


# -- provenance -----------------------------------------------------------------

NO_CODE: Final = -1  # not known: a parameter, a constant, a non-tensor
NO_SOURCE: Final[Source] = (NO_CODE, 0)


def layer_code(i: int) -> int:
    """The code of layer call ``i``'s outputs (``layers[i]``): ``2 * i``, no cap on ``i``."""
    if i < 0:
        raise ValueError(f"a layer call index is >= 0, not {i}")
    return 2 * i


def op_code(j: int) -> int:
    """The code of op ``j``'s outputs (``ops[j]``): ``2 * j + 1``, no cap on ``j``."""
    if j < 0:
        raise ValueError(f"an op index is >= 0, not {j}")
    return 2 * j + 1


def input_code(k: int) -> int:
    """The code of leaf ``k`` of the model's own flattened inputs (``inputs[k]``): ``-2 - k``."""
    if k < 0:
        raise ValueError(f"an input index is >= 0, not {k}")
    return -2 - k


def decode(code: int) -> tuple[str, int] | None:
    """``(kind, index)`` of a code: ``kind`` is ``"layers"``, ``"ops"`` or ``"inputs"``,
    as in a ``TensorMeta.source``; None for ``NO_CODE``.

    Example:
        >>> decode(layer_code(70)), decode(op_code(3)), decode(input_code(0)), decode(NO_CODE)
        (('layers', 70), ('ops', 3), ('inputs', 0), None)
    """
    if code == NO_CODE:
        return None
    if code < 0:
        return "inputs", -2 - code
    return ("ops", code // 2) if code % 2 else ("layers", code // 2)


# -- a call ---------------------------------------------------------------------

# The call in flight: a list made in Tracer._pre_step, appended to Tracer._raw and
# pushed on Tracer._stack, written in place until _post_step replaces it with a RawCall.
RunningCall = list[Any]
MODULE: Final = 0  # id(module): key into Tracer._modules, _plan and, after detach(), _info
CALL: Final = 1  # call number: 0 for the module's first call in this forward, 1 for the next
PARENT: Final = 2  # index in Tracer._raw of the enclosing call; -1 for the root
INPUTS: Final = 3  # tuple of RawMeta: positional, then keyword arguments
OUTPUTS: Final = 4  # tuple of RawMeta; None while running and on failure (() once finished)
FLOPS: Final = 5  # self FLOPs: counted while this call is innermost; children added in build
FAILED: Final = 6  # the forward raised inside this call
LEAF: Final = 7  # leaf kind ("linear", "conv", "convT") when FLOPs come from shapes, or None
# -- the slots below are the running call's only (a RawCall stops at LEAF) --
INDEX: Final = 8  # the call's own index in Tracer._raw
WAS_ON: Final = 9  # whether the op recorder was on before the call, to switch back after

# A finished call: the first eight slots of its RunningCall as a plain tuple
# (outputs () rather than None), read through the same constants.
RawCall = tuple[
    int, int, int, "tuple[RawMeta, ...]", "tuple[RawMeta, ...]", int, bool, "str | None"
]


def finished(rec: RunningCall) -> RawCall:
    """The ``RawCall`` of a running call as it stands (``Tracer._post_step`` makes the same
    tuple inline, a function call fewer per module call)."""
    return (rec[MODULE], rec[CALL], rec[PARENT], rec[INPUTS], rec[OUTPUTS] or (),
            rec[FLOPS], rec[FAILED], rec[LEAF])  # fmt: skip


# -- an op ----------------------------------------------------------------------

# (name, parent, after, inputs, outputs, others, failed, in place): one torch function
# recorded by the op recorder. Read by unpacking in build(), never by index.
#   name: the op's label (torch.cat, Tensor.view, F.relu ...)
#   parent: index in Tracer._raw of the call whose forward ran it
#   after: len(Tracer._raw) when it ran, how many layer calls had started
#   inputs, outputs: tuples of RawMeta (outputs () when it failed)
#   others: non-tensor arguments as (keyword or "", value), formatted in build()
RawOp = tuple[
    str, int, int, "tuple[RawMeta, ...]", "tuple[RawMeta, ...]",
    "tuple[tuple[str, object], ...]", bool, bool,
]
