"""inspectnn: see what a PyTorch model does to a tensor.

>>> import torch, inspectnn
>>> report = inspectnn.inspect(torch.nn.Linear(4, 2), torch.randn(3, 4))
>>> report.totals.params
10
"""

# The renderers (inspectnn.renderers, not to be confused with the function
# inspectnn.render from draw.py) are loaded with the package, so that
# inspectnn.renderers.markdown.render_markdown and the like resolve after `import inspectnn`.
import inspectnn.renderers.graph
import inspectnn.renderers.html
import inspectnn.renderers.json
import inspectnn.renderers.markdown
import inspectnn.renderers.table  # noqa: F401
from inspectnn.api import inspect
from inspectnn.distributed.gather import gather, simulate_job
from inspectnn.distributed.job import JobReport
from inspectnn.distributed.simulate import simulate
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
from inspectnn.records import ErrorInfo, Finding, LayerCall, OpCall, TensorMeta, Totals
from inspectnn.report import Report

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
    "JobReport",
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
    "gather",
    "inspect",
    "render",
    "simulate",
    "simulate_job",
]
