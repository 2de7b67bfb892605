"""The unit layer: each module's functions called directly, no ``inspect()``.

A package so that its files may share their names with the behaviour tests one
level up (``tests/unit/test_shapes.py`` beside ``tests/test_shapes.py``).
"""
