"""The `inspectnn` command, run as a real subprocess for every target form and output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

MODELS = Path(__file__).parent / "models.py"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspectnn", *args],
        capture_output=True, text=True, timeout=180, cwd=cwd, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An importable package with a factory function and a class."""
    root = tmp_path_factory.mktemp("pkg")
    (root / "toynets").mkdir()
    (root / "toynets" / "__init__.py").write_text("")
    (root / "toynets" / "nets.py").write_text(
        "from torch import nn\n"
        "def build(hidden: int = 8) -> nn.Module:\n"
        "    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(3, 1)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n"
        "NOT_A_MODEL = 3\n"
    )
    return root


def test_file_target_prints_the_table() -> None:
    out = run(f"{MODELS}:SimpleCNN", "--input-size", "64,1,28,28")
    assert out.returncode == 0, out.stderr
    assert "├─ conv_skip_adjust (Conv2d)  [64, 32, 14, 14]" in out.stdout
    assert "dead-computation" not in out.stdout and "never reaches" in out.stdout


def test_module_target_with_factory_args(pkg: Path) -> None:
    out = run("toynets.nets:build", "--arg", "hidden=16", "--input-size", "2,4", cwd=pkg)
    assert out.returncode == 0, out.stderr
    assert "[2, 16]" in out.stdout
    out = run("toynets.nets:Tiny", "--input-size", "5,3", "--columns", "layer,input,output",
              cwd=pkg)  # fmt: skip
    assert out.returncode == 0 and "Input shape" in out.stdout and "[5, 3]" in out.stdout


@pytest.mark.parametrize(
    ("suffix", "magic"),
    [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF"), (".dot", b"digraph"),
     (".json", b"{"), (".md", b"| Layer"), (".html", b"<div>"), (".txt", b"Layer (type)")],
)  # fmt: skip
def test_every_output_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    target = tmp_path / f"out{suffix}"
    out = run(f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert target.read_bytes().startswith(magic)
    assert out.stdout == ""  # with -o and no --format nothing else is printed
    if suffix == ".json":
        assert json.loads(target.read_text())["schema"] == "inspectnn/1"


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "dot"])
def test_formats_on_stdout(fmt: str) -> None:
    out = run(f"{MODELS}:MyModel", "--input-size", "5,2", "--format", fmt)
    assert out.returncode == 0, out.stderr
    first = {"table": "Layer (type)", "markdown": "| Layer", "json": "{", "dot": "digraph"}[fmt]
    assert out.stdout.startswith(first)


def test_failing_forward_exits_1_with_the_diagnosis() -> None:
    out = run(f"{MODELS}:BrokenFlattenCNN", "--input-size", "1,3,64,64")
    assert out.returncode == 1
    assert "'classifier.1' (Linear(in_features=1024" in out.stdout  # under the table
    assert "<-- failed" in out.stdout
    assert "the forward failed in 'classifier.1' (ShapeMismatchError)" in out.stderr
    assert "Traceback" not in out.stderr
    quiet = run(f"{MODELS}:BrokenFlattenCNN", "--input-size", "1,3,64,64", "--format", "json")
    assert quiet.returncode == 1 and "cannot take its input" in quiet.stderr


def test_check_and_fail_on() -> None:
    args = (f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "--check")
    assert run(*args).returncode == 0  # the dead skip path is only a warning
    strict = run(*args, "--fail-on", "warning")
    assert strict.returncode == 1 and "1 finding(s) of severity >= warning" in strict.stderr


def test_meta_device_and_dtype(tmp_path: Path) -> None:
    out = run(f"{MODELS}:TiedLM", "--input-size", "2,7", "--dtype", "long", "--device", "meta",
              "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["device"] == "meta" and data["totals"]["params"] == 1904


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.py:Net", "--input-size", "1"], "no such file: nope.py"),
        ([f"{MODELS}:NoSuchModel", "--input-size", "1"], "has no 'NoSuchModel'"),
        ([f"{MODELS}:SEED_MODELS", "--input-size", "1"], "not a model class or factory"),
        ([f"{MODELS}:SimpleCNN"], "pass the model's input shape with --input-size"),
        ([f"{MODELS}:SimpleCNN", "--input-size", "1,a"], "--input-size takes a shape"),
        ([f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "--dtype", "floaty"],
         "'floaty' is not a torch dtype"),
        ([f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "--device", "gpu"],
         "'gpu' is not a device"),
        ([f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "-o", "x.jpeg"],
         "use a name ending in"),
        (["toynets"], "no such file: toynets"),
        ([f"{MODELS}:SimpleCNN", "--arg", "oops", "--input-size", "1"], "--arg takes KEY=VALUE"),
        (["--mode", "sideways", "x"], "invalid choice: 'sideways'"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_a_message(args: list[str], message: str) -> None:
    out = run(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_state_dict_file_says_there_is_no_architecture(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    out = run(str(path), "--input-size", "1,2")
    assert out.returncode == 2
    assert "holds a state dict" in out.stderr and "Pass the model's class" in out.stderr


def test_pickled_model_needs_unsafe_pickle(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), path)
    refused = run(str(path), "--input-size", "4,2")
    assert refused.returncode == 2
    assert "would run code" in refused.stderr and "--unsafe-pickle" in refused.stderr
    allowed = run(str(path), "--input-size", "4,2", "--unsafe-pickle")
    assert allowed.returncode == 0, allowed.stderr
    assert "[4, 3]" in allowed.stdout


def test_torchscript_file_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    out = run(str(path), "--input-size", "1,2")
    assert out.returncode == 2
    assert "TorchScript" in out.stderr and "cannot be traced" in out.stderr


def test_not_a_model_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    out = run(str(path), "--input-size", "1")
    assert out.returncode == 2 and "is not a PyTorch model file" in out.stderr


def test_help_shows_worked_examples_and_no_target_is_usage() -> None:
    out = run("--help")
    assert out.returncode == 0
    assert out.stdout.count("inspectnn ") >= 3 and "--unsafe-pickle" in out.stdout
    assert "A pickle can run any code" in " ".join(out.stdout.split())
    bare = run()
    assert bare.returncode == 2 and "examples:" in bare.stdout


def test_console_script_and_demo(tmp_path: Path) -> None:
    exe = shutil.which("inspectnn")
    assert exe is not None, "the console script is installed with the package"
    out = subprocess.run([exe, "demo", "-o", str(tmp_path / "d.svg")], capture_output=True,
                         text=True, timeout=180, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d.svg").read_text().lstrip().startswith("<?xml")
