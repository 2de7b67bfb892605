"""Why a module's parameters got no gradient: the recorded dataflow walked to the cut.

``_Flow`` reads the training step's records (which calls ran, which reach the model's
output, the sources of every input) and ``trace/grads.py``'s cuts, and says for one
module why its parameters got no gradient and what to do (``_cut_fix``): the module
never called, its output unused, run under ``torch.no_grad()``, or the path from its
output cut by ``.detach()``, ``.data``, an integer result or an op under ``no_grad``.
Read by ``checks/gradients.py``'s ``no-gradient`` finding.

May import: ``liveness.py``, ``records.py``, ``trace/grads.py`` (``Cut``),
``training/records.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from inspectnn.liveness import live_calls
from inspectnn.records import LayerCall, OpCall, parse_source
from inspectnn.trace.grads import Cut
from inspectnn.training.records import TrainingReport

_Node = tuple[str, int]  # ("layers" | "ops", index)


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
