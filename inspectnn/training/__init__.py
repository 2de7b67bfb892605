"""The training step: what one forward, loss, backward and optimizer step hold.

``inspect(..., backward=True)`` runs the step through the modules here:
``training/records.py`` (the frozen memory records a Report carries),
``training/memory.py`` (the allocation tracker and the replay that turns it into
categories, a timeline and a peak) and ``training/optim.py`` (the optimizer run on
shadow tensors, never on the user's parameters). Imports nothing at package level.
"""
