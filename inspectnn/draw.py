"""One-liners that draw a model: its traced dataflow, or its autograd graph."""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inspectnn.api import inspect
from inspectnn.errors import InvalidInputError
from inspectnn.inputs import check_model
from inspectnn.preserve import Mode, Preserved
from inspectnn.values import tensors

__all__ = ["autograd_graph", "render"]


def render(
    model: nn.Module,
    *args: Any,
    path: str | PathLike[str],
    depth: int | None = None,
    direction: str = "TB",
    fold: bool = True,
    **kwargs: Any,
) -> Path:
    """Inspect ``model`` and write its diagram to ``path`` in one call.

    A forward that fails is drawn too, the failing layer in red.

    Args:
        model: The model.
        *args: Its inputs, as for ``inspect``.
        path: Where to write: ``.png``, ``.svg``, ``.pdf`` or ``.dot``.
        depth: Nesting depth of the nodes; None picks a readable one.
        direction: ``"TB"`` or ``"LR"``.
        fold: Fold identical consecutive blocks into one node.
        **kwargs: ``inspect``'s options (``device``, ``mode``, ``input_size`` ...) and
            keyword inputs of ``forward``.

    Returns:
        The path written.

    Example:
        >>> import torch, inspectnn
        >>> inspectnn.render(torch.nn.Linear(4, 2), torch.randn(1, 4), path="lin.dot").name
        'lin.dot'
    """
    kwargs.setdefault("on_error", "report")
    report = inspect(model, *args, **kwargs)
    return report.render(path, depth=depth, direction=direction, fold=fold)


def autograd_graph(
    model: nn.Module, *args: Any, mode: Mode = "eval", show_saved: bool = False, **kwargs: Any
) -> Any:
    """The autograd graph of one forward, drawn by torchviz, with parameter names.

    Unlike ``torchviz.make_dot`` on its own, this accepts models that return
    dicts, dataclasses or Hugging Face ``ModelOutput``: every output tensor that
    has a gradient function is a root of the graph. The model is left as it was.

    Args:
        model: The model.
        *args: Its inputs.
        mode: ``"eval"``, ``"train"`` or ``"same"``, as for ``inspect``.
        show_saved: Also draw the tensors autograd saved for backward.
        **kwargs: Keyword inputs of ``forward``.

    Returns:
        A ``graphviz.Digraph`` (``.render(...)``, or shown inline in a notebook).

    Raises:
        InvalidInputError: No output depends on a parameter that requires grad.
    """
    from torchviz import make_dot

    model = check_model(model)
    with Preserved(model, mode, modules=list(model.modules())), torch.enable_grad():
        out = model(*args, **kwargs)
    roots = [t for t in tensors(out) if t.grad_fn is not None]
    if not roots:
        raise InvalidInputError(
            "no output of the model has a gradient function, so there is no autograd graph: "
            "check that some parameters have requires_grad=True."
        )
    params = {name: p for name, p in model.named_parameters()}
    with warnings.catch_warnings():  # torchviz still uses distutils' LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        root = tuple(roots) if len(roots) > 1 else roots[0]
        return make_dot(root, params=params, show_saved=show_saved)
