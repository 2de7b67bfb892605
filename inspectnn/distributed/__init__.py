"""Sharded models on ``torch.distributed``: what each rank holds, read without a collective.

``distributed/placement.py`` reads a tensor's sharding (a ``DTensor``'s global and
local shapes, its placements on the device mesh, the bytes this rank holds) from
metadata alone, so that it is safe on any rank at any time and under torch's fake
process group; ``params.py`` and ``summary.py`` use it for a sharded rank's counts.
``distributed/simulate.py`` (``inspectnn.simulate``) inspects one rank of a job of any
size in one process, on torch's fake process group. ``distributed/gather.py``
(``report.gather()``, ``simulate_job``) makes a whole job's per-rank view, the
``JobReport`` of ``distributed/job.py``. Imports nothing at package level
(see ``docs/design/sharding.md`` for what is still to come).
"""
