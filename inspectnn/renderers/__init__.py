"""Renderers: pure functions from a Report to text.

``table`` (the plain-text table), ``markdown``, ``html``, ``json`` (the
``inspectnn/1`` schema) and ``graph`` (Graphviz). Not to be confused with the
function :func:`inspectnn.render`, which inspects a model and draws its dataflow.
"""
