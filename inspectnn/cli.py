"""The ``inspectnn`` command.

``inspectnn demo [-o FILE]`` inspects the seeds' SimpleCNN, prints its table and
writes its diagram. Messages, never tracebacks: exit 0 on success, 1 when the
work failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from inspectnn import __version__
from inspectnn.errors import InspectnnError

__all__ = ["main"]

_EPILOG = """examples:
  inspectnn demo                      table of the seeds' SimpleCNN, diagram in simple_cnn.png
  inspectnn demo -o cnn.svg           the same diagram as SVG
  python -m inspectnn demo -o cnn.dot DOT text, no Graphviz binary needed
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspectnn",
        description="See what a PyTorch model does to a tensor.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"inspectnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="inspect the seeds' SimpleCNN and draw it")
    demo.add_argument(
        "-o", "--output", default="simple_cnn.png", metavar="FILE",
        help="diagram file; .png .svg .pdf or .dot (default: %(default)s)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from inspectnn.demo import run_demo

    try:
        run_demo(args.output)
    except InspectnnError as err:
        print(f"inspectnn: {err}", file=sys.stderr)
        return 1
    return 0
