"""The examples in ``examples/`` run, print what they promise and write real PNGs.

Every example script runs in a real subprocess, as a user would run it
(``python examples/X.py --out DIR``), from a working directory elsewhere; the
selected scripts run concurrently to keep the suite fast. The notebook
``examples/tour.ipynb`` is executed with nbclient in its own folder (needs the
dev tools ``nbclient``, ``nbformat`` and ``ipykernel``; the test fails, never
skips, without them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# sharded_job.py is a torchrun job: tests/distributed/test_sharded_job.py runs it on 4 gloo ranks;
# llama70b_job.py (transformers) is run by tests/integration/test_llama70b_job.py against the README
NOT_SCRIPTS = {"seed_models.py", "test_with_inspectnn.py", "sharded_job.py", "llama70b_job.py"}


@dataclass(frozen=True)
class Case:
    """One example script: the PNGs it must write and lines its stdout must hold."""

    script: str
    pngs: tuple[str, ...]
    expect: tuple[str, ...]


CASES = [
    Case(
        "mnist_mlp.py",
        ("mnist_mlp_sequential.png", "mnist_mlp_module.png"),
        (
            "├─ 1 (ReLU)",
            "└─ layer2 (Linear)",
            "Same network: Linear outputs 64x128, 64x10 in both, 101,770 parameters in both.",
            "ShapeMismatchError in layer '2': expected [*, 64], got [64, 128]",
            "nn.Linear(128, 10)",
        ),
    ),
    Case(
        "cnn32.py",
        ("cnn32.png", "cnn32_64x64_error.png"),
        (
            "├─ 6 (Flatten)    [1, 2048]",
            "ShapeMismatchError in layer '7': expected [*, 2048], got [1, 8192]",
            "input from: 6 (Flatten): [1, 32, 16, 16] -> [1, 8192]",
            "nn.Linear(8192, 10), or change the input size",
            "└─ 7 (Linear)  <-- failed",
        ),
    ),
    Case(
        "bn_dropout_modes.py",
        ("bn_dropout_train.png", "bn_dropout_batch1_error.png"),
        (
            "device cpu · mode train",
            "device cpu · mode eval",
            "report.mode = 'train'",
            "report.mode = 'eval'",
            "model.training = True, running stats unchanged: True",
            "on a copy) moves them: running stats unchanged: False",
            "ShapeMismatchError in layer '1'",
            "more than 1 value per channel",
            "The same batch of 1 in mode='eval' runs: output 1x10.",
        ),
    ),
    Case(
        "my_model.py",
        ("my_model.png", "my_model2.png", "my_model_autograd.png"),
        (
            "└─ act#2 (Sigmoid)",
            "   ├─ linear.0 (Linear)",
            "its dotted path is 'linear.4'",
            "report.layer('linear.4'): Linear(in_features=10, out_features=3, bias=True), "
            "input [5, 10] -> output [5, 3], params 33",
            "Params: 108 (432 B) · trainable 108",
            "MyModel 108, MyModel2 108, the seed's sum(p.numel() ...) 108: all 108.",
        ),
    ),
    Case(
        "branching_cat.py",
        ("branching_cat.png",),
        (
            "└─ combine (Linear)",
            "torch.cat(dim=1): 4x5 from branch1 (Linear) + 4x5 from branch2 (Linear) -> 4x10",
        ),
    ),
    Case(
        "simple_cnn_skip.py",
        ("simple_cnn.png",),
        (
            "├─ pool#2 (MaxPool2d)",
            "207,466",
            "dead-computation [warning] in 'conv_skip_adjust'",
            "never reaches the model's outputs",
            "544 parameters get no gradient",
        ),
    ),
    Case(
        "two_inputs_two_outputs.py",
        ("two_inputs_two_outputs.png",),
        (
            "MultiInputOutputModel       [4, 10], [4, 5]  [4, 1], [4, 1]",
            "├─ shared_layer (Linear)",
            "outputs: 4x1, 4x1 (out1, out2)",
        ),
    ),
    Case(
        "dtype_problems.py",
        ("dtype_float64_error.png", "dtype_mixed.png"),
        (
            "DtypeMismatchError in layer 'layer1': expected float32, got float64",
            "cast the input with x.float()",
            "With x.float() it runs: output 4x10 float32.",
            "mixed-dtypes [warning] in 'norm'",
            "`norm.weight` is float16",
        ),
    ),
    Case(
        "keras_summary.py",
        ("keras_sequential.png",),
        (
            "Layer (type)    Output shape   Params",
            "├─ 1 (Linear)   [1, 128]      100,480",
            "Total params: 101,770\nTrainable params: 101,770\nNon-trainable params: 0",
        ),
    ),
]


@dataclass(frozen=True)
class Run:
    """What one script run left: its exit code, output and --out folder."""

    returncode: int
    stdout: str
    stderr: str
    out: Path


def _run_script(script: str, out: Path, cwd: Path) -> Run:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONIOENCODING"] = "utf-8"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--out", str(out)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=180,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, out)


@pytest.fixture(scope="module")
def script_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Run]]]:
    """Starts every selected example script at once; each test waits for its own."""
    selected = {
        item.callspec.params["case"].script
        for item in request.session.items
        if item.module is request.module
        and hasattr(item, "callspec")
        and "case" in item.callspec.params
    }
    cwd = tmp_path_factory.mktemp("cwd")  # not the repo: the scripts must find seed_models
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {
            script: pool.submit(
                _run_script, script, tmp_path_factory.mktemp(Path(script).stem), cwd
            )
            for script in sorted(selected)
        }
        yield futures


@pytest.mark.parametrize("case", CASES, ids=[c.script for c in CASES])
def test_example_script(case: Case, script_runs: dict[str, Future[Run]]) -> None:
    run = script_runs[case.script].result()
    assert run.returncode == 0, (
        f"{case.script} exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    )
    missing = [line for line in case.expect if line not in run.stdout]
    assert not missing, f"{case.script} did not print {missing}:\n{run.stdout}"
    for name in case.pngs:
        png = run.out / name
        assert png.is_file(), f"{case.script} did not write {name}; --out has {os.listdir(run.out)}"
        assert png.read_bytes()[:8] == PNG_MAGIC, f"{png} is not a PNG"
        assert f"wrote {png}" in run.stdout


def test_every_example_script_is_tested() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - NOT_SCRIPTS
    assert scripts == {c.script for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.script for c in CASES])
def test_example_script_shape(case: Case) -> None:
    """Module docstring with the run line, main(argv) -> int, the SystemExit guard."""
    text = (EXAMPLES / case.script).read_text(encoding="utf-8")
    assert text.startswith('"""')
    assert f"python examples/{case.script} --out out" in text
    assert "def main(argv: list[str] | None = None) -> int:" in text
    assert text.rstrip().endswith('if __name__ == "__main__":\n    raise SystemExit(main())')
    assert "sys.path.insert(0, str(Path(__file__).resolve().parent))" in text


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_models_build_without_arguments_and_match_the_test_zoo() -> None:
    seed = _load(EXAMPLES / "seed_models.py", "_examples_seed_models")
    zoo = _load(ROOT / "tests" / "models.py", "_tests_models_for_examples")
    assert set(seed.EXAMPLE_INPUT_SIZES) == set(seed.__all__) - {"EXAMPLE_INPUT_SIZES"}
    for name, sizes in seed.EXAMPLE_INPUT_SIZES.items():
        model = getattr(seed, name)()
        assert isinstance(model, torch.nn.Module), name
        assert (getattr(seed, name).__doc__ or "").count("Seed: ``00") == 1, name
        twin = getattr(zoo, name)()
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert shapes == {k: tuple(v.shape) for k, v in twin.state_dict().items()}, name
        assert repr(model) == repr(twin), name
        if name == "mismatched_mlp":
            continue
        with torch.no_grad():
            model.eval()(*(torch.randn(*size) for size in sizes))


def test_notebook_is_committed_without_outputs() -> None:
    nb = json.loads((EXAMPLES / "tour.ipynb").read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_notebook_executes() -> None:
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as err:  # a dev tool; do not skip: pyproject's dev extra has them
        pytest.fail(f"{err}: pip install nbclient nbformat ipykernel (the dev extra)")
    nb = nbformat.read(EXAMPLES / "tour.ipynb", as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    html = [out.data["text/html"] for out in outputs if "text/html" in out.get("data", {})]
    svgs = [out.data["image/svg+xml"] for out in outputs if "image/svg+xml" in out.get("data", {})]
    text = "".join(out.text for out in outputs if out.output_type == "stream")
    assert any("<table" in h and "conv_skip_adjust" in h for h in html), html
    assert len(svgs) >= 3, "expected the dataflow graph, the failing graph and the autograd graph"
    assert any("conv_skip_adjust" in s and "<svg" in s for s in svgs)
    assert any("fc1.weight" in s for s in svgs), "autograd graph of MyModel"
    assert "dead-computation [warning] conv_skip_adjust" in text
    assert "layer '7': expected [*, 2048], got [1, 8192]" in text
