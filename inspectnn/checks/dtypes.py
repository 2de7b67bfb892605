"""Dtype and device findings: mixed parameters, broken layer contracts, silent promotion."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from torch import Tensor

from inspectnn.checks.contracts import Violation
from inspectnn.records import Finding, LayerCall, Severity

__all__ = ["mixed_tensor_findings", "promotion_findings", "violation_findings"]

_LOW = {"float16", "bfloat16"}


def _dtype(t: Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _spread(items: list[tuple[str, str]], what: str) -> tuple[str, list[str]] | None:
    """The minority groups of (name, value) pairs: text and the odd names."""
    counts = Counter(value for _, value in items)
    if len(counts) < 2:
        return None
    common, n_common = counts.most_common(1)[0]
    odd = [(name, value) for name, value in items if value != common]
    shown = ", ".join(f"`{name}` is {value}" for name, value in odd[:4])
    more = f" (and {len(odd) - 4} more)" if len(odd) > 4 else ""
    return f"{shown}{more}; the other {n_common} tensors are {common} {what}", [n for n, _ in odd]


def mixed_tensor_findings(
    tensors: Sequence[tuple[str, Tensor]], failed_kinds: set[str]
) -> list[Finding]:
    """Parameters and buffers of mixed float dtypes, or spread over devices.

    Args:
        tensors: ``(dotted name, tensor)`` for every parameter and buffer.
        failed_kinds: ``{"dtype", "device"}`` kinds the forward failed on; those
            findings are errors, the others warnings (the model ran).
    """
    out: list[Finding] = []
    floats = [(n, _dtype(t)) for n, t in tensors if t.is_floating_point()]
    spread = _spread(floats, "")
    if spread is not None:
        text, odd = spread
        low = any(d in _LOW for n, d in floats if n in odd)
        severity: Severity = "error" if "dtype" in failed_kinds else "warning"
        out.append(
            Finding(
                "mixed-dtypes",
                severity,
                odd[0].rsplit(".", 1)[0],
                f"Parameters and buffers have mixed dtypes: {text.strip()}."
                + (" Half-precision weights in a float32 model lose precision silently."
                   if low and severity == "warning" else ""),
                "Cast the whole model to one dtype, e.g. model.float() (or model.half() "
                "for all-half inference).",
            )
        )  # fmt: skip
    devices = [(n, str(t.device)) for n, t in tensors]
    spread = _spread(devices, "")
    if spread is not None:
        by_device: dict[str, list[str]] = defaultdict(list)
        for name, dev in devices:
            module = name.rsplit(".", 1)[0] if "." in name else "(root)"
            if module not in by_device[dev]:
                by_device[dev].append(module)
        where = "; ".join(
            f"on {dev}: {', '.join(mods[:4])}{' ...' if len(mods) > 4 else ''}"
            for dev, mods in by_device.items()
        )
        severity = "error" if "device" in failed_kinds else "warning"
        out.append(
            Finding(
                "mixed-devices",
                severity,
                spread[1][0].rsplit(".", 1)[0],
                f"The model's tensors live on several devices ({where}).",
                "Move the model to one device with model.to(device), or move activations "
                "between the parts explicitly in forward.",
            )
        )
    return out


def violation_findings(
    layers: Sequence[LayerCall], violations: dict[int, Violation]
) -> list[Finding]:
    """One finding per broken layer contract: an error where the layer then failed."""
    out = []
    for idx, v in violations.items():
        rec = layers[idx]
        severity: Severity = "error" if rec.failed else "warning"
        ran = "" if rec.failed else " PyTorch ran it anyway; check the result."
        fix = v.fix
        if v.kind == "shape" and rec.type == "Linear" and _rowwise(rec):
            # a tensor-parallel input hook made the global shape: resizing the layer is no fix
            fix = (
                "RowwiseParallel's input hook builds this global shape from this rank's "
                "shard (DTensor.from_local): the error's diagnosis says why and what to change"
            )
        out.append(
            Finding(
                f"{v.kind}-mismatch",
                severity,
                rec.name,
                f"{rec.label or rec.type} ({rec.type}) got {v.arg} {v.got}, expected "
                f"{v.expected}: {v.rule}.{ran}",
                fix,
            )
        )
    return out


def _rowwise(rec: LayerCall) -> bool:
    """Whether ``rec``'s weight is sharded on its input dimension (``RowwiseParallel``)."""
    return any("Shard(1)" in w.placements for w in rec.weights if w.name == "weight")


def promotion_findings(
    layers: Sequence[LayerCall], *, autocast: str | None = None
) -> list[Finding]:
    """Leaf layers whose output float dtype differs from their input's (silent casts).

    Under ``amp=`` (``autocast``: its dtype), casts between that dtype and float32 are
    autocast's own, asked for: not reported.
    """
    asked = {autocast, "float32"} if autocast is not None else set()
    parents = {rec.parent for rec in layers}
    seen: set[str] = set()
    out = []
    for rec in layers:
        if rec.index in parents or rec.name in seen:
            continue
        src = next((m for m in rec.inputs if m.is_tensor), None)
        dst = next((m for m in rec.outputs if m.is_tensor), None)
        if src is None or dst is None or src.dtype == dst.dtype:
            continue
        if not (_is_float(src.dtype) and _is_float(dst.dtype)):
            continue
        if {src.dtype, dst.dtype} <= asked:
            continue
        seen.add(rec.name)
        wider = _width(dst.dtype) > _width(src.dtype)
        effect = "every layer after it computes in the wider type" if wider else "precision is lost"
        out.append(
            Finding(
                "dtype-promotion" if wider else "dtype-narrowing",
                "warning",
                rec.name,
                f"{rec.label} ({rec.type}) turns {src.dtype} input into {dst.dtype} output: "
                f"{effect}. A parameter or buffer of another dtype is the usual cause.",
                f"Make {rec.label}'s tensors {src.dtype}, e.g. model.to(torch.{src.dtype}).",
            )
        )
    return out


def _is_float(dtype: str | None) -> bool:
    return dtype is not None and dtype.startswith(("float", "bfloat"))


def _width(dtype: str | None) -> int:
    return {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 16}.get(dtype or "", 0)
