"""Shared test configuration: pytester drives the plugin through real pytest runs.

``torch._dynamo`` is imported once here, before any in-process pytester run: torch
imports it lazily (a meta run, a FLOP decomposition), and pytester drops the modules a
run imported when it ends, so the next import would run torch's one-time
``TORCH_LIBRARY`` registrations again, which torch refuses ("Only a single
TORCH_LIBRARY can be used to register the namespace _inductor_test"): every later
test in the session that touches those ops would then fail.
"""

import torch._dynamo  # noqa: F401  (see the docstring)

pytest_plugins = ["pytester"]
