"""The shape-spec language and its matcher.

A spec is a string or a tuple of dimensions:

* integers match exactly: ``"64 10"``, ``(64, 10)``;
* names bind on first use and must agree everywhere else in the same
  assertion: ``"B 3 H W"``;
* ``*`` (or ``_``) matches any one dimension, ``...`` any number of them
  (at most once per spec): ``"B ... 10"``;
* the spec ``"_"`` alone is not checked at all.

>>> bindings: dict[str, int] = {}
>>> match_shape("B 128", (64, 128), bindings) is None, bindings
(True, {'B': 64})
>>> print(match_shape("B 10", (32, 10), bindings))
dimension 0: expected B=64 (bound earlier), got 32
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from inspectnn.errors import SpecError

__all__ = ["Spec", "SpecError", "SpecLike", "format_bindings", "match_shape", "parse_spec"]

Dim = int | str
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Spec:
    """A parsed shape spec: ``dims`` and the text it came from."""

    dims: tuple[Dim, ...]
    text: str
    unchecked: bool = False

    def __str__(self) -> str:
        return self.text


SpecLike = str | Sequence[int | str] | Spec


def parse_spec(spec: SpecLike) -> Spec:
    """Parse ``"B 3 H W"``, ``(64, 10)``, ``"B ... 10"`` or ``"_"`` into a Spec.

    Raises:
        SpecError: An unknown token, or ``...`` used twice.
    """
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if text == "_":
            return Spec((), "_", unchecked=True)
        tokens: list[int | str] = [
            int(t) if t.lstrip("-").isdigit() else t for t in text.replace(",", " ").split()
        ]
    elif isinstance(spec, Sequence):
        tokens = list(spec)
        text = " ".join(str(t) for t in tokens)
    else:
        raise SpecError(
            f"a shape spec is a string like 'B 3 H W' or a tuple like (64, 10), got {spec!r}"
        )
    dims: list[Dim] = []
    for token in tokens:
        if isinstance(token, bool) or not isinstance(token, (int, str)):
            raise SpecError(f"bad dimension {token!r} in spec {text!r}")
        if isinstance(token, int):
            if token < 0:
                raise SpecError(f"dimension {token} in spec {text!r} is negative")
        elif token not in ("*", "_", "...") and not _NAME.match(token):
            raise SpecError(
                f"bad dimension {token!r} in spec {text!r}: use integers, names like B or "
                "seq, '*' for any one dimension, or '...' for any number"
            )
        dims.append("*" if token == "_" else token)
    if dims.count("...") > 1:
        raise SpecError(f"spec {text!r} uses '...' twice; it may appear once")
    return Spec(tuple(dims), text)


def _match_dim(want: Dim, got: int, i: int, bindings: dict[str, int]) -> str | None:
    if want == "*":
        return None
    if isinstance(want, int):
        return None if want == got else f"dimension {i}: expected {want}, got {got}"
    if want in bindings:
        if bindings[want] != got:
            return f"dimension {i}: expected {want}={bindings[want]} (bound earlier), got {got}"
        return None
    bindings[want] = got
    return None


def match_shape(
    spec: SpecLike, shape: Sequence[int], bindings: dict[str, int]
) -> str | None:
    """Check ``shape`` against ``spec``; None if it matches, else what is wrong.

    New names are bound in ``bindings`` (only when the whole shape matches).
    """
    parsed = parse_spec(spec)
    if parsed.unchecked:
        return None
    dims = parsed.dims
    shape = [int(d) for d in shape]
    if "..." in dims:
        cut = dims.index("...")
        head, tail = dims[:cut], dims[cut + 1 :]
        if len(shape) < len(head) + len(tail):
            return f"rank: expected at least {len(head) + len(tail)} dimensions, got {len(shape)}"
        pairs = list(zip(head, shape[: len(head)], range(len(head)), strict=True))
        start = len(shape) - len(tail)
        pairs += list(zip(tail, shape[start:], range(start, len(shape)), strict=True))
    else:
        if len(shape) != len(dims):
            return f"rank: expected {len(dims)} dimensions, got {len(shape)}"
        pairs = list(zip(dims, shape, range(len(shape)), strict=True))
    trial = dict(bindings)
    for want, got, i in pairs:
        problem = _match_dim(want, got, i, trial)
        if problem is not None:
            return problem
    bindings.update(trial)
    return None


def format_bindings(bindings: dict[str, int]) -> str:
    """``{"B": 64, "H": 28}`` -> ``"B=64, H=28"`` (``"none"`` when empty)."""
    return ", ".join(f"{k}={v}" for k, v in bindings.items()) or "none"
