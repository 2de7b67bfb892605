"""inspectnn: see what a PyTorch model does to a tensor.

>>> import torch, inspectnn
>>> report = inspectnn.inspect(torch.nn.Linear(4, 2), torch.randn(3, 4))
>>> report.totals.params
10
"""

# The subpackage inspectnn.render (the renderers) is imported first, so that the
# function inspectnn.render bound below is what the name means from then on:
# importing a submodule later does not rebind an already-imported parent.
import inspectnn.render.graph
import inspectnn.render.html
import inspectnn.render.json
import inspectnn.render.table  # noqa: F401
from inspectnn.api import inspect
from inspectnn.draw import autograd_graph, render
from inspectnn.errors import (
    DependencyError,
    DeviceMismatchError,
    DtypeMismatchError,
    ForwardError,
    InspectnnError,
    InvalidInputError,
    LayerNotFoundError,
    ShapeMismatchError,
    SpecError,
)
from inspectnn.records import ErrorInfo, Finding, LayerCall, OpCall, Report, TensorMeta, Totals

__version__ = "0.1.0"

__all__ = [
    "DependencyError",
    "DeviceMismatchError",
    "DtypeMismatchError",
    "ErrorInfo",
    "Finding",
    "ForwardError",
    "InspectnnError",
    "InvalidInputError",
    "LayerCall",
    "LayerNotFoundError",
    "OpCall",
    "Report",
    "ShapeMismatchError",
    "SpecError",
    "TensorMeta",
    "Totals",
    "__version__",
    "autograd_graph",
    "inspect",
    "render",
]
