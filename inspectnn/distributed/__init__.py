"""Sharded models on ``torch.distributed``: what each rank holds, read without a collective.

``distributed/placement.py`` reads a tensor's sharding (a ``DTensor``'s global and
local shapes, its placements on the device mesh, the bytes this rank holds) from
metadata alone, so that it is safe on any rank at any time and under torch's fake
process group. Imports nothing at package level; nothing in ``inspect()`` uses it yet
(see ``docs/design/sharding.md``).
"""
