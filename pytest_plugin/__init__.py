"""pytest plugin for inspectnn, installed as ``pytest_inspectnn`` (entry point ``inspectnn``).

It must stay importable without importing torch: fixtures import inspectnn lazily.
"""
