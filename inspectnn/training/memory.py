"""The allocation tracker of one training step, and the replay that makes its report.

``AllocationTracker`` is a ``TorchDispatchMode``: it sees every aten op of the
forward, the loss, the backward (dispatch modes reach autograd's backward) and the
optimizer step, and registers each new storage among an op's outputs, as torch's
own ``torch.distributed._tools.mem_tracker`` does: a storage is known by the
identity of its Python object (PyTorch keeps one per storage while it lives), its
size is ``nbytes()`` (meta and fake tensors have storages of the right size) and a
weak reference tells when it is freed. Each allocation and free is an event, with
the phase and the module path (``module_of()``, supplied by the caller) at that
moment. Parameters, buffers and inputs exist before the step: they are registered
up front. ``saved()`` gives the ``saved_tensors_hooks`` that mark storages saved
for backward and the module that saved them.

Storages are classified only at the end, with what is then known (a storage is in
one category for its whole life): parameters, buffers and inputs as registered; a
parameter's ``.grad``; ``optimizer.state``; saved for backward; else temporary.
``finish()`` then replays the events into the timeline, the peak and the per-module
rows of a ``records.MemoryReport``.

May import: torch, ``training/records.py``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode, is_traceable_wrapper_subclass

from inspectnn.training.records import (
    CATEGORIES,
    PHASES,
    MemoryPoint,
    MemoryReport,
    ModuleMemory,
    Phase,
)

__all__ = ["CUDA_BLOCK", "MAX_POINTS", "AllocationTracker", "ModuleInfo", "storage_bytes"]

MAX_POINTS = 2000  # the timeline is thinned to at most this many points
CUDA_BLOCK = 512  # bytes: the CUDA caching allocator rounds every block up to a multiple

_PARAMETERS, _BUFFERS, _INPUTS, _GRADIENTS, _STATE, _ACTIVATIONS, _TEMPORARY = range(7)
_FIXED = {"parameters": _PARAMETERS, "buffers": _BUFFERS, "inputs": _INPUTS}
_UNCOUNTED = -2  # a registered alias (a shadow tensor): known, never counted
_NONE = -1  # not fixed up front: classified at the end

_LOSS = PHASES.index("loss")  # phases up to this one save activations


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """What the caller knows of one module, for its ``ModuleMemory`` row.

    Attributes:
        name: The module path (``""`` for the model itself).
        type: The module's class name.
        parameters: Its own parameters (each parameter in one module only).
        gradients: Their gradients after the backward.
        optimizer_state: The optimizer's state tensors of its own parameters.
        input_bytes: Bytes of the distinct storages of its inputs (first call).
    """

    name: str
    type: str
    parameters: tuple[Tensor, ...] = ()
    gradients: tuple[Tensor, ...] = ()
    optimizer_state: tuple[Tensor, ...] = ()
    input_bytes: int = 0


def _plain(t: Tensor) -> list[Tensor]:
    """The plain tensors behind a tensor (a wrapper subclass's inner tensors)."""
    if type(t) is not Tensor and is_traceable_wrapper_subclass(t):
        attrs, _ = t.__tensor_flatten__()
        inner = (getattr(t, a) for a in attrs)
        return [p for v in inner if isinstance(v, Tensor) for p in _plain(v)]
    return [t]


def _storage(t: Tensor) -> Any:
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse, nested: no storage to count
        return None


def _storages(t: Tensor) -> list[Any]:
    """The untyped storages behind a tensor (a wrapper subclass's inner tensors')."""
    return [st for p in _plain(t) if (st := _storage(p)) is not None]


def storage_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and ties counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        for st in _storages(t):
            seen[id(st)] = st.nbytes()
    return sum(seen.values())


def owned_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of ``tensors`` themselves, each storage counted at most once: a storage
    they share with others' tensors (FSDP2's gradients, views of one flat buffer a
    reduce-scatter wrote) counts only the part they view, a storage of their own whole."""
    views: dict[int, tuple[int, dict[int, int]]] = {}
    for t in tensors:
        for p in _plain(t):
            st = _storage(p)
            if st is not None:
                views.setdefault(id(st), (st.nbytes(), {}))[1][id(p)] = p.numel() * p.element_size()
    return sum(min(whole, sum(parts.values())) for whole, parts in views.values())


class AllocationTracker(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Every storage allocated and freed during a training step, with phase and module.

    Use: ``register()`` the storages that exist before the step, then run the
    step's parts ``with tracker:`` (it may be entered more than once), calling
    ``enter_phase()`` before each, and the forward and loss inside
    ``with tracker.saved():``. ``finish()`` makes the report.

    Args:
        module_of: Returns the path of the module running now (``""`` for none).
        granularity: Each storage's bytes are rounded up to a multiple of this:
            ``CUDA_BLOCK`` for a step on CUDA (the caching allocator's smallest
            block, as ``MemTracker`` counts), 1 elsewhere.
    """

    def __init__(self, module_of: Callable[[], str], granularity: int = 1) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.module_of = module_of
        self.granularity = granularity
        self.phase = 0  # index into PHASES
        # per storage id (sid), parallel lists
        self._nbytes: list[int] = []
        self._fixed: list[int] = []
        self._saved_by: dict[int, str] = {}  # sid -> module that first saved it
        # storage object id -> (sid, weak reference whose callback records the free)
        self._live: dict[int, tuple[int, weakref.ref[Any]]] = {}
        # events: sid + 1 allocated, -(sid + 1) freed, 0 a phase starts
        self._events: list[int] = []
        self._event_phase: list[int] = []
        self._event_module: list[str] = []
        self._open = True

    # -- recording ---------------------------------------------------------------

    def _event(self, code: int) -> None:
        self._events.append(code)
        self._event_phase.append(self.phase)
        self._event_module.append(self.module_of())

    def _freed(self, sid: int, key: int, _ref: object) -> None:
        if self._open:
            self._live.pop(key, None)
            self._event(-(sid + 1))

    def _add(self, st: Any, fixed: int) -> int:
        """Register one storage object not seen before; returns its sid."""
        sid = len(self._nbytes)
        key = id(st)
        n = 0 if fixed == _UNCOUNTED else int(st.nbytes())
        if self.granularity > 1:
            n = -(-n // self.granularity) * self.granularity
        self._nbytes.append(n)
        self._fixed.append(fixed)
        self._live[key] = (sid, weakref.ref(st, partial(self._freed, sid, key)))
        self._event(sid + 1)
        return sid

    def _see(self, t: Tensor) -> None:
        for st in _storages(t):
            if id(st) not in self._live:
                self._add(st, _NONE)

    def register(self, tensors: Iterable[Tensor], category: str | None) -> None:
        """Register storages that exist already, as ``category`` (None: a shadow, not counted).

        A storage registered before (a tied weight, a view) keeps its first category.

        Args:
            tensors: The tensors whose storages to register.
            category: ``"parameters"``, ``"buffers"`` or ``"inputs"``; None for a
                stand-in whose bytes are counted elsewhere (the optimizer's shadow
                parameters and gradients).
        """
        fixed = _UNCOUNTED if category is None else _FIXED[category]
        for t in tensors:
            for st in _storages(t):
                if id(st) not in self._live:
                    self._add(st, fixed)

    def enter_phase(self, phase: Phase) -> None:
        """Mark the start of a phase of the step."""
        self.phase = PHASES.index(phase)
        self._event(0)

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if isinstance(out, Tensor):
            self._see(out)
        elif isinstance(out, (tuple, list)):
            for o in out:
                if isinstance(o, Tensor):
                    self._see(o)
                elif isinstance(o, (tuple, list)):
                    for t in o:
                        if isinstance(t, Tensor):
                            self._see(t)
        return out

    def _pack(self, t: Tensor) -> Tensor:
        if self.phase <= _LOSS:  # the forward and the loss; a recompute in backward is not held
            for st in _storages(t):
                entry = self._live.get(id(st))
                sid = entry[0] if entry is not None else self._add(st, _NONE)
                if sid not in self._saved_by:
                    self._saved_by[sid] = self.module_of()
        return t

    @contextmanager
    def saved(self) -> Iterator[None]:
        """``saved_tensors_hooks`` that mark what autograd saves for backward (unchanged)."""
        with torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack):
            yield

    # -- the report --------------------------------------------------------------

    def _sids(self, tensors: Iterable[Tensor]) -> set[int]:
        sids: set[int] = set()
        for t in tensors:
            for st in _storages(t):
                entry = self._live.get(id(st))
                if entry is not None:
                    sids.add(entry[0])
        return sids

    def _classify(self, gradients: set[int], state: set[int]) -> list[int]:
        cats = []
        for sid, fixed in enumerate(self._fixed):
            if fixed != _NONE:
                cats.append(fixed)
            elif sid in gradients:
                cats.append(_GRADIENTS)
            elif sid in state:
                cats.append(_STATE)
            elif sid in self._saved_by:
                cats.append(_ACTIVATIONS)
            else:
                cats.append(_TEMPORARY)
        return cats

    def finish(
        self,
        *,
        modules: Sequence[ModuleInfo],
        device: str,
        optimizer: str | None = None,
        amp: str | None = None,
    ) -> MemoryReport:
        """Classify every storage, replay the events and make the report.

        Call it while the gradients and the optimizer state are still alive.

        Args:
            modules: One ``ModuleInfo`` per module, in the model's order; their
                gradients and optimizer state say which storages are which.
            device: Where the step ran, as the report says it.
            optimizer: The optimizer's class name, or None.
            amp: The autocast dtype's name, or None.

        Returns:
            The step's ``MemoryReport``.
        """
        gradients = self._sids(t for m in modules for t in m.gradients)
        state = self._sids(t for m in modules for t in m.optimizer_state)
        cats = self._classify(gradients, state)
        replay = _Replay(self._nbytes, cats)
        replay.run(self._events, self._event_phase, self._event_module)
        self.close()
        at_peak = tuple(replay.at_peak)
        return MemoryReport(
            device=device,
            optimizer=optimizer,
            amp=amp,
            held=replay.held(),
            peak=sum(at_peak),
            peak_phase=PHASES[replay.peak_phase],
            peak_module=replay.peak_module,
            at_peak=at_peak,
            timeline=replay.timeline(),
            modules=tuple(self._rows(modules, cats)),
        )

    def close(self) -> None:
        """Stop recording frees and drop every weak reference (``finish`` calls it)."""
        self._open = False
        self._live.clear()

    def _rows(self, modules: Sequence[ModuleInfo], cats: list[int]) -> Iterator[ModuleMemory]:
        own: dict[str, int] = {}
        total: dict[str, int] = {}  # each saved storage added to its module and every ancestor
        for sid, path in self._saved_by.items():
            if cats[sid] != _ACTIVATIONS:
                continue
            n = self._nbytes[sid]
            own[path] = own.get(path, 0) + n
            parts = path.split(".") if path else []
            for depth in range(len(parts) + 1):
                prefix = ".".join(parts[:depth])
                total[prefix] = total.get(prefix, 0) + n
        for m in modules:
            below = total.get(m.name, 0)
            yield ModuleMemory(
                name=m.name,
                type=m.type,
                parameters=owned_bytes(m.parameters),
                gradients=owned_bytes(m.gradients),
                optimizer_state=owned_bytes(m.optimizer_state),
                activations=own.get(m.name, 0),
                activations_total=below,
                checkpoint_saving=max(0, below - m.input_bytes),
            )


def _unpack(t: Tensor) -> Tensor:
    return t


class _Replay:
    """The event list replayed: live bytes per category after every event."""

    def __init__(self, nbytes: list[int], cats: list[int]) -> None:
        self.nbytes = nbytes
        self.cats = cats
        self.live = [0] * len(CATEGORIES)
        self.total = 0
        self.peak = -1
        self.at_peak = [0] * len(CATEGORIES)
        self.peak_phase = 0
        self.peak_module = ""
        self.max_temporary = 0
        self.phase_start: dict[int, list[int]] = {}  # phase -> live when it first started
        self.points: list[tuple[int, int, str, tuple[int, ...]]] = []  # total, phase, module

    def run(self, events: list[int], phases: list[int], modules: list[str]) -> None:
        live, nbytes, cats = self.live, self.nbytes, self.cats
        for code, phase, module in zip(events, phases, modules, strict=True):
            if code == 0:
                self.phase_start.setdefault(phase, live.copy())
                continue
            sid = code - 1 if code > 0 else -code - 1
            n = nbytes[sid]
            if not n:
                continue
            cat = cats[sid]
            if code > 0:
                live[cat] += n
                self.total += n
            else:
                live[cat] -= n
                self.total -= n
            if live[_TEMPORARY] > self.max_temporary:
                self.max_temporary = live[_TEMPORARY]
            if code > 0 and self.total > self.peak:
                self.peak = self.total
                self.at_peak = live.copy()
                self.peak_phase = phase
                self.peak_module = module
            self.points.append((self.total, phase, module, tuple(live)))
        if self.peak < 0:
            self.peak = 0
        self.end = live.copy()

    def _at_start(self, phase: str, category: int) -> int:
        """Live bytes of ``category`` when ``phase`` started (at the end if it never did)."""
        return self.phase_start.get(PHASES.index(phase), self.end)[category]

    def held(self) -> tuple[int, ...]:
        """The steady sizes (see ``MemoryReport.held``)."""
        held = [0] * len(CATEGORIES)
        for n, cat in zip(self.nbytes, self.cats, strict=True):
            if cat in (_PARAMETERS, _BUFFERS, _INPUTS):
                held[cat] += n
        held[_GRADIENTS] = self._at_start("optimizer", _GRADIENTS)
        held[_STATE] = self.end[_STATE]
        held[_ACTIVATIONS] = self._at_start("backward", _ACTIVATIONS)
        held[_TEMPORARY] = self.max_temporary
        return tuple(held)

    def timeline(self) -> tuple[MemoryPoint, ...]:
        points = self.points
        if len(points) > MAX_POINTS:
            size = -(-len(points) // MAX_POINTS)
            points = [
                max(points[i : i + size], key=lambda p: p[0]) for i in range(0, len(points), size)
            ]
        return tuple(MemoryPoint(PHASES[ph], mod, live) for _, ph, mod, live in points)
