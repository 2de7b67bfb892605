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
  or above the median of all (``THRESHOLDS``);
* ``activation-hotspot``: the modules that save most for backward, with what
  checkpointing each would free;
* ``optimizer-frozen`` / ``optimizer-left-out``: parameters with
  ``requires_grad=False`` handed to the optimizer, trainable ones left out of it.

May import: ``liveness.py``, ``records.py``, ``training/records.py``, ``units.py``.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Sequence

from inspectnn.liveness import live_calls
from inspectnn.records import Finding, LayerCall, OpCall, parse_source
from inspectnn.training.records import LayerGrad, ModuleMemory, ParamGrad, TrainingReport
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

Cut = tuple[str, int, str, bool]
_Node = tuple[str, int]  # ("layers" | "ops", index)


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
    found += _norm_findings(training.params, thresholds)
    found += _hotspot_findings(training, layers)
    found += _optimizer_findings(training)
    return found


def _module_of(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else ""


def _local(param: str) -> str:
    return param.rsplit(".", 1)[-1]


def _by_module(params: Sequence[ParamGrad]) -> dict[str, list[ParamGrad]]:
    out: dict[str, list[ParamGrad]] = {}
    for p in params:
        out.setdefault(_module_of(p.name), []).append(p)
    return out



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
    out = []
    for module, params in _by_module(missing).items():
        names = ", ".join(_local(p.name) for p in params)
        held = f"{names} {'requires' if len(params) == 1 else 'require'}"
        why, fix = flow.why(module, "it" if len(params) == 1 else "they")
        frozen = (
            f"; if {module or 'the model'} is meant to be frozen, set requires_grad=False "
            "on its parameters and leave them out of the optimizer"
        )
        out.append(
            Finding(
                "no-gradient",
                "warning",
                module,
                f"{module or '(root)'} ({flow.types.get(module, '?')}): {held} grad but got no "
                f"gradient in the backward: {why}.",
                fix + frozen,
            )
        )
    return out


class _Flow:
    """The recorded dataflow, read for why a module's parameters got no gradient."""

    def __init__(
        self,
        training: TrainingReport,
        layers: Sequence[LayerCall],
        ops: Sequence[OpCall],
        cuts: Sequence[Cut],
    ) -> None:
        self.layers, self.ops = layers, ops
        self.types = {m.name: m.type for m in training.memory.modules}
        self.types.update((rec.name, rec.type) for rec in layers)
        self.calls: dict[str, list[int]] = {}
        for rec in layers:
            self.calls.setdefault(rec.name, []).append(rec.index)
        traced = bool(layers) and any(m.source for m in layers[0].outputs)
        self.live = live_calls(layers, ops)[0] if traced else None
        self.cuts = {("layers" if kind == "layer" else "ops", i): (name, on)
                     for kind, i, name, on in cuts}  # fmt: skip
        self.grads = {g.index: g for g in training.layers}
        self.users: dict[_Node, list[_Node]] = {}
        calls: list[tuple[str, LayerCall | OpCall]] = [("layers", r) for r in layers]
        calls += [("ops", op) for op in ops]
        for kind, call in calls:  # a layer's output made inside it: the layer passes it on
            for m in (*call.inputs, *(call.outputs if kind == "layers" else ())):
                parsed = parse_source(m.source)
                if parsed is not None and parsed[0] != "inputs":
                    self.users.setdefault(parsed[:2], []).append((kind, call.index))

    def why(self, module: str, they: str) -> tuple[str, str]:
        """Why ``module``'s parameters (``they``: ``"it"`` or ``"they"``) got no gradient,
        and the fix."""
        calls = self.calls.get(module, [])
        if not calls:
            return (
                "it was never called in the forward",
                "call it in forward, or delete it",
            )
        if self.live is not None and not any(i in self.live for i in calls):
            return (
                "its output never reaches the model's output",
                "use its output on the path to the model's output, or remove the call",
            )
        own = [("layers", i) for i in calls if ("layers", i) in self.cuts]
        direct = [  # a cut op of its own forward given a tensor of no traced origin
            ("ops", i)
            for kind, i in self.cuts
            if kind == "ops" and self.ops[i].parent in calls
            and any(m.is_tensor and m.source is None for m in self.ops[i].inputs)
        ]
        path = self._cuts_after(calls)
        for how, found in (("own", own), ("direct", direct), ("path", path)):
            if found:
                return self._cut_text(found, how, they)
        if any(self.grads[i].outputs for i in calls if i in self.grads):
            return (
                f"its output got a gradient, but {they} {'was' if they == 'it' else 'were'} "
                "not used in a differentiable way (read through .data or a detached copy, "
                "or not used at all)",
                "use the parameter itself in forward (not .data or .detach())",
            )
        return (
            "its output reaches the model's output, but no gradient came back to it "
            "(the loss does not depend on it, or the path is cut where the trace does "
            "not see: in the loss, or in untraced code)",
            "make the loss depend on this output without .detach(), .item() or .data",
        )

    def _cuts_after(self, calls: list[int]) -> list[_Node]:
        """The cuts the module's outputs flow into, first reached first."""
        todo = deque(("layers", i) for i in calls)
        seen = set(todo)
        found: list[_Node] = []
        while todo:
            for user in self.users.get(todo.popleft(), ()):
                if user in seen:
                    continue
                seen.add(user)
                (found if user in self.cuts else todo).append(user)
        return found

    def _cut_text(self, found: list[_Node], how: str, they: str) -> tuple[str, str]:
        descriptions = []
        for node in dict.fromkeys(found):
            name, on = self.cuts[node]
            kind, i = node
            where = (
                f"{self.layers[i].label} ({self.layers[i].type})"
                if kind == "layers"
                else f"{name} in {self.ops[i].module or '(root)'}'s forward"
            )
            descriptions.append(where + ("" if on else " under torch.no_grad()"))
        first = found[0]
        name, on = self.cuts[first]
        if how == "own":
            why = "it ran under torch.no_grad()" if not on else (
                f"its output does not require grad ({descriptions[0]} detaches it)")
        elif how == "direct":
            why = (f"{they} {'is' if they == 'it' else 'are'} read through {descriptions[0]}, "
                   "which takes the value off the autograd graph")
        else:
            why = "the path from its output to the model's output is cut at " + "; ".join(
                descriptions[:3])
        return why, _cut_fix(first[0], name, on)


_NO_GRAD_FIX = "move it out of the torch.no_grad() (or torch.inference_mode()) block"


def _cut_fix(kind: str, name: str, on: bool) -> str:
    """What to do about one cut."""
    if not on:
        return _NO_GRAD_FIX
    if kind == "layers":
        return f"return {name}'s result without detaching it (no .detach() or .data inside)"
    short = name.rsplit(".", 1)[-1]
    if short in ("detach", "detach_"):
        return "remove the .detach()"
    if short == "data":
        return "use the tensor itself instead of .data"
    return (
        f"{short} has no gradient (an integer or piecewise-constant result): use a "
        "differentiable op instead (softmax instead of argmax, a straight-through "
        "estimator), or compute the loss from the values before it (the logits)"
    )



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
        out.append(
            Finding(
                "grad-non-finite",
                "error",
                _module_of(params[0].name),
                f"{len(params)} parameter{'s' if len(params) > 1 else ''} got a gradient "
                f"holding {what}: {names}; the optimizer's step would write it into the "
                "weights.",
                "Find where it starts (the first layer in backward order above); guard the "
                "step with torch.nn.utils.clip_grad_norm_(..., error_if_nonfinite=True) or "
                "a GradScaler, which skips steps with non-finite gradients.",
            )
        )
    return out


def _grads_finite(g: LayerGrad) -> bool:
    return all(_finite(m.norm) for m in (*g.outputs, *g.inputs))


def _layer_nonfinite(g: LayerGrad, layers: Sequence[LayerCall]) -> Finding:
    rec = layers[g.index] if g.index < len(layers) else None
    what = f"{rec.label} ({rec.type})" if rec is not None else g.name or "(root)"
    out_ok = all(_finite(m.norm) for m in g.outputs)
    if out_ok:
        where = (
            f"the gradient flowing into its output is finite, the one out of its input holds "
            f"{_kind([m.norm for m in g.inputs])}: its own backward made it"
        )
    elif g.order == 0:
        where = (
            f"the gradient reaching its output from the loss already holds "
            f"{_kind([m.norm for m in g.outputs])}"
        )
    else:
        where = f"the gradient flowing into its output holds {_kind([m.norm for m in g.outputs])}"
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



def _norm_findings(
    params: Sequence[ParamGrad], thresholds: tuple[float, float]
) -> list[Finding]:
    normed = [(p, p.grad.norm) for p in params if p.grad is not None and p.grad.norm is not None]
    usable = sorted(n for _, n in normed if math.isfinite(n) and n > 0)
    if len(usable) < 3:
        return []
    mid = len(usable) // 2
    median = usable[mid] if len(usable) % 2 else (usable[mid - 1] + usable[mid]) / 2
    low, high = thresholds
    stated = (
        f"thresholds {low:g} and {high:g} x the median {median:.3g} of {len(usable)} "
        "parameters' gradient norms"
    )
    out = []
    for kind in ("grad-vanishing", "grad-exploding"):
        low_side = kind == "grad-vanishing"
        hits = [(p, n) for p, n in normed if math.isfinite(n)
                and (n < median * low if low_side else n > median * high)]  # fmt: skip
        for module, members in _by_module([p for p, _ in hits]).items():
            norms = {p.name: n for p, n in hits}
            listed = ", ".join(f"{_local(p.name)} {norms[p.name]:.3g}" for p in members)
            out.append(_norm_finding(kind, module, listed, stated))
    return out


def _norm_finding(kind: str, module: str, listed: str, stated: str) -> Finding:
    if kind == "grad-vanishing":
        return Finding(
            kind,
            "warning",
            module,
            f"{module or '(root)'}'s gradient norms are vanishing ({listed}; {stated}): "
            "it barely learns.",
            "Check the path from it to the loss: a tiny scale or initialisation, a saturated "
            "sigmoid/tanh or dead ReLUs, a missing residual connection or normalisation.",
        )
    return Finding(
        kind,
        "warning",
        module,
        f"{module or '(root)'}'s gradient norms are exploding ({listed}; {stated}).",
        "Clip gradients (torch.nn.utils.clip_grad_norm_), lower the learning rate, or check "
        "the scale of this layer's initialisation and add normalisation.",
    )


_WRAPPER = 0.9  # a module saving this share of the model's activations wraps the model


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
            m.activations_total < _WRAPPER * root.activations_total
        ):
            pattern = re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.|$)", "*", m.name)
            groups.setdefault((pattern, m.type), []).append(m)
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
    share = f"{saved / held:.0%} of the {format_size(held)} held at the end of the forward"
    if len(members) == 1:
        what = f"{members[0].name} ({type_}) saves {format_size(saved)} for backward ({share})"
        then = f"checkpointing it would free {format_size(saving)}"
    else:
        what = (
            f"{pattern} ({len(members)} {type_} modules) save {format_size(saved)} for "
            f"backward ({share})"
        )
        then = f"checkpointing each would free {format_size(saving)} in all"
    return Finding(
        "activation-hotspot",
        "info",
        members[0].name,
        f"{what}; {then}, at the cost of running its forward again in the backward.",
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
