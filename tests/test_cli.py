"""The `inspectnn` command: `main(argv)` in-process for every target form, output and error,
and a few real runs of the installed `inspectnn` entry point.

Every error path exits 2 (or 1 for a failing forward) with a message, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from models import gpt2_tiny
from torch import nn

from inspectnn import inspect
from inspectnn.cli import main

MODELS = Path(__file__).parent / "models.py"
ROOT = Path(__file__).parent.parent


Cli = Callable[..., "Result"]


@dataclass
class Result:
    """What one `inspectnn` run returned and printed."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli(*args)`` runs ``main(args)`` in this process and returns a :class:`Result`."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def entry_point(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``inspectnn`` console script on this checkout's package."""
    exe = shutil.which("inspectnn")
    assert exe is not None, "the console script is installed with the package"
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=180, cwd=cwd,
                          env=env, check=False)  # fmt: skip


def failed(out: Result, message: str, code: int = 2) -> None:
    """Assert an error exit with ``message`` on stderr and no traceback anywhere."""
    assert out.returncode == code, out.stdout + out.stderr
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stdout + out.stderr


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
        "class Two(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(3, 2)\n"
        "    def forward(self, a, b):\n"
        "        return self.fc(a) + b\n"
        "NOT_A_MODEL = 3\n"
    )
    (root / "toynets" / "broken.py").write_text("from torch import nn\ndef build(:\n    pass\n")
    return root


def test_file_target_prints_the_table(cli: Cli) -> None:
    out = cli(f"{MODELS}:SimpleCNN", "--input-size", "64,1,28,28")
    assert out.returncode == 0, out.stderr
    assert "├─ conv_skip_adjust (Conv2d)  [64, 32, 14, 14]" in out.stdout
    assert "dead-computation" not in out.stdout and "never reaches" in out.stdout


def test_module_target_with_factory_args(cli: Cli, pkg: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(pkg)  # importable from the working directory, as with `python -m`
    out = cli("toynets.nets:build", "--arg", "hidden=16", "--input-size", "2,4")
    assert out.returncode == 0, out.stderr
    assert "[2, 16]" in out.stdout
    out = cli("toynets.nets:Tiny", "--input-size", "5,3", "--columns", "layer,input,output")
    assert out.returncode == 0 and "Input shape" in out.stdout and "[5, 3]" in out.stdout
    assert str(pkg) not in sys.path  # the working directory is importable for the run only


MAGIC = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF", ".dot": b"digraph", ".json": b"{",
         ".md": b"| Layer", ".html": b"<!doctype html>", ".txt": b"Layer (type)"}  # fmt: skip


@pytest.mark.parametrize("suffix", list(MAGIC))
def test_every_output_suffix_into_a_missing_folder(cli: Cli, tmp_path: Path,
                                                   suffix: str) -> None:  # fmt: skip
    target = tmp_path / "not" / "there" / f"out{suffix}"
    out = cli(f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert target.read_bytes().startswith(MAGIC[suffix])  # the folders were created
    assert out.stdout == ""  # with -o and no --format nothing else is printed
    if suffix == ".json":
        assert json.loads(target.read_text())["schema"] == "inspectnn/1"


def test_output_under_a_file_says_so(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("")
    for suffix in (".png", ".json"):
        out = cli(f"{MODELS}:MyModel", "--input-size", "5,2", "-o", str(blocker / f"x{suffix}"))
        failed(out, f"{blocker} is a file, not a folder")


class _Tags(HTMLParser):
    """Counts open and closed tags (void tags are never closed)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in ("meta", "br"):
            self.depth[tag] = self.depth.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        self.depth[tag] = self.depth.get(tag, 0) - 1


def test_html_output_is_a_standalone_utf8_page_and_the_repr_a_fragment(
    cli: Cli, tmp_path: Path
) -> None:
    target = tmp_path / "report.html"
    out = cli(f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "-o", str(target))
    assert out.returncode == 0, out.stderr
    page = target.read_bytes().decode("utf-8")
    assert page.startswith("<!doctype html>\n") and page.rstrip().endswith("</html>")
    assert '<meta charset="utf-8">' in page and "<title>inspectnn: SimpleCNN</title>" in page
    assert "·" in page  # non-ASCII text, declared by the charset
    tags = _Tags()
    tags.feed(page)
    assert set(tags.depth.values()) == {0}, tags.depth
    fragment = inspect(nn.Linear(2, 3), input_size=(1, 2))._repr_html_()
    assert fragment.startswith("<div>") and "<!doctype" not in fragment


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "dot"])
def test_formats_on_stdout(cli: Cli, fmt: str) -> None:
    out = cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--format", fmt)
    assert out.returncode == 0, out.stderr
    first = {"table": "Layer (type)", "markdown": "| Layer", "json": "{", "dot": "digraph"}[fmt]
    assert out.stdout.startswith(first)


def test_ascii_table_on_stdout_and_in_a_txt_file(cli: Cli, tmp_path: Path) -> None:
    args = (f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "--columns", "layer,kernel,params")
    boxed = cli(*args)
    assert boxed.returncode == 0, boxed.stderr
    assert "├─" in boxed.stdout  # box drawing without --ascii
    out = cli(*args, "--ascii")
    assert out.returncode == 0, out.stderr
    assert out.stdout.isascii() and "|- conv1 (Conv2d)" in out.stdout
    assert "Kernel" in out.stdout and "k=3x3" in out.stdout  # --columns still applies
    assert len(out.stdout.splitlines()) == len(boxed.stdout.splitlines())
    target = tmp_path / "table.txt"
    assert cli(*args, "--ascii", "-o", str(target)).returncode == 0
    assert target.read_text(encoding="utf-8") == out.stdout


def test_help_lists_every_table_column_and_ascii(cli: Cli) -> None:
    from inspectnn.renderers.table import COLUMNS

    out = cli("--help")
    assert out.returncode == 0, out.stderr
    help_text = " ".join(out.stdout.split())  # argparse wraps lines
    assert ", ".join(COLUMNS) in help_text
    assert "--ascii draw the table (printed or .txt) with ASCII-only borders" in help_text


@pytest.mark.parametrize("shape", ["5,2", "5x2", "5 2", "5X2", " 5, 2 ", "(5, 2)", "[5,2]",
                                   "5 x 2"])  # fmt: skip
def test_input_size_forms(cli: Cli, shape: str) -> None:
    out = cli(f"{MODELS}:MyModel", "--input-size", shape, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["layers"][0]["inputs"][0]["shape"] == [5, 2]


def test_several_inputs_repeat_input_size(cli: Cli, pkg: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(pkg)
    out = cli("toynets.nets:Two", "--input-size", "4 3", "--input-size", "4x2", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [i["shape"] for i in json.loads(out.stdout)["layers"][0]["inputs"]] == [[4, 3], [4, 2]]


@pytest.mark.parametrize(
    ("shape", "message"),
    [("2,x,32", "'x' is not a dimension"), (",,,", "has an empty dimension"),
     ("2,,32", "has an empty dimension"), ("", "has no dimensions"), ("()", "has no dimensions"),
     ("2.5,3", "'2.5' is not a dimension"), ("2,-1", "'-1' is not a dimension"),
     ("2x3,4", "'2x3' is not a dimension"), ("1,a", "'a' is not a dimension"),
     ("２,3", "'２' is not a dimension"), ("(2,3),(2,4)", "'3)' is not a dimension")],
)  # fmt: skip
def test_bad_input_size_is_a_usage_error_naming_the_part(cli: Cli, shape: str,
                                                         message: str) -> None:  # fmt: skip
    out = cli(f"{MODELS}:MyModel", "--input-size", shape)
    failed(out, message)
    assert "usage: inspectnn" in out.stderr and "argument --input-size" in out.stderr
    assert '2,3,32,32, 2x3x32x32 or "2 3 32 32"' in out.stderr


def test_failing_forward_exits_1_with_the_diagnosis(cli: Cli) -> None:
    out = cli(f"{MODELS}:BrokenFlattenCNN", "--input-size", "1,3,64,64")
    failed(out, "the forward failed in 'classifier.1' (ShapeMismatchError)", code=1)
    assert "'classifier.1' (Linear(in_features=1024" in out.stdout  # under the table
    assert "<-- failed" in out.stdout
    quiet = cli(f"{MODELS}:BrokenFlattenCNN", "--input-size", "1,3,64,64", "--format", "json")
    failed(quiet, "cannot take its input", code=1)


def test_check_and_fail_on(cli: Cli) -> None:
    args = (f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "--check")
    assert cli(*args).returncode == 0  # the dead skip path is only a warning
    strict = cli(*args, "--fail-on", "warning")
    assert strict.returncode == 1 and "1 finding(s) of severity >= warning" in strict.stderr


def test_meta_device_and_dtype(cli: Cli) -> None:
    out = cli(f"{MODELS}:TiedLM", "--input-size", "2,7", "--dtype", "long", "--device", "meta",
              "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["device"] == "meta" and data["totals"]["params"] == 1904


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.py:Net", "--input-size", "1"], "no such file: nope.py"),
        (["nope.py", "--input-size", "1"], "no such file: nope.py"),
        ([f"{MODELS}:SEED_MODELS", "--input-size", "1"], "not a model class or factory"),
        ([f"{MODELS}:SimpleCNN"], "pass the model's input shape with --input-size"),
        ([f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "--dtype", "floaty"],
         "'floaty' is not a torch dtype"),
        ([f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "--device", "gpu"],
         "'gpu' is not a device"),
        ([f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "-o", "x.jpeg"],
         "use a name ending in"),
        (["toynets"], "no such file: toynets"),
        ([f"{MODELS}:SimpleCNN", "--arg", "oops", "--input-size", "1"], "--arg takes KEY=VALUE"),
        ([f"{MODELS}:SimpleCNN", "--input-size", "2,1,28,28", "--format", "markdown",
          "--columns", "layer,shape"], "--columns: unknown column 'shape'; choose from layer,"),
        ([f"{MODELS}:SimpleCNN", "--arg", "depth=3", "--input-size", "1"],
         "Pass its arguments with --arg key=value"),
        (["--mode", "sideways", "x"], "invalid choice: 'sideways'"),
        (["nosuchpkg.models:Net", "--input-size", "1"],
         "cannot import nosuchpkg.models: no module named 'nosuchpkg'"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_a_message(cli: Cli, args: list[str], message: str) -> None:
    failed(cli(*args), message)


SYNTAX_ERROR = (
    "from torch import nn\n\nclass Net(nn.Module):\n    def forward(self x):\n        return x\n"
)


def test_syntax_error_names_file_line_and_error(
    cli: Cli, tmp_path: Path, pkg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(SYNTAX_ERROR)
    for target in (f"{bad}:Net", str(bad)):  # with the name it is imported; without, read
        out = cli(target, "--input-size", "1,2")
        failed(out, "has a syntax error")
        assert f'File "{bad}", line 4' in out.stderr and "def forward(self x):" in out.stderr
        assert "SyntaxError: invalid syntax" in out.stderr
    monkeypatch.chdir(pkg)
    out = cli("toynets.broken:build", "--input-size", "1")
    failed(out, "cannot import toynets.broken, it has a syntax error")
    assert "broken.py\", line 2" in out.stderr


def test_errors_in_the_users_code_say_where(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "raises.py").write_text("x = 1\nraise RuntimeError('no GPU here')\n")
    failed(cli(f"{tmp_path / 'raises.py'}:Net", "--input-size", "1"),
           f"importing {tmp_path / 'raises.py'} failed at {tmp_path / 'raises.py'}, line 2: "
           "RuntimeError: no GPU here")  # fmt: skip
    (tmp_path / "needs.py").write_text("import torch\nimport no_such_dependency_here\n")
    failed(cli(f"{tmp_path / 'needs.py'}:Net", "--input-size", "1"),
           "it needs module 'no_such_dependency_here', which cannot be imported")
    (tmp_path / "ctor.py").write_text(
        "from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        raise ValueError('bad config')\n"
    )
    failed(cli(f"{tmp_path / 'ctor.py'}:Net", "--input-size", "1"),
           f"building the model with {tmp_path / 'ctor.py'}:Net failed at "
           f"{tmp_path / 'ctor.py'}, line 5: ValueError: bad config")  # fmt: skip


MANY = """print("RAN THE FILE")
import torch
import torch.nn as tnn
from torch import nn
from torch.nn import Module

class Base(nn.Module):
    pass

class Derived(Base):
    pass

class Plain(Module):
    pass

class Stack(tnn.Sequential):
    pass

class Config:
    pass

def build(hidden: int = 3) -> nn.Module:
    return nn.Linear(hidden, hidden)

def make():
    return nn.Sequential(nn.Linear(2, 2))

def helper(x):
    return x + 1

def settings() -> dict:
    return {}

def _private() -> nn.Module:
    return Base()
"""


def test_python_file_without_a_name_lists_its_models(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "many.py"
    path.write_text(MANY)
    listing = ("its nn.Module classes: Base, Derived, Plain, Stack; its model factories: "
               f"build, make. Pass e.g. {path}:Base")  # fmt: skip
    out = cli(str(path), "--input-size", "1")
    failed(out, f"{path} is a Python file: name the model in it; {listing}")
    assert "--unsafe-pickle" not in out.stderr and "RAN THE FILE" not in out.stdout  # read only
    failed(cli(f"{path}:", "--input-size", "1"), listing)
    failed(cli(f"{path}:Nope", "--input-size", "1"), f"{path} has no 'Nope'; {listing}")
    crowded = tmp_path / "crowded.py"
    crowded.write_text(
        "from torch import nn\n" + "".join(f"class Net{i}(nn.Module): ...\n" for i in range(15))
    )
    shown = ", ".join(f"Net{i}" for i in range(12))
    failed(cli(str(crowded)), f"classes: {shown} and 3 more. Pass e.g. {crowded}:Net0")
    empty = tmp_path / "nothing.py"
    empty.write_text("def helper(x):\n    return x\n")
    failed(cli(str(empty)), "Reading it found no nn.Module class or factory")


def test_state_dict_file_says_there_is_no_architecture(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    out = cli(str(path), "--input-size", "1,2")
    failed(out, "holds a state dict")
    assert "Pass the model's class" in out.stderr


def test_pickled_model_needs_unsafe_pickle(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), path)
    refused = cli(str(path), "--input-size", "4,2")
    failed(refused, "would run code")
    assert "--unsafe-pickle" in refused.stderr
    allowed = cli(str(path), "--input-size", "4,2", "--unsafe-pickle")
    assert allowed.returncode == 0, allowed.stderr
    assert "[4, 3]" in allowed.stdout


@pytest.fixture
def pickled_own_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp/proj/model.pt``: a whole model whose class lives in ``tmp/proj/<module>.py``,
    a module that is not imported (as in a fresh process)."""
    name = f"inn_cli_nets_{tmp_path.name.replace('-', '_')}"
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / f"{name}.py").write_text(
        "from torch import nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(2, 5)\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    )
    monkeypatch.syspath_prepend(str(proj))
    module = __import__(name)
    torch.save(module.Net(), proj / "model.pt")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(proj)])
    del sys.modules[name]
    yield proj / "model.pt"
    sys.modules.pop(name, None)


def test_pickled_model_imports_from_its_folder_and_the_working_directory(
    cli: Cli, pickled_own_class: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = pickled_own_class.parent
    monkeypatch.chdir(proj)
    out = cli("model.pt", "--input-size", "3,2", "--unsafe-pickle")
    assert out.returncode == 0, out.stderr
    assert "[3, 5]" in out.stdout
    assert str(proj) not in sys.path  # put there for the run only


def test_pickled_model_whose_module_is_missing_names_it(
    cli: Cli, pickled_own_class: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = pickled_own_class.rename(elsewhere / "model.pt")
    monkeypatch.chdir(tmp_path)
    module = next(pickled_own_class.parent.glob("inn_cli_nets_*.py")).stem
    failed(cli(str(moved), "--input-size", "3,2", "--unsafe-pickle"),
           f"holds a pickled model whose code is in module {module!r}, which cannot be "
           "imported")  # fmt: skip
    (pickled_own_class.parent / f"{module}.py").write_text("class Renamed:\n    pass\n")
    monkeypatch.chdir(pickled_own_class.parent)
    out = cli(str(moved), "--input-size", "3,2", "--unsafe-pickle")
    failed(out, "holds a pickled model whose class cannot be found")
    assert "Can't get attribute 'Net'" in out.stderr


def test_torchscript_file_is_explained(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    out = cli(str(path), "--input-size", "1,2")
    failed(out, "TorchScript")
    assert "cannot be traced" in out.stderr


@pytest.mark.parametrize("unsafe", [False, True])
def test_not_a_model_file(cli: Cli, tmp_path: Path, unsafe: bool) -> None:
    flag = ["--unsafe-pickle"] if unsafe else []
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    out = cli(str(path), "--input-size", "1", *flag)
    failed(out, "is not a PyTorch model file: it is neither a zip archive nor a pickle")
    assert "b'hello'" in out.stderr and "--unsafe-pickle" not in out.stderr
    path.write_bytes(b"")
    failed(cli(str(path), "--input-size", "1", *flag), "(it is empty)")


def test_help_shows_worked_examples_and_no_target_is_usage(cli: Cli) -> None:
    out = cli("--help")
    assert out.returncode == 0
    assert out.stdout.count("inspectnn ") >= 3 and "--unsafe-pickle" in out.stdout
    help_text = " ".join(out.stdout.split())
    assert "A pickle can run any code" in help_text and "missing folders are created" in help_text
    bare = cli()
    assert bare.returncode == 2 and "examples:" in bare.stdout


def test_demo_into_a_missing_folder(cli: Cli, tmp_path: Path) -> None:
    out = cli("demo", "-o", str(tmp_path / "new" / "d.dot"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "new" / "d.dot").read_text().startswith("digraph")


# The real console script: a success, an error exit, the demo.


def test_entry_point_imports_from_the_working_directory(pkg: Path) -> None:
    out = entry_point("toynets.nets:build", "--arg", "hidden=16", "--input-size", "2 4", cwd=pkg)
    assert out.returncode == 0, out.stderr
    assert "[2, 16]" in out.stdout


def test_entry_point_syntax_error_exits_2_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text(SYNTAX_ERROR)
    out = entry_point("models.py:Net", "--input-size", "1,2", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert 'models.py", line 4' in out.stderr and "SyntaxError" in out.stderr
    assert "Traceback" not in out.stderr


def test_console_script_and_demo(tmp_path: Path) -> None:
    out = entry_point("demo", "-o", str(tmp_path / "d.svg"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d.svg").read_text().lstrip().startswith("<?xml")


# -- a training step: --backward, --optimizer, --amp, --memory-plot -------------------------


def test_backward_prints_the_step_s_memory_after_the_table(cli: Cli) -> None:
    args = (f"{MODELS}:gpt2_tiny", "--input-size", "2,8", "--dtype", "long", "--device", "meta")
    plain = cli(*args)
    assert plain.returncode == 0 and "One training step" not in plain.stdout
    out = cli(*args, "--backward", "--optimizer", "adamw", "--amp", "bf16")
    assert out.returncode == 0, out.stderr
    table, memory = out.stdout.split("\nOne training step on meta with AdamW, autocast bfloat16")
    assert table.startswith(plain.stdout.splitlines()[0]) and "mode train" in table
    assert "optimizer state" in memory and "activations" in memory


def test_the_step_s_flags_reach_inspect_and_the_json(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "step.json"
    out = cli(f"{MODELS}:gpt2_tiny", "--input-size", "2,8", "--dtype", "long", "--device",
              "meta", "--optimizer", "sgd", "--amp", "bf16", "-o", str(target))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # -o without --format prints nothing
    report = inspect(gpt2_tiny(), input_size=(2, 8), dtypes="long", device="meta",
                     optimizer="sgd", amp="bf16")  # fmt: skip
    data = json.loads(target.read_text())
    expected = json.loads(report.to_json())
    # where in the step a temporary of a few bytes is freed can differ between the
    # first fake-tensor run in a process and later ones (torch's caches): the timeline
    # alone is left out; the peak, held sizes and every record are compared
    del data["training"]["memory"]["timeline"], expected["training"]["memory"]["timeline"]
    assert data == expected
    assert data["mode"] == "train"  # --optimizer implies --backward, and train mode with it
    assert report.memory is not None and report.memory.optimizer == "SGD"
    assert {layer["outputs"][0]["dtype"] for layer in data["layers"]
            if layer["type"] == "Linear"} == {"bfloat16"}  # fmt: skip


def test_memory_plot_writes_the_picture_and_implies_backward(cli: Cli, tmp_path: Path) -> None:
    plot = tmp_path / "pics" / "step.png"
    out = cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--memory-plot", str(plot))
    assert out.returncode == 0, out.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {plot}" in out.stderr
    assert "One forward and backward on cpu" in out.stdout  # the memory after the table


def test_step_flags_that_cannot_be_used_are_usage_errors(cli: Cli, tmp_path: Path) -> None:
    bad_plot = tmp_path / "step.jpg"
    failed(cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--memory-plot", str(bad_plot)),
           "--memory-plot")  # fmt: skip
    assert not bad_plot.exists()
    failed(cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--optimizer", "lion"),
           "invalid choice: 'lion'")  # fmt: skip
    failed(cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--amp", "fp8"), "invalid choice")


def test_amp_without_backward_casts_the_forward_on_meta(cli: Cli) -> None:
    out = cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--device", "meta", "--amp", "bf16",
              "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mode"] == "eval"
    fc3 = next(layer for layer in data["layers"] if layer["name"] == "fc3")
    assert fc3["outputs"][0]["dtype"] == "bfloat16" and fc3["outputs"][0]["device"] == "meta"


def test_device_memory_is_held_against_the_run(cli: Cli) -> None:
    out = cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--device-memory", "64B")
    assert out.returncode == 0, out.stderr
    assert "device_memory=64 B" in out.stdout and "[error]" in out.stdout
    roomy = cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--device-memory", "1GB")
    assert "device_memory" not in roomy.stdout
    failed(cli(f"{MODELS}:MyModel", "--input-size", "5,2", "--device-memory", "lots"),
           'device_memory must be the device\'s memory')  # fmt: skip
