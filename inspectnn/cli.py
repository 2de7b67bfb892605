"""The ``inspectnn`` command (also ``python -m inspectnn``).

Exit codes: 0 success; 1 the forward failed, or with ``--check`` a finding of at
least ``--fail-on`` severity exists; 2 a usage error (bad arguments, a target
that is not a model). Messages, never tracebacks.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspectnn import __version__
from inspectnn.errors import InspectnnError

__all__ = ["main"]

_EXAMPLES = """examples:
  inspectnn examples/seed_models.py:SimpleCNN --input-size 64,1,28,28 -o cnn.png
      table of the seeds' CNN, and its diagram as PNG
  inspectnn mypkg.models:build_lm --arg vocab=32000 --input-size 1,128 --dtype long \\
      --device meta --depth 2
      a model from a factory function, on the meta device (no memory), two levels deep
  inspectnn model.py:Net --input-size 1,3,224,224 --check --fail-on warning -o report.json
      for CI: exit 1 when the forward fails or any warning is found; the report as JSON
  inspectnn demo
      the seeds' SimpleCNN: its table, and its diagram in simple_cnn.png
"""

_OUTPUTS = (".png", ".svg", ".pdf", ".dot", ".json", ".md", ".html", ".txt")


class UsageError(InspectnnError):
    """The command line named something that cannot be inspected (exit code 2)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inspectnn",
        description="See what a PyTorch model does to a tensor: every layer's shapes, dtypes, "
        "devices and parameters, and the exact layer behind an error.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"inspectnn {__version__}")
    p.add_argument(
        "target", nargs="?", metavar="TARGET",
        help="package.module:name or path/to/file.py:name (an nn.Module class, or a function "
             "returning a model), or a saved model file (.pt/.pth); 'demo' runs the demo",
    )  # fmt: skip
    p.add_argument(
        "--input-size",
        action="append",
        metavar="SHAPE",
        default=[],
        help="an input shape like 64,1,28,28; repeat for several inputs",
    )
    p.add_argument(
        "--dtype",
        action="append",
        metavar="DTYPE",
        default=[],
        help="input dtype (float32, long, ...): one for all inputs or one per input",
    )
    p.add_argument(
        "--device",
        metavar="DEVICE",
        help="cpu, meta (no memory), cuda or cuda:N; default: where the model is",
    )
    p.add_argument(
        "--mode",
        choices=("eval", "train", "same"),
        default="eval",
        help="train/eval flags during the forward (default: eval)",
    )
    p.add_argument("--depth", type=int, metavar="N", help="deepest nesting shown")
    p.add_argument(
        "--columns",
        metavar="COLS",
        help="table columns, comma-separated: layer,input,output,dtype,device,"
        "params,trainable,flops",
    )
    p.add_argument(
        "--format",
        choices=("table", "markdown", "json", "dot"),
        help="what to print (default: table; with -o and no --format, nothing)",
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE, by suffix: " + " ".join(_OUTPUTS)
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the forward fails or a finding of --fail-on severity exists",
    )
    p.add_argument(
        "--fail-on",
        choices=("info", "warning", "error"),
        default="error",
        help="with --check: the least severity that fails (default: error)",
    )
    p.add_argument(
        "--arg",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="keyword argument for the model's class or factory (Python literal)",
    )
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="allow loading a pickled whole model from a .pt file. A pickle can run "
                        "any code when loaded: use it only for files you trust. Without it, "
                        "files load with torch.load(weights_only=True)")  # fmt: skip
    return p


def _parse_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--arg takes KEY=VALUE, like --arg hidden=128 (got {pair!r})")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def _parse_shape(text: str) -> tuple[int, ...]:
    parts = text.replace("x", ",").replace(" ", "").strip("()[]").split(",")
    try:
        return tuple(int(p) for p in parts if p)
    except ValueError:
        raise UsageError(f"--input-size takes a shape like 64,1,28,28 (got {text!r})") from None


def _import_target(spec: str) -> Any:
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise UsageError(
            f"cannot tell what {spec!r} names: pass package.module:name, "
            "path/to/file.py:name, or a saved .pt/.pth file"
        )
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"no such file: {where}")
        module_name = f"_inspectnn_target_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"{where} is not a Python file")
        module = importlib.util.module_from_spec(loader_spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            sys.modules[module_name] = module
            loader_spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.resolve().parent))
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise UsageError(f"cannot import {where}: {err}") from None
    if not hasattr(module, name):
        public = sorted(n for n in vars(module) if not n.startswith("_"))[:20]
        raise UsageError(f"{where} has no {name!r}; it has: {', '.join(public)}")
    return getattr(module, name)


def _build(obj: Any, kwargs: dict[str, Any], spec: str) -> Any:
    from torch import nn

    if isinstance(obj, nn.Module):
        if kwargs:
            raise UsageError(f"{spec} is a model object already; --arg is for classes/factories")
        return obj
    if not callable(obj):
        raise UsageError(f"{spec} is a {type(obj).__name__}, not a model class or factory")
    try:
        model = obj(**kwargs)
    except TypeError as err:
        raise UsageError(
            f"calling {spec} failed: {err}. Pass its arguments with --arg key=value"
        ) from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec} returned a {type(model).__name__}, not an nn.Module")
    return model


def _load_file(path: Path, unsafe: bool) -> Any:
    import pickle

    import torch
    from torch import nn

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise UsageError(
                f"{path} is a TorchScript model: scripted code runs outside Python, where "
                "submodule calls cannot be seen, so it cannot be traced. Pass the eager "
                "model's class instead (path/to/file.py:ClassName)."
            )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe)
    except pickle.UnpicklingError as err:
        if not unsafe:
            raise UsageError(
                f"{path} holds a pickled object that weights_only loading refuses (likely a "
                "whole model saved with torch.save(model)). Loading it would run code from "
                "the file: if you trust it, pass --unsafe-pickle; better, pass the model's "
                "class (path/to/file.py:ClassName)."
            ) from None
        raise UsageError(f"cannot load {path}: {err}") from None
    except Exception as err:
        raise UsageError(f"{path} is not a PyTorch model file: {err}") from None
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict):
        raise UsageError(
            f"{path} holds a state dict (parameter tensors only), which has no architecture "
            "to inspect. Pass the model's class instead, e.g. path/to/model.py:MyNet, and "
            "load the weights in its constructor if you need them."
        )
    raise UsageError(f"{path} holds a {type(obj).__name__}, not an nn.Module")


def _load_model(args: argparse.Namespace) -> Any:
    target = args.target
    kwargs = _parse_kwargs(args.arg)
    path = Path(target)
    if ":" not in target or (path.is_file() and path.suffix not in (".py",)):
        if not path.exists():
            raise UsageError(f"no such file: {target} (for a class, write file.py:ClassName)")
        return _load_file(path, args.unsafe_pickle)
    return _build(_import_target(target), kwargs, target)


def _write(report: Any, path: Path, args: argparse.Namespace) -> None:
    suffix = path.suffix.lower()
    if suffix not in _OUTPUTS:
        raise UsageError(f"cannot write {path}: use a name ending in {' '.join(_OUTPUTS)}")
    if suffix in (".png", ".svg", ".pdf", ".dot"):
        report.render(path, depth=args.depth)
    else:
        kind = {".json": "json", ".md": "markdown", ".html": "html", ".txt": "table"}[suffix]
        path.write_text(_text(report, kind, args), encoding="utf-8")


def _text(report: Any, fmt: str, args: argparse.Namespace) -> str:
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    if fmt == "json":
        return str(report.to_json()) + "\n"
    if fmt == "markdown":
        from inspectnn.render.markdown import render_markdown

        return render_markdown(report, depth=args.depth, columns=columns or ())
    if fmt == "html":
        return str(report._repr_html_()) + "\n"
    if fmt == "dot":
        return str(report.graph(depth=args.depth).source)
    try:
        return str(report.table(depth=args.depth, columns=columns)) + "\n"
    except ValueError as err:
        raise UsageError(str(err)) from None


def _run(args: argparse.Namespace) -> int:
    from inspectnn.api import inspect
    from inspectnn.records import SEVERITIES

    model = _load_model(args)
    if not args.input_size:
        raise UsageError(
            "pass the model's input shape with --input-size, e.g. --input-size 64,1,28,28 "
            "(repeat it for a model with several inputs)"
        )
    shapes = [_parse_shape(s) for s in args.input_size]
    dtypes = args.dtype if len(args.dtype) != 1 else args.dtype[0]
    report = inspect(
        model,
        input_size=shapes if len(shapes) > 1 else shapes[0],
        dtypes=dtypes or None,
        device=args.device,
        mode=args.mode,
        on_error="report",
    )
    fmt = args.format or (None if args.output else "table")
    if fmt is not None:
        sys.stdout.write(_text(report, fmt, args))
    if args.output:
        _write(report, Path(args.output), args)
        print(f"wrote {args.output}", file=sys.stderr)
    if report.error is not None:
        where = f"'{report.error.layer}'" if report.error.layer else "the root module"
        if fmt == "table":  # the diagnosis is printed under the table already
            print(f"inspectnn: the forward failed in {where} ({report.error.type})",
                  file=sys.stderr)  # fmt: skip
        else:
            print(f"inspectnn: the forward failed\n{report.error.message}", file=sys.stderr)
        return 1
    if args.check:
        floor = SEVERITIES.index(args.fail_on)
        bad = [f for f in report.findings if SEVERITIES.index(f.severity) >= floor]
        if bad:
            print(f"inspectnn: {len(bad)} finding(s) of severity >= {args.fail_on}",
                  file=sys.stderr)  # fmt: skip
            return 1
    return 0


def _demo(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="inspectnn demo", description="Inspect the seeds' SimpleCNN and draw it."
    )
    parser.add_argument(
        "-o", "--output", default="simple_cnn.png", metavar="FILE",
        help="diagram file; .png .svg .pdf or .dot (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from inspectnn.demo import run_demo

    run_demo(args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["demo"]:
            return _demo(argv[1:])
        parser = _parser()
        args = parser.parse_args(argv)
        if args.target is None:
            parser.print_help()
            return 2
        return _run(args)
    except UsageError as err:
        print(f"inspectnn: {err}", file=sys.stderr)
        return 2
    except InspectnnError as err:
        print(f"inspectnn: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    except KeyboardInterrupt:
        print("inspectnn: interrupted", file=sys.stderr)
        return 130
