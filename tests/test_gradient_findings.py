"""The findings only a backward shows (``checks/gradients.py``), through ``inspect()``
with ``backward=True``.

``no-gradient`` (with why: never called, output unused, ``torch.no_grad()``, the op
that cut the path), ``grad-non-finite``, ``grad-vanishing`` / ``grad-exploding``,
``activation-hotspot``, ``optimizer-frozen`` / ``optimizer-left-out``; none of them
for a plain forward.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import Tensor, nn

import inspectnn as inn
from inspectnn.checks.gradients import THRESHOLDS, gradient_findings
from inspectnn.records import Finding
from inspectnn.report import Report
from inspectnn.units import format_size

GRADIENT_KINDS = {
    "no-gradient",
    "grad-non-finite",
    "grad-vanishing",
    "grad-exploding",
    "activation-hotspot",
    "optimizer-frozen",
    "optimizer-left-out",
}
FROZEN = "; if {} is meant to be frozen, set requires_grad=False on {} parameters and leave them out of the optimizer"  # noqa: E501
NO_GRAD_FIX = "move it out of the torch.no_grad() (or torch.inference_mode()) block"


def _kind(report: Report, kind: str) -> list[Finding]:
    return [f for f in report.findings if f.kind == kind]


class Cut(nn.Module):
    """``a``'s parameters get no gradient, in the way ``how`` names."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.a = nn.Linear(4, 4)
        self.emb = nn.Embedding(4, 4) if how == "argmax" else None
        self.b = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        how = self.how
        h = x
        if how == "unused":
            self.a(x)
        elif how == "detach":
            h = self.a(x).detach()
        elif how == "data":
            h = self.a(x).data
        elif how == "argmax":
            assert self.emb is not None
            h = self.emb(self.a(x).argmax(-1))
        elif how == "no_grad op":
            h = self.a(x)
            with torch.no_grad():
                h = h * 2
        elif how == "no_grad layer":
            with torch.no_grad():
                h = self.a(x)
        return self.b(h)


CUT_AT = "the path from its output to the model's output is cut at "
ARGMAX_FIX = (
    "argmax has no gradient (an integer or piecewise-constant result): use a differentiable "
    "op instead (softmax instead of argmax, a straight-through estimator), or compute the "
    "loss from the values before it (the logits)"
)


@pytest.mark.parametrize(
    ("how", "why", "fix"),
    [
        ("never", "it was never called in the forward", "call it in forward, or delete it"),
        ("unused", "its output never reaches the model's output",
         "use its output on the path to the model's output, or remove the call"),
        ("detach", CUT_AT + "Tensor.detach in (root)'s forward", "remove the .detach()"),
        ("data", CUT_AT + "Tensor.data in (root)'s forward",
         "use the tensor itself instead of .data"),
        ("argmax", CUT_AT + "Tensor.argmax in (root)'s forward", ARGMAX_FIX),
        ("no_grad op", CUT_AT + "Tensor.mul in (root)'s forward under torch.no_grad()",
         NO_GRAD_FIX),
        ("no_grad layer", "it ran under torch.no_grad()", NO_GRAD_FIX),
    ],
)  # fmt: skip
def test_no_gradient_says_why_and_the_fix(how: str, why: str, fix: str) -> None:
    report = inn.inspect(Cut(how), torch.randn(3, 4), backward=True)
    assert _kind(report, "no-gradient") == [
        Finding(
            "no-gradient",
            "warning",
            "a",
            f"a (Linear): weight, bias require grad but got no gradient in the backward: {why}.",
            fix + FROZEN.format("a", "its"),
        )
    ]
    got = {p.name for p in report.training.params if p.grad is None}  # type: ignore[union-attr]
    assert got == {"a.weight", "a.bias"}


def test_no_gradient_follows_the_path_through_nested_calls_and_works_on_meta() -> None:
    class Body(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.head(self.body(x).detach())

    for device in (None, "meta"):
        report = inn.inspect(Body(), torch.randn(3, 4), backward=True, device=device)
        assert _kind(report, "no-gradient") == [
            Finding(
                "no-gradient",
                "warning",
                "body.0",
                "body.0 (Linear): weight, bias require grad but got no gradient in the "
                f"backward: {CUT_AT}Tensor.detach in (root)'s forward.",
                "remove the .detach()" + FROZEN.format("body.0", "its"),
            )
        ]


def test_no_gradient_of_a_parameter_read_off_the_graph() -> None:
    class Scaled(nn.Module):
        def __init__(self, how: str) -> None:
            super().__init__()
            self.how = how
            self.lin = nn.Linear(4, 4)
            self.scale = nn.Parameter(torch.ones(4))

        def forward(self, x: Tensor) -> Tensor:
            if self.how == "data":
                return self.lin(x) * self.scale.data
            if self.how == "detach":
                return self.lin(x) * self.scale.detach()
            return self.lin(x)  # scale never used

    head = "(root) (Scaled): scale requires grad but got no gradient in the backward: "
    frozen = FROZEN.format("the model", "its")
    for how, fix in (("data", "use the tensor itself instead of .data"),
                     ("detach", "remove the .detach()")):  # fmt: skip
        report = inn.inspect(Scaled(how), torch.randn(3, 4), backward=True)
        assert _kind(report, "no-gradient") == [
            Finding(
                "no-gradient",
                "warning",
                "",
                f"{head}it is read through Tensor.{how} in (root)'s forward, which takes "
                "the value off the autograd graph.",
                fix + frozen,
            )
        ]
    report = inn.inspect(Scaled("none"), torch.randn(3, 4), backward=True)
    assert _kind(report, "no-gradient") == [
        Finding(
            "no-gradient",
            "warning",
            "",
            f"{head}its output got a gradient, but it was not used in a differentiable way "
            "(read through .data or a detached copy, or not used at all).",
            "use the parameter itself in forward (not .data or .detach())" + frozen,
        )
    ]


def test_no_gradient_of_repeated_blocks_is_one_finding() -> None:
    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

        def forward(self, x: Tensor) -> Tensor:
            with torch.no_grad():
                x = self.blocks[1](self.blocks[0](x))
            return self.blocks[2](x)

    report = inn.inspect(Stack(), torch.randn(3, 4), backward=True)
    assert _kind(report, "no-gradient") == [
        Finding(
            "no-gradient",
            "warning",
            "blocks.0",
            "blocks.* (2 Linear modules): weight, bias require grad but got no gradient in "
            "the backward in each: it ran under torch.no_grad().",
            NO_GRAD_FIX + FROZEN.format("blocks.*", "their"),
        )
    ]


def test_no_gradient_is_silent_for_frozen_parameters_and_plain_forwards() -> None:
    model = Cut("detach")
    for p in model.a.parameters():
        p.requires_grad_(False)
    assert _kind(inn.inspect(model, torch.randn(3, 4), backward=True), "no-gradient") == []
    for how in ("never", "detach", "no_grad layer"):
        plain = inn.inspect(Cut(how), torch.randn(3, 4))
        assert not {f.kind for f in plain.findings} & GRADIENT_KINDS


class SqrtOf(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sqrt(x)


class Zeroed(nn.Module):
    """``sqrt(h * h)`` at ``h == 0``: an Inf gradient out of ``sqrt``, NaN into ``a``."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        nn.init.zeros_(self.a.weight)
        nn.init.zeros_(self.a.bias)
        self.sqrt = SqrtOf()
        self.head = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.a(x)
        return self.head(self.sqrt(h * h))


def test_grad_non_finite_names_the_first_layer_in_backward_order_and_the_parameters() -> None:
    report = inn.inspect(Zeroed(), torch.randn(3, 4), backward=True)
    assert _kind(report, "grad-non-finite") == [
        Finding(
            "grad-non-finite",
            "error",
            "sqrt",
            "sqrt (SqrtOf) is the first layer, in backward order, whose gradient is not "
            "finite: the gradient flowing into its output is finite, the one out of its input "
            "holds Inf: its own backward made it.",
            "Look for sqrt, log, pow or a division at or near 0 in its forward (whose "
            "derivative is infinite there: add an eps, torch.sqrt(x + 1e-12)), or an overflow "
            "in float16 (use bfloat16 or a GradScaler).",
        ),
        Finding(
            "grad-non-finite",
            "error",
            "a",
            "2 parameters got a gradient holding NaN: a.weight, a.bias; the optimizer's step "
            "would write it into the weights.",
            "Find where it starts (the first layer in backward order above); guard the step "
            "with torch.nn.utils.clip_grad_norm_(..., error_if_nonfinite=True) or a "
            "GradScaler, which skips steps with non-finite gradients.",
        ),
    ]
    assert report.findings[0].kind == "grad-non-finite"  # errors first
    meta = inn.inspect(Zeroed(), torch.randn(3, 4), backward=True, device="meta")
    assert _kind(meta, "grad-non-finite") == []  # no norms on meta


def test_grad_non_finite_from_the_loss_itself() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    report = inn.inspect(model, torch.randn(3, 4), backward=True,
                         loss=lambda out: torch.log(out * 0).sum())  # fmt: skip
    first = _kind(report, "grad-non-finite")[0]
    assert first.layer == "2"  # the last layer's output is the model's: its hook came first
    assert first.message == (
        "2 (Linear) is the first layer, in backward order, whose gradient is not finite: "
        "the gradient reaching its output from the loss already holds NaN."
    )


class Scales(nn.Module):
    """A deep tanh MLP, with two side branches scaled by 1e-6 and one by 1e6."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*(m for _ in range(3) for m in (nn.Linear(8, 8), nn.Tanh())))
        self.head = nn.Linear(8, 2)
        self.tiny = nn.ModuleList([nn.Linear(8, 2), nn.Linear(8, 2)])
        self.huge = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        tiny = self.tiny[0](x) + self.tiny[1](x)
        return self.head(self.body(x)) + 1e-6 * tiny + 1e6 * self.huge(x)


def _norms(report: Report) -> dict[str, float]:
    assert report.training is not None
    return {p.name: p.grad.norm for p in report.training.params
            if p.grad is not None and p.grad.norm is not None}  # fmt: skip


def test_vanishing_and_exploding_gradients_against_the_median() -> None:
    torch.manual_seed(0)
    report = inn.inspect(Scales(), torch.randn(5, 8), loss=nn.MSELoss(), target=torch.zeros(5, 2))
    norms = _norms(report)
    median = statistics.median(norms.values())
    stated = f"thresholds 0.001 and 1000 x the median {median:.3g} of 14 parameters' gradient norms"
    tiny = [n for name, n in norms.items() if name.startswith("tiny.")]
    tiny_range = f"4 parameters, {min(tiny):.3g} to {max(tiny):.3g}"
    huge = f"weight {norms['huge.weight']:.3g}, bias {norms['huge.bias']:.3g}"
    assert _kind(report, "grad-vanishing") == [  # the repeated modules are one finding
        Finding(
            "grad-vanishing",
            "warning",
            "tiny.0",
            f"tiny.* (2 Linear modules): gradient norms vanishing ({tiny_range}; {stated}): "
            "they barely learn.",
            "Check the path from it to the loss: a tiny scale or initialisation, a saturated "
            "sigmoid/tanh or dead ReLUs, a missing residual connection or normalisation.",
        )
    ]
    assert _kind(report, "grad-exploding") == [
        Finding(
            "grad-exploding",
            "warning",
            "huge",
            f"huge (Linear): gradient norms exploding ({huge}; {stated}).",
            "Clip gradients (torch.nn.utils.clip_grad_norm_), lower the learning rate, or "
            "check the scale of this layer's initialisation and add normalisation.",
        )
    ]
    assert THRESHOLDS == (1e-3, 1e3)
    training = report.training
    assert training is not None
    wide = gradient_findings(training, report.layers, report.ops, [], thresholds=(1e-12, 1e12))
    assert not {f.kind for f in wide} & {"grad-vanishing", "grad-exploding"}
    narrow = gradient_findings(training, report.layers, report.ops, [], thresholds=(0.5, 2.0))
    flagged = {f.layer for f in narrow if f.kind in ("grad-vanishing", "grad-exploding")}
    assert {"tiny.0", "huge"} < flagged
    assert all("thresholds 0.5 and 2 x the median" in f.message
               for f in narrow if f.kind in ("grad-vanishing", "grad-exploding"))  # fmt: skip


def test_norms_only_with_a_loss_given() -> None:
    # the sum of the output of a model ending in a normalisation does not depend on its
    # input: the gradients before it are round-off, no sign of vanishing
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.LayerNorm(8))
    report = inn.inspect(model, torch.randn(5, 8), backward=True)
    assert report.training is not None and report.training.loss == "sum of the output"
    assert not {f.kind for f in report.findings} & {"grad-vanishing", "grad-exploding"}
    assert not {f.kind for f in inn.inspect(Scales(), torch.randn(5, 8), backward=True).findings
                } & {"grad-vanishing", "grad-exploding"}  # fmt: skip


def test_norms_need_three_parameters_with_a_norm() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 2)

        def forward(self, x: Tensor) -> Tensor:
            return 1e6 * self.lin(x)

    report = inn.inspect(Two(), torch.randn(5, 8), loss=nn.MSELoss(), target=torch.zeros(5, 2))
    assert len(_norms(report)) == 2
    assert not {f.kind for f in report.findings} & GRADIENT_KINDS


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.a = nn.Linear(d, 4 * d)
        self.b = nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(torch.relu(self.a(x)))


class Blocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 64)
        self.blocks = nn.Sequential(Block(64), nn.Linear(64, 64), Block(64))
        self.head = nn.Linear(64, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.inp(x)))


def test_activation_hotspots_repeated_blocks_as_one() -> None:
    report = inn.inspect(Blocks(), torch.randn(32, 8), backward=True)
    memory = report.memory
    assert memory is not None
    held = memory.category("activations")
    mods = {m.name: m for m in memory.modules}
    saved = mods["blocks.0"].activations_total + mods["blocks.2"].activations_total
    saving = mods["blocks.0"].checkpoint_saving + mods["blocks.2"].checkpoint_saving
    assert saving >= held / 10
    assert _kind(report, "activation-hotspot") == [
        Finding(
            "activation-hotspot",
            "info",
            "blocks.0",
            f"blocks.* (2 Block modules) save {format_size(saved)} for backward "
            f"({saved / held:.0%} of the {format_size(held)} held at the end of the forward); "
            f"checkpointing each would free {format_size(saving)} in all, at the cost of "
            "running its forward again in the backward.",
            "If memory is short: torch.utils.checkpoint.checkpoint(module, x, "
            "use_reentrant=False) in the parent's forward.",
        )
    ]
    # the root and "blocks" (a wrapper of nearly all) are never hotspots, nor the
    # blocks' own children (inside the one reported)
    assert mods["blocks"].checkpoint_saving > saving


def test_activation_hotspots_largest_first_never_the_whole_model() -> None:
    class Wide(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mid = nn.Sequential(nn.Linear(8, 256), nn.GELU(), nn.Linear(256, 8))
            self.big = nn.Sequential(nn.Linear(8, 512), nn.ReLU(), nn.Linear(512, 8))

        def forward(self, x: Tensor) -> Tensor:
            return self.big(self.mid(x))

    report = inn.inspect(Wide(), torch.randn(16, 8), backward=True)
    memory = report.memory
    assert memory is not None
    held = memory.category("activations")
    big = next(m for m in memory.modules if m.name == "big")
    found = _kind(report, "activation-hotspot")
    assert [f.layer for f in found] == ["big", "mid"]  # most saved first
    assert found[0].message == (
        f"big (Sequential) saves {format_size(big.activations_total)} for backward "
        f"({big.activations_total / held:.0%} of the {format_size(held)} held at the end of "
        f"the forward); checkpointing it would free {format_size(big.checkpoint_saving)}, "
        "at the cost of running its forward again in the backward."
    )
    # one module holding everything is the model itself, not a hotspot
    alone = inn.inspect(nn.Sequential(nn.Linear(8, 512)), torch.randn(16, 8), backward=True)
    assert _kind(alone, "activation-hotspot") == []


class Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def test_optimizer_left_out_and_frozen_parameters() -> None:
    model = Two()
    sgd = torch.optim.SGD(model.fc1.parameters(), lr=0.1)
    report = inn.inspect(model, torch.randn(3, 4), optimizer=sgd)
    fix = "build the optimizer from model.parameters() (or add it to a param group)"
    assert _kind(report, "optimizer-left-out") == [
        Finding(
            "optimizer-left-out",
            "warning",
            "fc2",
            f"fc2.{name} requires grad and gets one, but the optimizer does not hold it: "
            "it is never updated.",
            fix,
        )
        for name in ("weight", "bias")
    ]
    assert _kind(report, "optimizer-frozen") == []

    model.fc1.weight.requires_grad_(False)
    adamw = torch.optim.AdamW(model.parameters())
    report = inn.inspect(model, torch.randn(3, 4), optimizer=adamw)
    assert _kind(report, "optimizer-frozen") == [
        Finding(
            "optimizer-frozen",
            "warning",
            "fc1",
            "fc1.weight has requires_grad=False but the optimizer holds it: it never "
            "changes, and AdamW-style optimizers still keep state for it.",
            "leave it out of the optimizer: torch.optim.AdamW(p for p in model.parameters() "
            "if p.requires_grad)",
        )
    ]
    assert _kind(report, "optimizer-left-out") == []
    assert _kind(report, "no-gradient") == []  # frozen on purpose: no gradient expected
    assert model.fc1.weight.grad is None and not adamw.state  # the user's objects untouched
