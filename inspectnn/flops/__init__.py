"""FLOP counting that agrees with ``torch.utils.flop_counter.FlopCounterMode``.

``FlopCounterMode`` is a dispatch mode: it sees every aten op in Python, which
costs ~10 µs an op and would triple the time of a model of small layers. The
tracer already sees every torch function once (its op recorder), so FLOPs are
counted at that level in three ways, one module each:

* functions that can never reach a counted aten op (elementwise math, views,
  norms, pooling ...) count zero without further work (``flops/zero.py``,
  ``ZERO_FLOP``);
* ``F.linear`` and the convolutions, the bulk of the FLOPs, use the same
  formulas as ``flop_counter`` (2·m·n·k; 2·batch·|w|·|spatial out|), and the
  fused kernels that ``FlopCounterMode`` counts as 0 on the CPU get formulas of
  their own: scaled-dot-product attention (``flop_counter``'s) and the
  recurrent kernels (``flops/formulas.py``: :func:`fast_flops`, :func:`rnn_flops`,
  and ``LEAF_KINDS``/:func:`leaf_flops` for torch's leaf layers);
* anything else runs under :class:`FlopDispatchMode` (``flops/dispatch.py``), which
  applies ``flop_counter``'s own registry as ``FlopCounterMode`` does, plus formulas
  for the matrix products it lacks (``flops/extra.py``, ``EXTRA_FORMULAS``: grouped
  and in-place matmuls, matrix-vector products).

Everything else is zero by ``FlopCounterMode``'s convention (elementwise math,
reductions, norms, views, copies, indexing), except the aten ops that multiply
matrices but have no formula anywhere (``no_formula``): those are reported as
uncounted, never silently taken as zero.

This module re-exports the names the tracer uses; it may import only its own
submodules (and they only torch and each other: ``zero``, ``formulas`` <- ``extra``
<- ``dispatch``).
"""

from __future__ import annotations

from inspectnn.flops.dispatch import FlopDispatchMode, local_view, no_formula, op_name
from inspectnn.flops.extra import EXTRA_FORMULAS
from inspectnn.flops.formulas import LEAF_KINDS, RNN_KERNELS, fast_flops, leaf_flops, rnn_flops
from inspectnn.flops.zero import ZERO_FLOP

__all__ = [
    "EXTRA_FORMULAS",
    "LEAF_KINDS",
    "RNN_KERNELS",
    "ZERO_FLOP",
    "FlopDispatchMode",
    "fast_flops",
    "leaf_flops",
    "local_view",
    "no_formula",
    "op_name",
    "rnn_flops",
]
