"""The ``inspectnn`` command (also ``python -m inspectnn``).

Exit codes: 0 success; 1 the forward failed, or with ``--check`` a finding of at
least ``--fail-on`` severity exists; 2 a usage error (bad arguments, a target
that is not a model or cannot be imported, built or loaded, an output that
cannot be written). Messages, never tracebacks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from inspectnn import __version__
from inspectnn.api import inspect
from inspectnn.cli_load import UsageError, _importable, _load_model
from inspectnn.demo import run_demo
from inspectnn.errors import InspectnnError
from inspectnn.records import SEVERITIES
from inspectnn.renderers.html import render_html_page
from inspectnn.renderers.markdown import render_markdown
from inspectnn.renderers.memory_plot import FORMATS as PLOT_FORMATS
from inspectnn.renderers.table import COLUMNS, DEFAULT_COLUMNS
from inspectnn.training.optim import NAMES

__all__ = ["main"]

_EXAMPLES = """examples:
  inspectnn examples/seed_models.py:SimpleCNN --input-size 64,1,28,28 -o cnn.png
      table of the seeds' CNN, and its diagram as PNG
  inspectnn mypkg.models:build_lm --arg vocab=32000 --input-size 1,128 --dtype long \\
      --device meta --depth 2
      a model from a factory function, on the meta device (no memory), two levels deep
  inspectnn mypkg.models:build_lm --input-size 8,1024 --dtype long --device meta \\
      --backward --optimizer adamw --amp bf16 --memory-plot step.png
      one training step's memory after the table (a meta step costs no memory),
      and the picture of it over the step
  inspectnn model.py:Net --input-size 1,3,224,224 --check --fail-on warning -o report.json
      for CI: exit 1 when the forward fails or any warning is found; the report as JSON
  inspectnn demo
      the seeds' SimpleCNN: its table, and its diagram in simple_cnn.png
"""

_OUTPUTS = (".png", ".svg", ".pdf", ".dot", ".json", ".md", ".html", ".txt")
_SHAPE_FORMS = 'write it as 2,3,32,32, 2x3x32x32 or "2 3 32 32"; repeat --input-size for each input'


class _Exit(Exception):
    """argparse is done: ``--help``, ``--version`` or a usage error; ``main`` returns ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose exits return from :func:`main` instead of ending the process
    (``main(argv)`` is called in-process too), while user code's own ``SystemExit`` stays."""

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._print_message(message, sys.stderr)
        raise _Exit(status)


def _parser() -> argparse.ArgumentParser:

    p = _Parser(
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
        type=_shape,
        metavar="SHAPE",
        default=[],
        help='an input shape: 64,1,28,28, 64x1x28x28 or "64 1 28 28"; repeat for several '
        "inputs",
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
        help="train/eval flags during the forward (default: eval; train with --backward)",
    )
    p.add_argument(
        "--backward", action="store_true",
        help="run one training step after the forward (loss: the sum of the output) and "
             "print its memory after the table; the model is left as it was",
    )  # fmt: skip
    p.add_argument(
        "--optimizer", choices=tuple(NAMES),
        help="the step's optimizer, run on shadow tensors (implies --backward)",
    )  # fmt: skip
    p.add_argument(
        "--amp", choices=("bf16", "fp16"),
        help="autocast dtype of the forward and the step's loss (on meta too)",
    )  # fmt: skip
    p.add_argument(
        "--device-memory", metavar="SIZE",
        help="the device's memory (e.g. 80GB, powers of 1024): an error finding when the "
             "run would not fit (the step's peak with --backward)",
    )  # fmt: skip
    p.add_argument(
        "--memory-plot", metavar="FILE",
        help="draw the step's memory over time to FILE (.png .svg .pdf; needs matplotlib); "
             "implies --backward",
    )  # fmt: skip
    p.add_argument("--depth", type=int, metavar="N", help="deepest nesting shown")
    p.add_argument(
        "--columns",
        metavar="COLS",
        help="table columns, comma-separated (e.g. layer,output,kernel), from: "
        + ", ".join(COLUMNS) + " (default: " + ",".join(DEFAULT_COLUMNS) + ")",
    )
    p.add_argument(
        "--ascii",
        action="store_true",
        help="draw the table (printed or .txt) with ASCII-only borders, for logs "
        "that cannot show box drawing",
    )
    p.add_argument(
        "--format",
        choices=("table", "markdown", "json", "dot"),
        help="what to print (default: table; with -o and no --format, nothing)",
    )
    p.add_argument(
        "-o", "--output", metavar="FILE",
        help="write to FILE, by suffix: " + " ".join(_OUTPUTS) + " (.html: a standalone page); "
             "missing folders are created",
    )  # fmt: skip
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


def _shape(text: str) -> tuple[int, ...]:
    """The argparse type of ``--input-size``: ``2,3,32,32``, ``2x3x32x32`` or ``"2 3 32 32"``.

    Raises:
        argparse.ArgumentTypeError: Anything else, naming the part that is not a dimension.
    """
    body = text.strip()
    if body[:1] + body[-1:] in ("()", "[]"):
        body = body[1:-1].strip()
    if not body:
        raise argparse.ArgumentTypeError(f"{text!r} has no dimensions: {_SHAPE_FORMS}")
    if "," in body:
        parts = body.split(",")
    elif "x" in body.lower():
        parts = body.lower().split("x")
    else:
        parts = body.split()
    for part in (p.strip() for p in parts):
        if not part:
            raise argparse.ArgumentTypeError(f"{text!r} has an empty dimension: {_SHAPE_FORMS}")
        if not (part.isascii() and part.isdigit()):
            raise argparse.ArgumentTypeError(
                f"{text!r}: {part!r} is not a dimension (a whole number): {_SHAPE_FORMS}"
            )
    return tuple(int(p) for p in parts)


def _plot_path(text: str) -> Path:
    """``--memory-plot``'s path, its suffix checked before anything runs."""
    path = Path(text)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise UsageError(
            f"--memory-plot {text}: use a name ending in {' '.join(PLOT_FORMATS)}"
        )
    return path


def _output_path(text: str) -> Path:
    """``-o``'s path, its suffix checked before anything runs."""
    path = Path(text)
    if path.suffix.lower() not in _OUTPUTS:
        raise UsageError(f"cannot write {text}: use a name ending in {' '.join(_OUTPUTS)}")
    return path


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Create the missing folders of ``path``; an OSError while writing becomes a message."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in path.parents if p.exists())  # `Path("")` exists: never empty
        raise UsageError(f"cannot write {path}: {blocker} is a file, not a folder") from None
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None


def _write(report: Any, path: Path, args: argparse.Namespace) -> None:
    suffix = path.suffix.lower()
    with _writing(path):
        if suffix in (".png", ".svg", ".pdf", ".dot"):
            report.render(path, depth=args.depth)
        else:
            kind = {".json": "json", ".md": "markdown", ".html": "page", ".txt": "table"}[suffix]
            path.write_text(_text(report, kind, args), encoding="utf-8")


def _columns(args: argparse.Namespace) -> list[str] | None:
    """``--columns`` as a list, each checked, for the table and Markdown alike."""
    if not args.columns:
        return None
    columns = [c.strip() for c in args.columns.split(",")]
    for column in columns:
        if column not in COLUMNS:
            raise UsageError(f"--columns: unknown column {column!r}; choose from "
                             f"{','.join(COLUMNS)}")  # fmt: skip
    return columns


def _text(report: Any, fmt: str, args: argparse.Namespace) -> str:
    columns = _columns(args)
    if fmt == "json":
        return str(report.to_json()) + "\n"
    if fmt == "markdown":
        return render_markdown(report, depth=args.depth, columns=columns or ())
    if fmt == "page":
        return render_html_page(report)
    if fmt == "dot":
        return str(report.graph(depth=args.depth).source)
    try:
        table = str(report.table(depth=args.depth, columns=columns, ascii=args.ascii)) + "\n"
    except ValueError as err:
        raise UsageError(str(err)) from None
    memory = report.memory
    return table if memory is None else f"{table}\n{memory}\n"


def _run(args: argparse.Namespace) -> int:
    output = _output_path(args.output) if args.output else None
    plot = _plot_path(args.memory_plot) if args.memory_plot else None
    _columns(args)  # checked before the model is built and run
    with _importable(args.target):
        model = _load_model(args)
        if not args.input_size:
            raise UsageError(
                "pass the model's input shape with --input-size, e.g. --input-size 64,1,28,28 "
                "(repeat it for a model with several inputs)"
            )
        shapes = args.input_size
        dtypes = args.dtype if len(args.dtype) != 1 else args.dtype[0]
        report = inspect(
            model,
            input_size=shapes if len(shapes) > 1 else shapes[0],
            dtypes=dtypes or None,
            device=args.device,
            mode=args.mode,
            on_error="report",
            backward=args.backward or plot is not None,
            optimizer=args.optimizer,
            amp=args.amp,
            device_memory=args.device_memory,
        )
    fmt = args.format or (None if output else "table")
    if fmt is not None:
        sys.stdout.write(_text(report, fmt, args))
    if output is not None:
        _write(report, output, args)
        print(f"wrote {output}", file=sys.stderr)
    if plot is not None and report.memory is not None:
        with _writing(plot):
            report.memory.plot(plot)
        print(f"wrote {plot}", file=sys.stderr)
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
    parser = _Parser(
        prog="inspectnn demo", description="Inspect the seeds' SimpleCNN and draw it."
    )
    parser.add_argument(
        "-o", "--output", default="simple_cnn.png", metavar="FILE",
        help="diagram file; .png .svg .pdf or .dot (default: %(default)s); missing folders "
             "are created",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with _writing(Path(args.output)):
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
    except _Exit as done:  # argparse: --help, --version, a usage error
        return done.code
    except UsageError as err:
        print(f"inspectnn: {err}", file=sys.stderr)
        return 2
    except InspectnnError as err:
        print(f"inspectnn: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    except KeyboardInterrupt:
        print("inspectnn: interrupted", file=sys.stderr)
        return 130
