"""Shared test configuration: pytester drives the plugin through real pytest runs."""

pytest_plugins = ["pytester"]
