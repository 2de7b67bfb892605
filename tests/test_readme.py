"""The README tells the truth: its Python blocks run and print what it shows.

Every fenced ``python`` block of ``README.md`` is one of three kinds, told apart by
its text:

* a pytest file (it defines ``test_`` functions): written to a temporary folder and
  run by pytest with the plugin, twice (``--inspectnn-update`` writes its snapshot,
  then the plain run must pass against it);
* the signature of ``inspect()`` (it ends in ``-> Report``): compared with
  ``inspect.signature(inspectnn.inspect)``, parameter by parameter, defaults included;
* an example: run, in README order, in one namespace (the examples build on each
  other: the failing-forward example uses the first one's imports). When an untagged
  block follows it directly, that block is what the example prints, compared
  exactly (no normalisation: the examples print no timings or addresses).

A block that needs hardware this machine may lack opens with the line
``# needs CUDA``; it runs when CUDA is available and is skipped otherwise. No other
block is ever skipped, and a block that fails to run fails its test. The untagged
``assert_shapes:`` block is the message of the assertion its text names, on the
first example's report. A few claims of the README's prose are checked here too,
by running them: the ``inspectnn.testing`` signatures, the table's options and
columns, the tracer wrapping ``forward`` rather than registering hooks, what
``inspect`` puts back of instance attributes, and the FLOP conventions.
"""

from __future__ import annotations

import ast
import contextlib
import inspect as pyinspect
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import inspectnn as inn
from inspectnn import testing
from inspectnn.renderers.table import COLUMNS, mult_adds_text

README = Path(__file__).resolve().parent.parent / "README.md"
NEEDS_CUDA = "# needs CUDA"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block of the README, with what it prints when one follows it."""

    tag: str
    text: str
    line: int
    output: str | None = None


def _blocks() -> list[Block]:
    """Every fenced block, in order; a python block gets the untagged block right after it."""
    text = README.read_text(encoding="utf-8")
    found = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, m.start(), m.end())
             for m in _FENCE.finditer(text)]  # fmt: skip
    blocks = []
    for i, (tag, body, line, _, end) in enumerate(found):
        output = None
        if tag == "python" and i + 1 < len(found):
            next_tag, next_body, _, next_start, _ = found[i + 1]
            if next_tag == "" and not text[end:next_start].strip():
                output = next_body
        blocks.append(Block(tag, body, line, output))
    return blocks


def _python(kind: str) -> list[Block]:
    return [b for b in _blocks() if b.tag == "python" and _kind(b) == kind]


def _kind(block: Block) -> str:
    if re.search(r"^def test_", block.text, re.M):
        return "pytest"
    if block.text.rstrip().endswith("-> Report"):
        return "signature"
    return "example"


def test_the_readme_has_the_blocks_this_file_checks() -> None:
    kinds = [_kind(b) for b in _blocks() if b.tag == "python"]
    assert kinds.count("example") >= 2 and "pytest" in kinds and "signature" in kinds
    assert all(b.output is not None for b in _python("example"))  # each shows its output


def _run_examples(upto: int) -> tuple[dict[str, Any], str]:
    """Run the examples ``0..upto`` in one namespace; the namespace and the last one's output."""
    namespace: dict[str, Any] = {"__name__": "readme"}
    out = ""
    for block in _python("example")[: upto + 1]:
        if block.text.startswith(NEEDS_CUDA) and not torch.cuda.is_available():
            pytest.skip(f"README line {block.line}: marked '{NEEDS_CUDA}', and there is none")
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(block.text, f"README.md:{block.line}", "exec"), namespace)
        out = buffer.getvalue()
    return namespace, out


@pytest.mark.parametrize("index", range(len(_python("example"))))
def test_example_prints_what_the_readme_shows(index: int) -> None:
    block = _python("example")[index]
    _, out = _run_examples(index)
    assert out == block.output, f"README line {block.line}"


def test_assertion_message_block_is_what_assert_shapes_says() -> None:
    shown = next(b.text for b in _blocks() if b.tag == "" and b.text.startswith("assert_shapes:"))
    specs = re.search(r"^  asserted: (\{.*\})$", shown, re.M)
    assert specs is not None
    namespace, _ = _run_examples(0)
    with pytest.raises(AssertionError) as err:
        testing.assert_shapes(namespace["report"], ast.literal_eval(specs.group(1)))
    assert str(err.value) + "\n" == shown


def test_inspect_signature_block_is_the_real_signature() -> None:
    (block,) = _python("signature")
    head = block.text.strip().removeprefix("inn.").removesuffix("-> Report")
    tree = ast.parse(f"def {head}: ...")
    shown = tree.body[0]
    assert isinstance(shown, ast.FunctionDef) and shown.name == "inspect"
    real = pyinspect.signature(inn.inspect).parameters
    names = [a.arg for a in shown.args.args]
    assert shown.args.vararg is not None and shown.args.kwarg is not None
    names += [shown.args.vararg.arg] + [a.arg for a in shown.args.kwonlyargs]
    names.append(shown.args.kwarg.arg)
    assert names == list(real)
    for arg, default in zip(shown.args.kwonlyargs, shown.args.kw_defaults, strict=True):
        assert default is not None
        assert ast.literal_eval(default) == real[arg.arg].default, arg.arg
    assert pyinspect.signature(inn.inspect).return_annotation in ("Report", inn.Report)


def test_pytest_block_passes_with_the_plugin(pytester: pytest.Pytester) -> None:
    (block,) = _python("pytest")
    pytester.makepyfile(test_readme_block=block.text)
    pytester.runpytest("-q", "-p", "no:cacheprovider",
                       "--inspectnn-update").assert_outcomes(passed=1)  # fmt: skip
    assert (pytester.path / "__snapshots__" / "test_readme_block" / "test_cnn.txt").is_file()
    pytester.runpytest("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_testing_functions_are_listed_with_their_signatures() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    public = [n for n in testing.__all__ if n.startswith("assert_")]
    for name in public:
        shown = re.search(rf"`{name}\((.*?)\)`", text)
        assert shown is not None, f"{name} is listed with its signature"
        params = pyinspect.signature(getattr(testing, name)).parameters
        for part in shown.group(1).split(", "):
            key, _, default = part.partition("=")
            if key in params:  # `x` stands for the model's inputs (*args)
                if default and params[key].default is not params[key].empty:
                    assert ast.literal_eval(default) == params[key].default, (name, key)
            else:
                assert key == "x" and name == "assert_output_shape", (name, key)
        if name != "assert_output_shape":
            assert hasattr(inn.Report, name), f"{name} is a Report method"


def test_table_options_and_columns_are_the_real_ones() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    options = re.search(r"`report\.table\((.*?)\)` chooses\. Columns: `(.*?)`", text)
    assert options is not None
    shown = [part.partition("=")[0] for part in options.group(1).split(", ")]
    assert shown == [p for p in pyinspect.signature(inn.Report.table).parameters if p != "self"]
    assert tuple(options.group(2).split()) == COLUMNS


# ---------------------------------------------------------------------------
# The prose, run
# ---------------------------------------------------------------------------


_SEEN: dict[str, Any] = {}  # not an attribute: inspect would put an attribute back


class _Probe(nn.Module):
    """Records, during its forward, how its child is being called."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _SEEN["wrapped"] = "forward" in self.fc.__dict__
        _SEEN["hooks"] = len(self.fc._forward_hooks) + len(self.fc._forward_pre_hooks)
        _SEEN["global"] = len(nn.modules.module._global_forward_hooks) + len(
            nn.modules.module._global_forward_pre_hooks)  # fmt: skip
        return self.fc(x)


def test_tracing_wraps_forward_and_registers_no_hooks() -> None:
    """The README and the notebook say so: ``forward`` is wrapped, yours hooks still run."""
    model = _Probe()
    calls: list[str] = []
    model.fc.register_forward_hook(lambda *_: calls.append("hook"))
    report = inn.inspect(model, torch.randn(2, 3))
    assert _SEEN == {"wrapped": True, "hooks": 1, "global": 0}  # only the user's hook
    assert calls == ["hook"] and "forward" not in model.fc.__dict__  # removed afterwards
    assert [layer.name for layer in report.layers] == ["", "fc"]


class _Rebinds(nn.Module):
    """A forward that changes its own attributes in every way the README names."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.n = 0
        self.cache: torch.Tensor | None = None
        self.history: list[int] = []
        self.box = type("Box", (), {})()
        self.box.count = 0
        self.scale = torch.ones(2)  # a tensor attribute, not a buffer
        self.gone = "here"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.n += 1
        self.cache = self.fc(x)
        self.history.append(1)
        self.box.count += 1  # inside another object: not restored
        self.scale.mul_(2)  # written in place: not restored, reported
        del self.gone
        self.added = True
        return self.cache * self.scale


def test_instance_attribute_claims() -> None:
    model = _Rebinds()
    report = inn.inspect(model, torch.randn(1, 2))
    assert (model.n, model.cache, model.history, model.gone) == (0, None, [], "here")
    assert not hasattr(model, "added")
    assert model.box.count == 1  # "changes inside other objects" are not restored
    assert torch.equal(model.scale, torch.full((2,), 2.0))
    assert [f.kind for f in report.findings if f.kind == "attribute-written"] == [
        "attribute-written"]  # fmt: skip


def test_flop_claims() -> None:
    """Linear and conv as FlopCounterMode counts them, mult_adds half, the LSTM formula."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    x = torch.randn(2, 3, 8, 8)
    with FlopCounterMode(display=False) as counter:
        model(x)
    report = inn.inspect(model, x)
    assert report.totals.flops == counter.get_total_flops()
    assert all(layer.flops % 2 == 0 for layer in report.layers)  # exactly flops / 2
    table = report.table(columns=["layer", "flops", "mult_adds"])
    assert mult_adds_text(report.totals.flops) == "9.2 KMACs" and "9.2 KMACs" in table
    lstm = nn.LSTM(4, 6, num_layers=2)
    seq = torch.randn(5, 3, 4)  # 5 steps x batch 3
    weights = sum(p.numel() for n, p in lstm.named_parameters() if n.startswith("weight"))
    assert inn.inspect(lstm, seq).totals.flops == 2 * 5 * 3 * weights


def test_an_op_without_a_formula_is_named_not_zero() -> None:
    class Spectral(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft(x).abs()

    report = inn.inspect(Spectral(), torch.randn(2, 16))
    assert report.totals.uncounted_ops
    assert any(f.kind == "flops-uncounted" for f in report.findings)
