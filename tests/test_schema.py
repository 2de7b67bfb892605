"""The JSON schema ``inspectnn/1``, whole: two golden files and the README's description.

``tests/golden/schema_run.json`` is ``report.to_json()`` of a model that runs,
``tests/golden/schema_error.json`` of one that fails and
``tests/golden/schema_training.json`` of a training step on meta (its ``training``
section, schema ``inspectnn.training/1``; meta: no norms, no loss value, so nothing
depends on floating-point rounding); between them they hold every key the schema has,
optional ones included, and are compared exactly (no normalisation: the models are
deterministic and nothing in them depends on the machine or the checkout's path).
Regenerate them deliberately with ``INSPECTNN_UPDATE_GOLDEN=1 pytest tests/test_schema.py``
and review the diff.

The README's section "JSON schema ``inspectnn/1``" is parsed into its objects and their
keys (``?`` marks a key that appears only when it applies) and compared with the keys
the golden files hold, object by object. The ``training`` section's objects are named
apart from the report's (its ``layers`` are not the report's): ``TRAINING`` and
``TRAINING.<key>``, with ``GRAD`` for a gradient and ``BYTES`` for bytes by category.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import inspectnn as inn

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
REPORT, TENSOR = "(report)", "TENSOR"


class _StepCounter(nn.Module):
    """Counts its calls in a buffer: ``buffers_written`` and a ``buffer-write`` finding."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        self.steps += 1
        return x


class SchemaNet(nn.Module):
    """Every key of a run: a frozen tied weight (``shared``, non-trainable params), a
    module called twice (``call``), an in-place op and ops with arguments, an op with
    no FLOP formula (``uncounted_ops``), a buffer write, and a dict output holding a
    non-tensor (``path``, ``value``)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.embed.weight.requires_grad_(False)
        self.proj = nn.Linear(4, 4)
        self.head = nn.Linear(4, 5, bias=False)
        self.head.weight = self.embed.weight
        self.counter = _StepCounter()

    def forward(self, ids: Tensor, scale: float | None = None) -> dict[str, Any]:
        h = self.proj(self.proj(self.embed(ids)))
        h.add_(1)
        h = self.counter(h)
        spectrum = torch.fft.rfft(h, dim=-1).abs()
        return {"logits": self.head(h.view(-1, 4)), "spectrum": spectrum, "scale": scale}


class FallbackThenMismatch(nn.Module):
    """Every key of a failure: an op that raises (caught: the model falls back), then a
    Linear that cannot take its input (``error`` with ``expected`` and ``got``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.out = nn.Linear(5, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        try:
            h = torch.cat([h, x], dim=0)
        except RuntimeError:
            h = torch.cat([h, x], dim=-1)
        return self.out(h)


def _training_net() -> nn.Module:
    """Every key of a training step: a layer whose input takes a gradient and one whose
    input does not, and a frozen parameter (``"grad": null``)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model[0].bias.requires_grad_(False)
    return model


GOLDENS = ("schema_run.json", "schema_error.json", "schema_training.json", "schema_sharding.json")


def _sharded_rank() -> inn.Report:
    """Rank 5 of a dp=2 x tp=4 job, simulated on meta: a tensor-parallel MLP's DTensor
    values (``local_shape``, ``placements``), sharded totals and the ``sharding`` section."""
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    def build(mesh: DeviceMesh) -> nn.Module:
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))
        plan = {"0": ColwiseParallel(), "2": RowwiseParallel()}
        return parallelize_module(model, mesh["tp"], plan)

    return inn.simulate(build, torch.ones(4, 16), mesh={"dp": 2, "tp": 4}, rank=5)


def _reports() -> dict[str, inn.Report]:
    """The report each golden file holds, by the file's name."""
    return {
        "schema_run.json": inn.inspect(SchemaNet(), torch.tensor([[1, 2, 3]])),
        "schema_error.json": inn.inspect(
            FallbackThenMismatch(), torch.ones(2, 4), on_error="report"
        ),
        "schema_training.json": inn.inspect(
            _training_net(),
            torch.ones(2, 4),
            device="meta",
            loss=nn.CrossEntropyLoss(),
            target=torch.tensor([0, 1]),
            optimizer="adamw",
        ),
        "schema_sharding.json": _sharded_rank(),
    }


@pytest.fixture(scope="module")
def goldens() -> dict[str, tuple[str, Any]]:
    """Each golden file's name: the fresh report's JSON text and the file's parsed content.

    Under ``INSPECTNN_UPDATE_GOLDEN=1`` the files are rewritten from the fresh reports first.
    """
    out = {}
    for name, report in _reports().items():
        path, text = GOLDEN / name, report.to_json() + "\n"
        if os.environ.get("INSPECTNN_UPDATE_GOLDEN") == "1":
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"missing {path}; run with INSPECTNN_UPDATE_GOLDEN=1 to create it"
        out[name] = (text, json.loads(path.read_text(encoding="utf-8")))
    return out


@pytest.mark.parametrize("name", GOLDENS)
def test_report_json_is_the_golden_file(goldens: dict[str, tuple[str, Any]], name: str) -> None:
    fresh, _ = goldens[name]
    assert fresh == (GOLDEN / name).read_text(encoding="utf-8")


TRAINING = "TRAINING"
# objects of the training section named by what they are, not by the key above them
_TRAINING_NAMES = {"inputs": "GRAD", "outputs": "GRAD", "grad": "GRAD",
                   "held": "BYTES", "at_peak": "BYTES", "live": "BYTES"}  # fmt: skip


def _owner(key: str, owner: str) -> str:
    """The name of an object that is the value of ``key`` in an object named ``owner``."""
    if owner == REPORT and key == "training":
        return TRAINING
    if owner == TRAINING or owner.startswith(f"{TRAINING}."):
        return _TRAINING_NAMES.get(key, f"{TRAINING}.{key}")
    return TENSOR if key in ("inputs", "outputs") else key


def _objects(value: Any, owner: str, into: dict[str, list[set[str]]]) -> None:
    """Collects the key set of every object in ``value``, by what holds it: ``(report)``
    for the top level, ``TENSOR`` under ``inputs``/``outputs``, else the key above it;
    in the training section, as ``_owner`` names them."""
    if isinstance(value, list):
        for item in value:
            _objects(item, owner, into)
    elif isinstance(value, dict):
        into[owner].append(set(value))
        for key, item in value.items():
            _objects(item, _owner(key, owner), into)


def _golden_keys(goldens: dict[str, tuple[str, Any]]) -> dict[str, list[set[str]]]:
    """The key sets of every object in the golden files, by object (see ``_objects``)."""
    into: dict[str, list[set[str]]] = defaultdict(list)
    for _, data in goldens.values():
        _objects(data, REPORT, into)
    return into


def _readme_schema() -> str:
    """The fenced block of the README's section "JSON schema ``inspectnn/1``"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## JSON schema `inspectnn/1`", 1)[1].split("\n## ", 1)[0]
    return section.split("```\n", 2)[1]


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[A-Za-z_]\w*|\.\.\.|\S')


def _readme_keys(block: str) -> dict[str, dict[str, bool]]:
    """The README block's objects, each as ``{key: optional}``.

    A key is a string written where an object expects one: after ``{`` or ``,`` inside
    braces (``"name": ...`` or the short form ``{"kind", "severity"}``); a ``?`` after
    its value marks it optional. An object is named by the key it is the value of,
    ``NAME = {...}`` names it ``NAME``, and the outermost is ``(report)``. Inside a
    ``NAME = {...}`` block, an object is named ``NAME.key``.
    """
    objects: dict[str, dict[str, bool]] = defaultdict(dict)
    stack: list[tuple[str, str]] = []  # (bracket, object name or "")
    last_key: list[str] = [""]  # the latest key of each open object, innermost last
    prev, pending = "", ""
    for tok in _TOKEN.findall(block):
        if tok in "{[":
            if tok == "{":
                name = pending or (last_key[-1] if stack else REPORT)
                if not pending and stack:
                    scope = next((n for b, n in reversed(stack) if b == "{"), "")
                    if re.fullmatch(r"[A-Z]+", scope.split(".")[0]):
                        name = f"{scope.split('.')[0]}.{name}"
                stack.append(("{", name))
                last_key.append("")
            else:
                stack.append(("[", ""))
            pending = ""
        elif tok in "}]":
            if stack.pop()[0] == "{":
                last_key.pop()
        elif tok == "?" and stack and stack[-1][0] == "{" and last_key[-1]:
            objects[stack[-1][1]][last_key[-1]] = True
        elif tok.startswith('"') and stack and stack[-1][0] == "{" and prev in "{,":
            last_key[-1] = tok[1:-1]
            objects[stack[-1][1]][tok[1:-1]] = False
        elif tok == "=" and re.fullmatch(r"[A-Z]+", prev):
            pending = prev
        prev = tok
    return dict(objects)


def test_readme_parser_reads_keys_objects_and_marks() -> None:
    block = (
        '{"a": "x", "b": [{"c", "d"}], "e": null | {"f": "g"}?}\n'
        'T = {"h": 1?, "i": [{"j": {"k"}}]?}'
    )
    assert _readme_keys(block) == {
        REPORT: {"a": False, "b": False, "e": True},
        "b": {"c": False, "d": False},
        "e": {"f": False},
        "T": {"h": True, "i": True},
        "T.i": {"j": False},
        "T.j": {"k": False},
    }


def test_readme_schema_names_exactly_the_keys_of_the_golden_files(
    goldens: dict[str, tuple[str, Any]],
) -> None:
    readme = _readme_keys(_readme_schema())
    seen = _golden_keys(goldens)
    assert {o: sorted(k) for o, k in readme.items()} == {
        o: sorted(set().union(*sets)) for o, sets in seen.items()
    }
    for owner, sets in seen.items():
        sometimes = set().union(*sets) - set.intersection(*sets)
        required = {k for k, optional in readme[owner].items() if not optional}
        assert not sometimes & required, f"{owner}: only sometimes present, README says always"


def test_training_section_only_after_a_training_step(goldens: dict[str, tuple[str, Any]]) -> None:
    """A forward alone writes no ``training`` key (its JSON is as before the section
    existed); a training step writes the section, versioned on its own."""
    assert all("training" not in goldens[name][1] for name in GOLDENS[:2])
    section = goldens["schema_training.json"][1]["training"]
    assert section["schema"] == "inspectnn.training/1"
    assert [p["grad"] is None for p in section["params"]] == [False, True, False, False]
