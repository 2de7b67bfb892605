"""The tracer, split by concept; nothing is imported here, so importing one module
does not import the rest.

``tracer`` holds the ``Tracer`` context manager (install, pre/post steps, detach);
``raw`` the raw trace's layout (slot names, provenance codes); ``flatten`` value
flattening, tensor provenance and raw values to ``TensorMeta``; ``ops`` the op
recorder, op naming and in-place detection; ``counting`` FLOP routing; ``notes``
contracts, numerics, buffer writes and unregistered parameters; ``wrap`` forward
wrapping, per-module facts and the recursion limit; ``build`` the raw trace to
records. Each module's docstring says what it may import; docs/architecture.md has
the map.
"""
