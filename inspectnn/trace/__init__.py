"""The tracer, split by concept; nothing is imported here, so importing one module
does not import the rest.

``tracer`` holds the ``Tracer`` context manager and ``build``; ``flatten`` raw value
metadata and tensor provenance; ``ops`` the op recorder, op naming and in-place
detection; ``wrap`` forward wrapping and per-module facts. Each module's docstring
says what it may import; docs/architecture.md has the map.
"""
