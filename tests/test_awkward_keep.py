"""Awkward models a user may bring: inspect reports them and leaves them as they were.

Scripted and traced children, sparse buffers, forwards that take gradients, two
threads at once, and models where most modules never run.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import nn

import inspectnn as inn

# -- a TorchScript child inside an eager model -----------------------------------


def _scripted(kind: str) -> nn.Module:
    """Linear -> BatchNorm -> Dropout as a TorchScript module (scripted or traced)."""
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    if kind == "script":
        return torch.jit.script(eager)
    return torch.jit.trace(eager.eval(), torch.randn(4, 2))


@pytest.mark.parametrize("kind", ["script", "trace"])
@pytest.mark.parametrize("device", [None, "meta"])
def test_scripted_child_is_one_opaque_row(kind: str, device: str | None) -> None:
    child = _scripted(kind)
    model = nn.Sequential(nn.Linear(2, 2), child, nn.ReLU())
    x = torch.randn(4, 2)
    with torch.no_grad():
        expected = model.eval()(x)
    before = snapshot(model)
    report = inn.inspect(model, x, device=device)
    assert [rec.name for rec in report.layers] == ["", "0", "1", "2"]  # nothing inside "1"
    row = report.layer("1")
    assert row.outputs[0].shape == tuple(expected.shape)
    assert row.params == 9 + 6 and report.totals.params == 6 + 15
    assert report.totals.buffers == 7  # BatchNorm's statistics inside the scripted child
    assert row.flops == 2 * 4 * 2 * 3  # its Linear's matmul, seen at the dispatcher
    assert not [f for f in report.findings if f.kind == "never-called"]
    assert_unchanged(model, before)


def test_scripted_child_state_is_put_back_in_train_mode() -> None:
    """A train-mode run updates the scripted BatchNorm's statistics and flips the flags of
    the modules inside the TorchScript child: all are back afterwards."""
    model = nn.Sequential(_scripted("script"), nn.ReLU()).eval()
    x = torch.randn(8, 2)
    before = snapshot(model)
    report = inn.inspect(model, x, mode="train")
    assert report.mode == "train"
    assert report.layer("0").outputs[0].shape == (8, 3)
    assert_unchanged(model, before)


def test_scripted_child_flops_equal_the_eager_ones() -> None:
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    scripted = nn.Sequential(eager[0], torch.jit.script(eager[1]))
    x = torch.randn(4, 2)
    want = inn.inspect(eager, x).totals.flops
    assert want > 0
    assert inn.inspect(scripted, x).totals.flops == want
    assert inn.inspect(scripted, x, device="meta").totals.flops == want


# -- sparse tensors ----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_buffer_is_counted(layout: str) -> None:
    model = nn.Linear(4, 4)
    adj = torch.eye(4).to_sparse() if layout == "coo" else torch.eye(4).to_sparse_csr()
    model.register_buffer("adj", adj)
    x = torch.randn(2, 4)
    before = snapshot(model)
    report = inn.inspect(model, x, mode="train")  # buffers are saved and written back
    assert report.totals.buffers == 16  # the elements of its dense shape
    # 4 float32 values, and a 2x4 int64 index (COO) or 5 row pointers + 4 columns (CSR)
    stored = 4 * 4 + (2 * 4 * 8 if layout == "coo" else 5 * 8 + 4 * 8)
    assert report.totals.buffer_bytes == stored
    assert_unchanged(model, before)
    assert inn.inspect(model, x, device="meta").totals.buffer_bytes == stored


# -- a forward that takes gradients itself ---------------------------------------


class InnerLoop(nn.Module):
    """MAML-style: one gradient step on the inner layer's weight inside forward."""

    def __init__(self, backward: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.head = nn.Linear(3, 1)
        self.backward_too = backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        loss = self.fc(x).pow(2).sum()
        if self.backward_too:
            loss.backward(retain_graph=True)  # accumulates into .grad
        (g,) = torch.autograd.grad(loss, self.fc.weight, create_graph=True)
        fast = self.fc.weight - 0.1 * g
        return self.head(x @ fast.T)


@pytest.mark.parametrize("backward", [False, True])
def test_forward_taking_gradients_runs_with_autograd(backward: bool) -> None:
    model, x = InnerLoop(backward), torch.randn(5, 3)
    model.head.weight.grad = torch.ones_like(model.head.weight)  # a .grad that must stay
    with torch.no_grad():
        model.fc.weight.grad = None
    before = snapshot(model)
    report = inn.inspect(model, x)
    assert report.outputs[0].shape == (5, 1)
    assert [rec.name for rec in report.layers] == ["", "fc", "head"]
    assert any(f.kind == "grad-enabled" for f in report.findings)
    assert model.fc.weight.grad is None
    assert_unchanged(model, before)


def test_plain_model_runs_without_autograd() -> None:
    """Only a forward that needs gradients gets them: no graph, no finding otherwise."""
    seen: list[bool] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.is_grad_enabled())
            return x * 2

    report = inn.inspect(Probe(), torch.randn(2))
    assert seen == [False]
    assert not any(f.kind == "grad-enabled" for f in report.findings)


# -- two threads -------------------------------------------------------------------


class _Waiter(nn.Module):
    """Draws from the global RNG, says so, then waits (bounded) for an event in its forward."""

    def __init__(self, draws: bool, say: threading.Event, wait_for: threading.Event) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.draws, self.say, self.wait_for = draws, say, wait_for

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.draws:
            x = x + torch.rand_like(x)  # the global RNG moves
        self.say.set()
        self.wait_for.wait(timeout=1.0)
        return self.fc(x)


def _in_thread(target: Any, results: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        except BaseException as err:  # the test fails on whatever a thread raised
            results.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_two_threads_leave_the_global_rng_as_it_was() -> None:
    """Thread 2 starts inspecting while thread 1's forward has moved the RNG, and ends after
    thread 1. Unserialized, thread 2 saved the moved state and put it back last."""
    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()
    m1, m2 = _Waiter(True, first_in, second_in), _Waiter(False, second_in, first_done)
    x1, x2 = torch.randn(2, 4), torch.randn(2, 4)
    state = torch.get_rng_state()
    results: list[Any] = []

    def first() -> inn.Report:
        try:
            return inn.inspect(m1, x1)
        finally:
            first_done.set()

    t1 = _in_thread(first, results)
    assert first_in.wait(timeout=10)
    t2 = _in_thread(lambda: inn.inspect(m2, x2), results)
    t1.join(timeout=30)
    t2.join(timeout=30)
    assert not t1.is_alive() and not t2.is_alive()
    assert len(results) == 2 and all(isinstance(r, inn.Report) for r in results), results
    assert torch.equal(torch.get_rng_state(), state)


def test_two_threads_on_one_model_see_only_their_own_calls() -> None:
    first_in, second_in = threading.Event(), threading.Event()

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if first_in.is_set():  # the second thread's forward
                second_in.set()
            else:  # the first one: wait (bounded) for the second inside
                first_in.set()
                second_in.wait(timeout=1.0)
            return self.fc(x)

    model, x = Shared(), torch.randn(2, 4)
    before = snapshot(model)
    results: list[Any] = []
    t1 = _in_thread(lambda: inn.inspect(model, x), results)
    assert first_in.wait(timeout=10)
    t2 = _in_thread(lambda: inn.inspect(model, x), results)
    t1.join(timeout=30)
    t2.join(timeout=30)
    assert not t1.is_alive() and not t2.is_alive()
    assert len(results) == 2
    for report in results:
        assert isinstance(report, inn.Report), report
        assert [rec.name for rec in report.layers] == ["", "fc"]
    assert_unchanged(model, before)


# -- most modules never run ----------------------------------------------------------


class _Counted(nn.Parameter):
    """A parameter that counts how often its size is asked: the work of a parameter count."""

    asked = 0

    def numel(self) -> int:
        _Counted.asked += 1
        return super().numel()


def _deep_unused(depth: int) -> nn.Module:
    """A called head next to a chain of ``depth`` nested modules that never run."""

    class Root(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(2, 2)
            chain = node = nn.Module()
            for _ in range(depth):
                node.w = _Counted(torch.ones(3))
                node.inner = nn.Module()
                node = node.inner
            self.unused = chain

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x)

    return Root()


def test_unused_parameter_count_is_one_pass() -> None:
    """Counting the unused parameters of every never-called module looks at each
    parameter a fixed number of times, not once per enclosing module."""
    work = []
    for depth in (50, 100):
        model = _deep_unused(depth)
        _Counted.asked = 0
        report = inn.inspect(model, torch.randn(1, 2))
        work.append(_Counted.asked)
        found = [f for f in report.findings if f.kind == "never-called"]
        assert len(found) == 1 and f"{3 * depth:,} parameters" in found[0].message
    assert work[1] <= 2.2 * work[0]  # linear: a walk per module made it 4x
    assert work[1] <= 10 * 100


class _Tied(nn.Module):
    """Tied weights, a module held twice, a called and an uncalled holder."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.emb.weight  # tied; out is called
        block = nn.Linear(4, 4)
        self.spare = nn.ModuleDict({"a": block, "b": block, "c": nn.Linear(4, 2)})
        self.other = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 3)))
        self.other[0].weight = self.spare["c"].weight  # shared between two uncalled
        self.lone = nn.Embedding(10, 4)
        self.lone.weight = nn.Parameter(torch.zeros(10, 4))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(ids))


def _old_unused(named: list[tuple[str, nn.Module]], called: set[int]) -> dict[str, int]:
    """The definition: every uncalled module's subtree parameters that no called module holds."""
    used = {id(p) for _, c in named if id(c) in called for p in c._parameters.values()}
    return {
        name: sum(p.numel() for p in m.parameters() if id(p) not in used)
        for name, m in named
        if id(m) not in called and not isinstance(m, (nn.ModuleList, nn.ModuleDict))
    }


def test_unused_parameter_counts_match_the_definition() -> None:
    from inspectnn.api import _unused_params

    model = _Tied()
    walk = list(model.named_modules(remove_duplicate=False))
    named = list(model.named_modules())
    called = {id(model), id(model.emb), id(model.out)}
    counts = {name: n for name, _, n in _unused_params(named, walk, called)}
    want = _old_unused(named, called)
    assert {k: counts[k] for k in want} == want
    assert want["other"] == 4 * 2 + 4 + 4 * 3 + 3  # the shared weight once
    assert counts["emb"] == counts["out"] == 0
    report = inn.inspect(model, torch.randint(0, 10, (2, 3)))
    texts = {f.layer: f.message for f in report.findings if f.kind == "never-called"}
    assert f"{want['other']:,} parameters" in texts["other"]


# -- inputs too big to build ---------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "device", "match"),
    [
        ((10**7, 10**7, 3), None, r"needs 1\.1 PB on cpu.*device='meta'"),
        ((2**63, 3), None, r"more than a tensor can hold"),
        ((2**63, 0), "meta", r"more than a tensor can hold"),
    ],
)
def test_input_size_too_big_says_how_much(
    size: tuple[int, ...], device: str | None, match: str
) -> None:
    with pytest.raises(inn.InvalidInputError, match=match):
        inn.inspect(nn.Linear(3, 3), input_size=size, device=device)


def test_input_size_too_big_for_memory_runs_on_meta() -> None:
    report = inn.inspect(nn.Linear(3, 3), input_size=(10**7, 10**7, 3), device="meta")
    assert report.outputs[0].shape == (10**7, 10**7, 3)


# -- FSDP2 -------------------------------------------------------------------------------


@pytest.fixture
def one_process_group(tmp_path: Any) -> Any:
    """A single-process gloo group for ``fully_shard``, destroyed afterwards."""
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield dist
    finally:
        dist.destroy_process_group()


def _sharded(device: str) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    with torch.device(device):
        model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    fully_shard(model[0])
    fully_shard(model[2])
    fully_shard(model)
    return model


@pytest.mark.parametrize("device", [None, "meta"])
def test_fsdp2_model_on_meta_is_refused_in_inspectnn_words(
    one_process_group: Any, device: str | None
) -> None:
    model = _sharded("meta")
    x = torch.randn(2, 4, device="meta")
    for _ in range(2):  # the first attempt leaves nothing half-initialised for the second
        with pytest.raises(inn.InvalidInputError, match=r"FSDP2.*meta.*to_empty") as info:
            inn.inspect(model, x, device=device)
        assert info.value.__cause__ is None


def test_fsdp2_model_runs_where_its_shards_are(one_process_group: Any) -> None:
    model, x = _sharded("cpu"), torch.randn(3, 4)
    with torch.no_grad():
        model(x)  # FSDP's one-time lazy init (it registers state-dict hooks) done first
    before = snapshot(model)
    for _ in range(2):
        report = inn.inspect(model, x)
        assert report.outputs[0].shape == (3, 2)
        assert [rec.name for rec in report.layers] == ["", "0", "1", "2"]
        assert_unchanged(model, before)
    with torch.no_grad():
        assert model(x).shape == (3, 2)  # still a working FSDP2 model
    with pytest.raises(inn.InvalidInputError, match=r"FSDP2.*gather"):
        inn.inspect(model, x, device="meta")


# -- a tensor attribute written in place -----------------------------------------------


class Accumulates(nn.Module):
    """Keeps a running sum in a plain tensor attribute (not a buffer)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.fc.total = torch.zeros(2)
        self.scale = torch.ones(2)  # read, never written

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x) * self.scale
        self.fc.total.add_(y.sum(0))
        return y


def test_tensor_attribute_written_in_place_is_reported() -> None:
    model, x = Accumulates(), torch.randn(3, 2)
    report = inn.inspect(model, x)
    found = [f for f in report.findings if f.kind == "attribute-written"]
    assert [(f.layer, f.severity) for f in found] == [("fc", "warning")]
    assert "fc.total" in found[0].message and "register_buffer('total'" in found[0].fix
    del model.fc.total  # the fix the finding gives: the running sum as a buffer
    model.fc.register_buffer("total", torch.zeros(2), persistent=False)
    before = snapshot(model)
    report = inn.inspect(model, x)
    assert not [f for f in report.findings if f.kind == "attribute-written"]
    assert_unchanged(model, before)  # as a buffer it is put back
