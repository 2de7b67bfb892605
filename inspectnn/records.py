"""Plain, immutable records of one traced forward.

Records hold metadata only (shapes, dtypes, device names, counts), never live
tensors, so a Report can be kept, compared, serialised and rendered long after
the model is gone. Renderers (``inspectnn.renderers``) are pure functions of these.
The Report that holds them is in ``report.py``; ``inspectnn.records.Report`` still
names it (a lazy module attribute: ``report.py`` imports the renderers, which
import this module, so this module cannot import it at load time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from inspectnn.report import Report as Report

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")

SCHEMA = "inspectnn/1"

NOT_RUN = "not-run"
"""The finding kind that marks a summary of a model given no input (no shapes, no FLOPs)."""


def not_run(report: Report) -> bool:
    """Whether ``report`` is a summary of a model that was not run (no shapes, no FLOPs)."""
    return any(f.kind == NOT_RUN for f in report.findings)


_SOURCE = re.compile(r"^(layers|ops|inputs)\[(\d+)\](?:\.outputs\[(\d+)\])?$")


def parse_source(source: str | None) -> tuple[str, int, int] | None:
    """``"layers[3].outputs[1]"`` -> ``("layers", 3, 1)``; ``"ops[2]"`` -> ``("ops", 2, 0)``."""
    if source is None:
        return None
    found = _SOURCE.match(source)
    if found is None:
        return None
    return found[1], int(found[2]), int(found[3] or 0)


@dataclass(frozen=True, slots=True)
class TensorMeta:
    """One value that went into or came out of a call, flattened from any nesting.

    Attributes:
        shape: The tensor's shape, or ``None`` for a value that is not a tensor.
        dtype: ``"float32"`` etc.; ``None`` for a non-tensor.
        device: ``"cpu"``, ``"cuda:0"``, ``"meta"``; ``None`` for a non-tensor.
        path: Where the value sat in the nesting: ``"[0]"``, ``"['logits']"``,
            ``".last_hidden_state"``, ``"mask"`` for a keyword argument.
        value: For a non-tensor, a short text of it (``"None"``, ``"3"``,
            ``"<DynamicCache>"``); ``None`` for a tensor.
        source: What produced the tensor. For an input: ``"layers[3]"`` (the
            first output of ``Report.layers[3]``; ``"layers[3].outputs[1]"`` for
            its second), ``"ops[2]"``, ``"inputs[0]"`` (the
            model's input ``Report.layers[0].inputs[0]``), or ``None`` (a
            parameter, a constant). For an output: what made it inside the call
            (the last child of a Sequential), or ``None`` when the call made it.
        local_shape: For a ``DTensor`` (``torch.distributed.tensor``), the shard this
            rank holds (``shape`` is then the global shape, as torch's ``.shape``
            says); ``None`` for a plain tensor, whose ``shape`` is this rank's.
        placements: For a ``DTensor``, its placement on each mesh dimension
            (``"Shard(1)"``, ``"Replicate()"``, ``"Partial(sum)"``); ``()`` otherwise.

    Example:
        >>> TensorMeta((64, 10), "float32", "cpu").is_tensor
        True
        >>> TensorMeta((4, 32), "float32", "cpu", local_shape=(4, 16)).held_shape
        (4, 16)
    """

    shape: tuple[int, ...] | None
    dtype: str | None
    device: str | None
    path: str = ""
    value: str | None = None
    source: str | None = None
    local_shape: tuple[int, ...] | None = None
    placements: tuple[str, ...] = ()

    @property
    def held_shape(self) -> tuple[int, ...] | None:
        """What this rank holds: a ``DTensor``'s local shape, else ``shape``."""
        return self.shape if self.local_shape is None else self.local_shape

    @property
    def held_numel(self) -> int:
        """Elements this rank holds (a ``DTensor``'s local shard; 0 for a non-tensor)."""
        shape = self.held_shape
        if shape is None:
            return 0
        n = 1
        for d in shape:
            n *= d
        return n

    @property
    def is_tensor(self) -> bool:
        """True when this records a tensor (it has a shape)."""
        return self.shape is not None

    @property
    def numel(self) -> int:
        """Number of elements (0 for a non-tensor): a ``DTensor``'s global count."""
        if self.shape is None:
            return 0
        n = 1
        for d in self.shape:
            n *= d
        return n

    def short(self) -> str:
        """``"64x10"`` for a tensor (``"scalar"`` for 0-d), the value text otherwise."""
        if self.shape is None:
            return self.value or "?"
        return "x".join(str(d) for d in self.shape) if self.shape else "scalar"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"shape", "dtype", "device"}`` plus ``path``/``value`` when set."""
        out: dict[str, Any] = {
            "shape": list(self.shape) if self.shape is not None else None,
            "dtype": self.dtype,
            "device": self.device,
        }
        if self.path:
            out["path"] = self.path
        if self.value is not None:
            out["value"] = self.value
        if self.source is not None:
            out["source"] = self.source
        if self.local_shape is not None:
            out["local_shape"] = list(self.local_shape)
            out["placements"] = list(self.placements)
        return out


@dataclass(frozen=True, slots=True)
class ParamMeta:
    """One parameter a module holds itself (not its submodules'), for per-parameter rows.

    Attributes:
        name: The local name, ``"weight"``, ``"bias"``.
        shape: The parameter's shape; ``None`` for a lazy module's parameter that its
            first forward has not created yet (uninitialised).
        dtype: ``"float32"`` etc.
        trainable: ``requires_grad``.
        placements: For a ``DTensor`` parameter, its placement on each mesh
            dimension (``"Shard(0)"``, ``"Replicate()"``); ``()`` for a plain one.
        local_shape: For a ``DTensor`` parameter, the shard this rank holds
            (``shape`` is the global one); ``None`` for a plain one.
        mesh_shape: For a ``DTensor`` parameter, its device mesh's shape (one size
            per entry of ``placements``); ``()`` for a plain one.
        mesh_dim_names: The mesh dimensions' names (``("dp", "tp")``), ``()`` when
            the mesh has none or the parameter is plain.

    Example:
        >>> ParamMeta("weight", (10, 4), "float32", True).numel
        40
    """

    name: str
    shape: tuple[int, ...] | None
    dtype: str
    trainable: bool
    placements: tuple[str, ...] = ()
    local_shape: tuple[int, ...] | None = None
    mesh_shape: tuple[int, ...] = ()
    mesh_dim_names: tuple[str, ...] = ()

    @property
    def numel(self) -> int:
        """Number of elements (0 while uninitialised)."""
        n = 0 if self.shape is None else 1
        for d in self.shape or ():
            n *= d
        return n


_C10D = {"allreduce": "all_reduce", "_allgather_base": "all_gather_into_tensor",
         "_reduce_scatter_base": "reduce_scatter_tensor"}  # c10d ops' functional names


@dataclass(frozen=True, slots=True)
class Collective:
    """A collective op one call ran: ``op`` as the dispatcher names it
    (``"_c10d_functional.all_reduce"``, ``"c10d.allreduce_"``), ``count`` runs, and
    ``bytes`` of this rank's input tensors over those runs."""

    op: str
    count: int
    bytes: int

    @property
    def name(self) -> str:
        """The short name, a ``c10d`` op's as its functional twin's: ``"all_reduce"``."""
        short = self.op.rsplit(".", 1)[-1].rstrip("_")
        return _C10D.get(short, short)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"op", "count", "bytes"}``."""
        return {"op": self.op, "count": self.count, "bytes": self.bytes}


@dataclass(frozen=True, slots=True)
class LayerCall:
    """One call of one submodule (the root included), in call order.

    Attributes:
        index: Position in ``Report.layers``.
        name: Dotted path as in ``named_modules()``; ``""`` for the root.
        type: Class name of the module.
        depth: Nesting depth of the path (root 0, ``"fc1"`` 1, ``"a.b"`` 2).
        call: 0 for the module's first call in this forward, 1 for its second...
        parent: Index of the enclosing call in ``Report.layers``, -1 for the root.
        inputs: Positional then keyword arguments, flattened.
        outputs: The return value, flattened.
        params: Parameters in this module's subtree, each tensor once.
        trainable_params: Of those, the ones with ``requires_grad``.
        shared: ``"local.name=other.module.name"`` for each parameter of this
            module's own that another module holds too (tied weights).
        flops: Floating point operations counted inside this call (subtree).
        failed: The forward raised while this call was running.
        extra: The module's ``extra_repr()`` (its configuration), e.g.
            ``"in_features=784, out_features=128, bias=True"``.
        buffers_written: Names of the module's own buffers that this call wrote,
            in place or by rebinding (``running_mean``, a step counter, a cache).
        weights: The module's own parameters (not its submodules'), in
            registration order, for the table's per-parameter rows. Not in the JSON.
        collectives: On a sharded model, the collectives this call ran itself (in its
            forward, not its children's, or in its forward hooks: a
            ``RowwiseParallel`` layer's all-reduce), each op once with its count.
    """

    index: int
    name: str
    type: str
    depth: int
    call: int
    parent: int
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]
    params: int
    trainable_params: int
    shared: tuple[str, ...] = ()
    flops: int = 0
    failed: bool = False
    extra: str = ""
    buffers_written: tuple[str, ...] = ()
    weights: tuple[ParamMeta, ...] = ()
    collectives: tuple[Collective, ...] = ()

    @property
    def uninitialised(self) -> bool:
        """Whether some parameter of the module's own is a lazy one not created yet."""
        return any(w.shape is None for w in self.weights)

    @property
    def label(self) -> str:
        """The dotted path, ``"(root)"`` for the root, with ``#call`` past the first call."""
        base = self.name or "(root)"
        return f"{base}#{self.call}" if self.call else base

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this layer call (schema ``inspectnn/1``)."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "depth": self.depth,
            "call": self.call,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "flops": self.flops,
        }
        if self.shared:
            out["shared"] = list(self.shared)
        if self.failed:
            out["failed"] = True
        if self.buffers_written:
            out["buffers_written"] = list(self.buffers_written)
        if self.collectives:
            out["collectives"] = [c.to_dict() for c in self.collectives]
        return out


@dataclass(frozen=True, slots=True)
class OpCall:
    """One functional op (``add``, ``cat``, ``Tensor.view`` ...) run between module calls.

    Attributes:
        index: Position in ``Report.ops``.
        name: The op, e.g. ``"cat"``, ``"Tensor.view"``, ``"Tensor.__add__"``.
        module: Dotted path of the module whose forward ran the op.
        parent: Index in ``Report.layers`` of that module's call.
        after: How many layer calls had started before this op (orders ops
            among layer calls).
        inputs: Tensor arguments, flattened.
        outputs: Tensor results, flattened.
        args: Short text of the non-tensor arguments, e.g. ``"-1, 1568"``.
        failed: The op raised.
        inplace: The op wrote into an existing tensor (``add_``, ``x[i] = v``,
            ``F.relu(x, inplace=True)``, ``out=``); its output is that tensor.
    """

    index: int
    name: str
    module: str
    parent: int
    after: int
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]
    args: str = ""
    failed: bool = False
    inplace: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this op."""
        out: dict[str, Any] = {
            "name": self.name,
            "module": self.module,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }
        if self.args:
            out["args"] = self.args
        if self.failed:
            out["failed"] = True
        if self.inplace:
            out["inplace"] = True
        return out


@dataclass(frozen=True, slots=True)
class Finding:
    """Something worth the user's attention, found before, during or after the forward.

    Attributes:
        kind: A short machine name, e.g. ``"fast-path"``, ``"dtype-mismatch"``.
        severity: ``"info"``, ``"warning"`` (runs, but probably wrong) or
            ``"error"`` (the forward fails or will fail).
        layer: Dotted path of the module concerned (``""`` = root).
        message: What is wrong, in one or two sentences.
        fix: What to do about it.
    """

    kind: str
    severity: Severity
    layer: str
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this finding."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "layer": self.layer,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Totals:
    """Model-wide counts. Parameters are unique tensors: tied weights count once.

    ``uncounted_ops`` names the ops whose FLOPs are missing from ``flops``
    (no formula, or counting them failed); each has a ``"flops-uncounted"`` finding.

    On a sharded rank (some parameter is a ``DTensor``: ``sharded``) ``params`` and
    ``trainable_params`` stay the model's global counts, the same on every rank,
    while ``param_bytes`` is what this rank holds (its local shards) and
    ``local_params`` their elements; ``local_params`` is ``None`` when nothing is
    sharded (then the rank holds ``params``).
    """

    params: int
    trainable_params: int
    buffers: int
    param_bytes: int
    buffer_bytes: int
    activation_bytes: int
    flops: int
    uncounted_ops: tuple[str, ...] = ()
    sharded: bool = False
    local_params: int | None = None

    @property
    def non_trainable_params(self) -> int:
        """Parameters with ``requires_grad=False``."""
        return self.params - self.trainable_params

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the totals (``uncounted_ops`` only when there are some,
        ``sharded`` and ``local_params`` only on a sharded rank)."""
        out: dict[str, Any] = {
            "params": self.params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "buffers": self.buffers,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "activation_bytes": self.activation_bytes,
            "flops": self.flops,
        }
        if self.uncounted_ops:
            out["uncounted_ops"] = list(self.uncounted_ops)
        if self.sharded:
            out.update(sharded=True, local_params=self.local_params)
        return out


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a forward failed: the exception's type and text, and where.

    ``expected`` and ``got`` are set when a layer contract diagnosed the failure.
    """

    type: str
    message: str
    layer: str
    expected: str | None = None
    got: str | None = None

    def to_dict(self) -> dict[str, str]:
        """The JSON form of the error."""
        out = {"type": self.type, "message": self.message, "layer": self.layer}
        if self.expected is not None and self.got is not None:
            out.update(expected=self.expected, got=self.got)
        return out


Parts = tuple[Totals, tuple[LayerCall, ...], tuple[OpCall, ...], tuple[Finding, ...]]


def __getattr__(name: str) -> Any:
    """``inspectnn.records.Report``, kept for the code that imports it from here."""
    if name == "Report":
        from inspectnn.report import Report

        return Report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
