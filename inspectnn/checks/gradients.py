"""What only a backward shows: findings of a training step (``inspect(..., backward=True)``).

``gradient_findings`` reads the ``TrainingReport`` (the gradients each call and
parameter got), the layer and op records, and where the forward cut the autograd
graph (``trace/grads.py``'s cuts):

* ``no-gradient``: parameters that require grad and got none, one finding per module,
  with why where it can be found (the module never called; its output unused; the
  module run under ``torch.no_grad()``; the op or layer that cut the path from its
  output to the model's output: ``.detach()``, ``.data``, ``argmax`` or another
  integer result, an op under ``torch.no_grad()``) and the fix;
* ``grad-non-finite``: the first layer, in backward order, whose gradient holds NaN
  or Inf, and the parameters whose gradient does;
* ``grad-vanishing`` / ``grad-exploding``: parameters whose gradient norm is far below
  or above the median of all (``THRESHOLDS``), when a loss was given;
* ``activation-hotspot``: the modules that save most for backward, with what
  checkpointing each would free;
* ``optimizer-frozen`` / ``optimizer-left-out``: parameters with
  ``requires_grad=False`` handed to the optimizer, trainable ones left out of it.

May import: ``checks/gradflow.py``, ``checks/sharding.py`` (``repeat_key``), ``records.py``,
``trace/grads.py`` (``Cut``), ``training/records.py``, ``training/step.py`` (``loss_text``),
``units.py``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from inspectnn.checks.gradflow import _Flow
from inspectnn.checks.sharding import repeat_key
from inspectnn.records import Finding, LayerCall, OpCall
from inspectnn.trace.grads import Cut
from inspectnn.training.records import (
    WRAPPER_SHARE,
    LayerGrad,
    ModuleMemory,
    ParamGrad,
    TrainingReport,
)
from inspectnn.training.step import loss_text
from inspectnn.units import format_size

__all__ = ["HOTSPOTS", "THRESHOLDS", "gradient_findings"]

THRESHOLDS = (1e-3, 1e3)
"""A parameter's gradient norm below ``median * 1e-3`` is vanishing, above ``median * 1e3``
exploding (the median over parameters with a finite, nonzero gradient norm, when at
least three have one). Pass others to ``gradient_findings(..., thresholds=(low, high))``
as ratios to the median."""

HOTSPOTS = 3
"""At most this many ``activation-hotspot`` findings (modules repeated across blocks,
``h.*``, are one), each saving at least a tenth of the activations held."""



def gradient_findings(
    training: TrainingReport,
    layers: Sequence[LayerCall],
    ops: Sequence[OpCall],
    cuts: Sequence[Cut],
    *,
    thresholds: tuple[float, float] = THRESHOLDS,
) -> list[Finding]:
    """Every training-step finding.

    Args:
        training: The step's gradients and memory.
        layers: The traced layer calls (``Report.layers``).
        ops: The recorded ops (``Report.ops``).
        cuts: Where the forward cut the graph: ``("op" | "layer", index, name,
            autograd was on)``.
        thresholds: ``(low, high)`` ratios to the median gradient norm below and above
            which a parameter's gradient is vanishing or exploding.
    """
    found = _no_gradient_findings(training, layers, ops, cuts)
    found += _nonfinite_findings(training, layers)
    found += _norm_findings(training, thresholds)
    found += _hotspot_findings(training, layers)
    found += _optimizer_findings(training)
    return found


def _module_of(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else ""


def _by_module(params: Sequence[ParamGrad]) -> dict[str, list[ParamGrad]]:
    out: dict[str, list[ParamGrad]] = {}
    for p in params:
        out.setdefault(_module_of(p.name), []).append(p)
    return out




def _groups(keyed: Iterable[tuple[str, Hashable]]) -> dict[tuple[str, Any], list[str]]:
    """Module names by ``(pattern, key)``: repeats across blocks (``h.*.mlp``) together."""
    out: dict[tuple[str, Any], list[str]] = {}
    for name, key in keyed:
        out.setdefault((repeat_key(name), key), []).append(name)
    return out


def _named(pattern: str, members: Sequence[str], type_: str) -> str:
    if len(members) == 1:
        return f"{members[0] or '(root)'} ({type_})"
    return f"{pattern} ({len(members)} {type_} modules)"


def _no_gradient_findings(
    training: TrainingReport,
    layers: Sequence[LayerCall],
    ops: Sequence[OpCall],
    cuts: Sequence[Cut],
) -> list[Finding]:
    missing = [p for p in training.params if p.requires_grad and p.grad is None]
    if not missing:
        return []
    flow = _Flow(training, layers, ops, cuts)
    keyed = []
    for module, params in _by_module(missing).items():
        names = ", ".join(p.name.rsplit(".", 1)[-1] for p in params)
        why = flow.why(module, "it" if len(params) == 1 else "they")
        keyed.append((module, (flow.types.get(module, "?"), names, len(params), *why)))
    out = []
    for (pattern, (type_, names, n, why, fix)), members in _groups(keyed).items():
        each = " in each" if len(members) > 1 else ""
        frozen = (
            f"; if {(pattern if each else members[0]) or 'the model'} is meant to be frozen, "
            f"set requires_grad=False on {'their' if each else 'its'} parameters and leave "
            "them out of the optimizer"
        )
        out.append(
            Finding(
                "no-gradient",
                "warning",
                members[0],
                f"{_named(pattern, members, type_)}: {names} {'requires' if n == 1 else 'require'}"
                f" grad but got no gradient in the backward{each}: {why}.",
                fix + frozen,
            )
        )
    return out


def _finite(norm: float | None) -> bool:
    return norm is None or math.isfinite(norm)


def _kind(norms: Sequence[float | None]) -> str:
    return "NaN" if any(n is not None and math.isnan(n) for n in norms) else "Inf"


def _nonfinite_findings(training: TrainingReport, layers: Sequence[LayerCall]) -> list[Finding]:
    out = []
    ranked = sorted((g for g in training.layers if g.order >= 0), key=lambda g: g.order)
    bad = next((g for g in ranked if not _grads_finite(g)), None)
    if bad is not None:
        out.append(_layer_nonfinite(bad, layers))
    params = [p for p in training.params if p.grad is not None and not _finite(p.grad.norm)]
    if params:
        names = ", ".join(p.name for p in params[:5]) + (", ..." if len(params) > 5 else "")
        what = _kind([p.grad.norm for p in params if p.grad is not None])
        out.append(Finding(
            "grad-non-finite", "error", _module_of(params[0].name),
            f"{len(params)} parameter{'s' if len(params) > 1 else ''} got a gradient holding "
            f"{what}: {names}; the optimizer's step would write it into the weights.",
            "Find where it starts (the first layer in backward order above); guard the step "
            "with torch.nn.utils.clip_grad_norm_(..., error_if_nonfinite=True) or a "
            "GradScaler, which skips steps with non-finite gradients.",
        ))  # fmt: skip
    return out


def _grads_finite(g: LayerGrad) -> bool:
    return all(_finite(m.norm) for m in (*g.outputs, *g.inputs))


def _layer_nonfinite(g: LayerGrad, layers: Sequence[LayerCall]) -> Finding:
    rec = layers[g.index] if g.index < len(layers) else None
    what = f"{rec.label} ({rec.type})" if rec is not None else g.name or "(root)"
    into = _kind([m.norm for m in g.outputs])
    if all(_finite(m.norm) for m in g.outputs):
        where = ("the gradient flowing into its output is finite, the one out of its input "
                 f"holds {_kind([m.norm for m in g.inputs])}: its own backward made it")
    elif g.order == 0:
        where = f"the gradient reaching its output from the loss already holds {into}"
    else:
        where = f"the gradient flowing into its output holds {into}"
    return Finding(
        "grad-non-finite",
        "error",
        g.name,
        f"{what} is the first layer, in backward order, whose gradient is not finite: "
        f"{where}.",
        "Look for sqrt, log, pow or a division at or near 0 in its forward (whose derivative "
        "is infinite there: add an eps, torch.sqrt(x + 1e-12)), or an overflow in float16 "
        "(use bfloat16 or a GradScaler).",
    )


def _norm_findings(training: TrainingReport, thresholds: tuple[float, float]) -> list[Finding]:
    if training.loss == loss_text(None):  # the output's sum: of a model ending in a
        return []  # normalisation, its gradients are round-off (sum(layer_norm(x)) is 0)
    normed = {p.name: p.grad.norm for p in training.params
              if p.grad is not None and p.grad.norm is not None}  # fmt: skip
    usable = sorted(n for n in normed.values() if math.isfinite(n) and n > 0)
    if len(usable) < 3:
        return []
    median = statistics.median(usable)
    low, high = thresholds
    stated = (
        f"thresholds {low:g} and {high:g} x the median {median:.3g} of {len(usable)} "
        "parameters' gradient norms"
    )
    types = {m.name: m.type for m in training.memory.modules}
    out = []
    for kind, word, fix in _NORMS:
        hits = [ParamGrad(name, None, True) for name, n in normed.items() if math.isfinite(n)
                and (n < median * low if word == "vanishing" else n > median * high)]  # fmt: skip
        by_module = _by_module(hits)
        keyed = [(module, types.get(module, "?")) for module in by_module]
        for (pattern, type_), members in _groups(keyed).items():
            params = [p.name for m in members for p in by_module[m]]
            listed = (
                ", ".join(f"{name.rsplit('.', 1)[-1]} {normed[name]:.3g}" for name in params)
                if len(members) == 1
                else f"{len(params)} parameters, {min(normed[q] for q in params):.3g} to "
                f"{max(normed[q] for q in params):.3g}"
            )
            tail = f": {'it barely learns' if len(members) == 1 else 'they barely learn'}"
            out.append(Finding(
                kind, "warning", members[0],
                f"{_named(pattern, members, type_)}: gradient norms {word} ({listed}; "
                f"{stated}){tail if word == 'vanishing' else ''}.",
                fix,
            ))  # fmt: skip
    return out


_NORMS = (
    ("grad-vanishing", "vanishing", "Check the path from it to the loss: a tiny scale or "
     "initialisation, a saturated sigmoid/tanh or dead ReLUs, a missing residual connection "
     "or normalisation."),
    ("grad-exploding", "exploding", "Clip gradients (torch.nn.utils.clip_grad_norm_), lower "
     "the learning rate, or check the scale of this layer's initialisation and add "
     "normalisation."),
)  # fmt: skip




def _hotspot_findings(training: TrainingReport, layers: Sequence[LayerCall]) -> list[Finding]:
    memory = training.memory
    held = memory.category("activations")
    root = next((m for m in memory.modules if m.name == ""), None)
    if held <= 0 or root is None:
        return []
    called = {rec.name for rec in layers}
    groups: dict[tuple[str, str], list[ModuleMemory]] = {}
    for m in memory.modules:
        if m.name and m.name in called and m.checkpoint_saving > 0 and (
            m.activations_total < WRAPPER_SHARE * root.activations_total
        ):
            groups.setdefault((repeat_key(m.name), m.type), []).append(m)
    ranked = sorted(groups.items(), key=lambda kv: -sum(m.checkpoint_saving for m in kv[1]))
    out: list[Finding] = []
    chosen: list[str] = []
    for (pattern, type_), members in ranked:
        saving = sum(m.checkpoint_saving for m in members)
        if len(out) == HOTSPOTS or saving < held / 10:
            break
        nested = any(pattern.startswith(c + ".") or c.startswith(pattern + ".") for c in chosen)
        if not nested:
            chosen.append(pattern)
            out.append(_hotspot(pattern, type_, members, held))
    return out


def _hotspot(pattern: str, type_: str, members: list[ModuleMemory], held: int) -> Finding:
    saved = sum(m.activations_total for m in members)
    saving = sum(m.checkpoint_saving for m in members)
    one = len(members) == 1
    what = f"{_named(pattern, [m.name for m in members], type_)} save{'s' if one else ''}"
    then = "it would free" if one else "each would free"
    return Finding(
        "activation-hotspot",
        "info",
        members[0].name,
        f"{what} {format_size(saved)} for backward ({saved / held:.0%} of the "
        f"{format_size(held)} held at the end of the forward); checkpointing {then} "
        f"{format_size(saving)}{'' if one else ' in all'}, at the cost of running its forward "
        "again in the backward.",
        "If memory is short: torch.utils.checkpoint.checkpoint(module, x, use_reentrant=False) "
        "in the parent's forward.",
    )


def _optimizer_findings(training: TrainingReport) -> list[Finding]:
    found = [
        Finding(
            "optimizer-frozen", "warning", _module_of(name),
            f"{name} has requires_grad=False but the optimizer holds it: it never changes, "
            "and AdamW-style optimizers still keep state for it.",
            fix="leave it out of the optimizer: torch.optim.AdamW(p for p in "
            "model.parameters() if p.requires_grad)",
        )
        for name in training.frozen_in_optimizer
    ]
    found += [
        Finding(
            "optimizer-left-out", "warning", _module_of(name),
            f"{name} requires grad and gets one, but the optimizer does not hold it: "
            "it is never updated.",
            fix="build the optimizer from model.parameters() (or add it to a param group)",
        )
        for name in training.left_out_of_optimizer
    ]
    return found
