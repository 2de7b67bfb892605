"""From the raw trace to the Report's parts: ``_Facts``, ``_assemble``, ``_findings``.

``_Facts`` reads what the checks need from the model right after the forward
(mixed dtypes, fused modules' children, never-called modules' unused parameters,
the per-parameter rows, autocast on meta, an eval run of a training model), so
that the lazily built Report holds names, counts and flags instead of the model.
``_assemble`` (the Report's deferred build) turns the detached tracer into
records, gathers every check's findings (``_findings``; every ``Finding`` is built
in ``checks/``) and sums the totals.

Imports ``checks/``, ``forward.py``, ``params.py``, ``records.py``, ``summary.py``
and ``trace/tracer.py``; used by ``api.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from inspectnn.checks import (
    batch_findings,
    dead_findings,
    fast_path_findings,
    mixed_tensor_findings,
    promotion_findings,
    uncalled_findings,
    uncounted_findings,
    uncounted_ops,
    violation_findings,
)
from inspectnn.checks.autocast import autocast_findings
from inspectnn.checks.coverage import FUSED
from inspectnn.checks.dataflow import CONTAINER_NAMES
from inspectnn.checks.device_memory import device_memory_findings
from inspectnn.checks.gradients import gradient_findings
from inspectnn.checks.modes import mode_findings, mode_sensitive
from inspectnn.checks.numerics import nonfinite_findings
from inspectnn.checks.recurrent import batch_first_findings
from inspectnn.checks.sequence import sequence_findings
from inspectnn.checks.sharding import sharding_findings
from inspectnn.checks.state import buffer_findings, unregistered_findings, written_findings
from inspectnn.forward import _named_tensors, _Run
from inspectnn.params import ModelCounts
from inspectnn.records import SEVERITIES, Finding, LayerCall, OpCall, Parts, Totals
from inspectnn.summary import param_metas, raw_params
from inspectnn.trace.tracer import Tracer
from inspectnn.training.records import LayerGrad, TrainingReport
from inspectnn.training.step import StepOptions, StepResult, loss_text


def _activation_bytes(layers: Sequence[LayerCall]) -> int:
    has_child = {rec.parent for rec in layers}
    total = 0
    for rec in layers:
        if rec.index in has_child:
            continue
        for t in rec.outputs:
            if t.dtype is not None:
                dtype = getattr(torch, t.dtype, None)
                size = dtype.itemsize if isinstance(dtype, torch.dtype) else 4
                total += t.held_numel * size  # a DTensor: this rank's shard
    return total


class _Facts:
    """What the checks need from the model itself, read right after the forward.

    Everything here is names, counts and flags: a lazily built Report holds it
    instead of the model. The common case (no mixed dtypes, no fused module,
    every module called) reads almost nothing.
    """

    def __init__(
        self,
        tracer: Tracer,
        counts: ModelCounts,
        run: _Run,
        *,
        walk: list[tuple[str, nn.Module]],
        training: bool,
        failed: int | None,
        meta: bool,
        amp: torch.dtype | None = None,
        device_memory: int | None = None,
        notes: list[Finding] | None = None,
    ) -> None:
        """Read the facts.

        Args:
            tracer: The tracer of the forward, not yet detached.
            counts: The model's parameter counts.
            run: The forward that ran (the model, its traced modules, autograd, writes).
            walk: Every ``(path, module)``, a module held twice listed twice.
            training: The mode the forward ran in.
            failed: The index of the call the forward failed in, or None.
            meta: The forward ran on meta tensors.
            amp: The autocast dtype the forward ran under (``amp=``), or None.
            device_memory: The device's memory in bytes (``device_memory=``), or None.
            notes: Findings made before the forward (``distributed/ddp.py``'s
                ``ddp-batch``), reported with the others.
        """
        self.notes = list(notes or ())
        named = run.named
        self.amp = str(amp).removeprefix("torch.") if amp is not None else None
        self.training = training
        self.failed = failed
        self.with_grad = run.with_grad
        self.written = run.written
        violations = tracer.violations
        failed_kinds = {violations[failed].kind} if failed in violations else set()
        self.mixed: list[Finding] = []
        if not counts.uniform:
            self.mixed = mixed_tensor_findings(_named_tensors(walk), failed_kinds)
        self.children = {
            name: [
                f"{name}.{c}" if name else c
                for c, m in mod._modules.items()
                if m is not None and not isinstance(m, _CONTAINERS)
            ]
            for name, mod in named
            if type(mod).__name__ in FUSED
        }
        self.modules: list[tuple[str, str, int]] = []
        called = tracer.called()
        if failed is None and any(  # some module never ran, and it is not a mere container
            id(m) not in called and type(m).__name__ not in CONTAINER_NAMES for _, m in named
        ):
            self.modules = _unused_params(named, walk, called)
        # the model was in training mode (it is again) and ran in eval mode
        self.mode_note = run.model.training and not training and mode_sensitive(named)
        # the model's own parameters, for the table's per-parameter rows (none is lazy:
        # counting refused those); made into records when the report is read
        self.weights = {name: raw_params(mod, lazy=False) for name, mod in named if mod._parameters}
        # on a sharded rank, the types of the modules holding parameters (checks/sharding.py)
        self.types = (
            {name: type(mod).__name__ for name, mod in named if mod._parameters}
            if counts.sharded
            else {}
        )
        self.device_memory = device_memory
        # with amp on meta the forward ran on fake CPU tensors, where autocast does cast
        self.autocast = autocast_findings(named, called) if meta and amp is None else []


def training_report(tracer: Tracer, result: StepResult, options: StepOptions) -> TrainingReport:
    """The training step's report: its memory, and the gradients each call and parameter got."""
    watch = tracer.grads
    assert watch is not None
    layers = tuple(
        LayerGrad(
            idx,
            name,
            tuple(watch.outputs.get(idx, ())),
            tuple(watch.inputs.get(idx, ())),
            watch.order.get(idx, -1),
        )
        for idx, (name, _, _) in enumerate(tracer.calls())
    )
    return TrainingReport(
        loss=loss_text(options.loss),
        loss_value=result.loss_value,
        memory=result.memory,
        layers=layers,
        params=result.params,
        frozen_in_optimizer=result.frozen_in_optimizer,
        left_out_of_optimizer=result.left_out_of_optimizer,
    )


def _assemble(
    tracer: Tracer, counts: ModelCounts, facts: _Facts, training: TrainingReport | None = None
) -> Parts:
    """Records, findings and totals from the raw trace: run on the report's first use."""
    layers, ops = tracer.build(counts)
    weights = {name: param_metas(raw) for name, raw in facts.weights.items() if raw}
    layers = tuple(
        replace(rec, weights=weights[rec.name]) if rec.name in weights else rec for rec in layers
    )
    findings = _findings(tracer, layers, ops, facts, training)
    if facts.types:  # a sharded rank: every module's parameters, called or not
        findings += tuple(sharding_findings(weights, facts.types))
        findings += tuple(sequence_findings(layers))
    flops = sum(rec.flops for rec in layers if rec.parent < 0) + tracer.outside_flops
    totals = Totals(
        params=counts.params,
        trainable_params=counts.trainable,
        buffers=counts.buffers,
        param_bytes=counts.param_bytes,
        buffer_bytes=counts.buffer_bytes,
        activation_bytes=_activation_bytes(layers),
        flops=flops,
        uncounted_ops=uncounted_ops(tuple(tracer.uncounted)),
        sharded=counts.sharded,
        local_params=counts.local_params if counts.sharded else None,
    )
    memory = training.memory if training is not None else None
    findings += tuple(
        device_memory_findings(facts.device_memory, totals, memory, facts.failed is not None)
    )
    return totals, layers, ops, tuple(sorted(findings, key=_most_severe_first))


def _findings(
    tracer: Tracer,
    layers: tuple[LayerCall, ...],
    ops: tuple[OpCall, ...],
    facts: _Facts,
    training: TrainingReport | None = None,
) -> tuple[Finding, ...]:
    """Every check's findings, most severe first."""
    found: list[Finding] = [
        *violation_findings(layers, tracer.violations),
        *facts.mixed,
        *promotion_findings(layers, autocast=facts.amp),
        *fast_path_findings(layers, facts.children, facts.training),
        *facts.autocast,
        *uncounted_findings(layers, tuple(tracer.uncounted)),
    ]
    found += unregistered_findings(list(tracer.unregistered.values()), ops)
    found += buffer_findings(layers, tracer.buffer_writes)
    if facts.failed is None:
        found += batch_findings(layers, ops) + dead_findings(layers, ops)
        found += batch_first_findings(layers, ops)
        if facts.modules:
            found += uncalled_findings(layers, facts.modules)
    found += nonfinite_findings(layers, tracer.nonfinite)
    found += written_findings(facts.written)
    found += mode_findings(with_grad=facts.with_grad, eval_of_training=facts.mode_note)
    found += facts.notes
    if training is not None:
        cuts = tracer.grads.cuts if tracer.grads is not None else []
        found += gradient_findings(training, layers, ops, cuts)
    found.sort(key=_most_severe_first)
    return tuple(found)


def _most_severe_first(finding: Finding) -> int:
    """Sort key: errors, then warnings, then infos (stable: ties keep their order)."""
    return -SEVERITIES.index(finding.severity)


_CONTAINERS = (nn.ModuleList, nn.ModuleDict)


def _unused_params(
    named: list[tuple[str, nn.Module]], walk: list[tuple[str, nn.Module]], called: set[int]
) -> list[tuple[str, str, int]]:
    """``(path, type, parameters used by no called module)`` of every module.

    A tied weight (T5's ``shared`` is also ``encoder.embed_tokens``) is used when any
    module holding it ran, so it does not make its never-called holder a warning.
    The parameters inside a called TorchScript module all ran.
    """
    used: set[int] = set()
    for _, c in named:
        if id(c) in called:
            scripted = isinstance(c, torch.jit.ScriptModule)
            own = c.parameters() if scripted else c._parameters.values()
            used.update(id(p) for p in own if p is not None)
    unused = _UnusedCounter(walk, used).counts
    out = []
    for name, m in named:
        # Only never-called modules are reported; the rest need no count. A container's
        # subtree is its children's, reported on their own if uncalled.
        skip = id(m) in called or isinstance(m, _CONTAINERS)
        out.append((name, type(m).__name__, 0 if skip else unused[id(m)]))
    return out


class _UnusedCounter:
    """Unused parameter elements of every module's subtree, in one pass over the modules.

    Each module's count is its own unused parameters plus its children's counts, the
    children done first (``walk`` backwards). A parameter held in more than one place
    (tied, or in a module that sits twice in the tree) is kept by identity instead, in a
    set passed up the tree, so that a subtree counts it once. Walking each module's
    whole subtree instead is quadratic in the depth.
    """

    def __init__(self, walk: list[tuple[str, nn.Module]], used: set[int]) -> None:
        places: dict[int, int] = {}
        for _, mod in walk:
            for p in mod._parameters.values():
                if p is not None:
                    places[id(p)] = places.get(id(p), 0) + 1
        self.sizes: dict[int, int] = {}  # id -> numel of each unused parameter in two places
        done: dict[int, tuple[int, frozenset[int]]] = {}
        for _, mod in reversed(walk):
            if id(mod) not in done:
                done[id(mod)] = self._count(mod, done, used, places)
        self.counts = {
            mid: n + sum(self.sizes[pid] for pid in tied) for mid, (n, tied) in done.items()
        }

    def _count(
        self,
        mod: nn.Module,
        done: dict[int, tuple[int, frozenset[int]]],
        used: set[int],
        places: dict[int, int],
    ) -> tuple[int, frozenset[int]]:
        """(unused elements held in one place, ids of those held in several) of a subtree."""
        n = 0
        tied: frozenset[int] = frozenset()
        for p in mod._parameters.values():
            if p is None or id(p) in used:
                continue
            if places[id(p)] > 1:
                self.sizes[id(p)] = p.numel()
                tied = tied | {id(p)}
            else:
                n += p.numel()
        for child in mod._modules.values():
            if child is not None:
                child_n, child_tied = done[id(child)]
                n += child_n
                if child_tied:
                    tied = tied | child_tied
        return n, tied
