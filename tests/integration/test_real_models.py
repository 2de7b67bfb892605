"""inspectnn on real models, checked against independent references.

Hugging Face GPT-2 small, BERT-base, a small LLaMA, a LLaMA-7B-shaped model on the meta
device, T5-small and ViT-base, and torch.nn's Transformer, LSTM, GRU and
MultiheadAttention; all built from config objects (no weights are downloaded) with
``torch.manual_seed(0)``. Each model is built and inspected once per module (the
``built`` fixture) and then checked for:

1. the natural keyword call works and the report has no error;
2. the reported output shapes equal a plain ``torch.no_grad()`` forward's;
3. the parameter total equals ``sum(p.numel() for p in model.parameters())``
   (each tensor once: GPT-2's and T5's tied embeddings count once);
4. FLOPs within 1% of ``FlopCounterMode`` on a plain forward of a meta instance of the
   model (on CPU ``FlopCounterMode`` sees nothing inside the fused scaled-dot-product
   attention, LSTM and TransformerEncoderLayer kernels; on meta they decompose);
5. the default diagram has at most 60 nodes and renders to a PNG under 4000 px;
6. the model is left exactly as it was;

plus the module calls against plain forward hooks, and the findings, which on these
healthy models should hold nothing above ``info``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers as hf
from helpers import assert_unchanged, reference_shapes, snapshot, tensors
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import inspectnn as inn
from inspectnn.records import parse_source

Inputs = dict[str, Any]
MAX_NODES = 60
MAX_PIXELS = 4000


@dataclasses.dataclass(frozen=True)
class Case:
    """One real model: how to build it, its natural keyword inputs, what is known of it."""

    build: Callable[[], nn.Module]
    inputs: Callable[[torch.Generator], Inputs]
    on_meta: bool = False  # built under torch.device("meta"), inspected with device="meta"
    # Inputs the meta FLOP reference leaves out. Hugging Face reads an attention mask's
    # values (is it all ones?) with .item(), which a meta tensor cannot do; an all-ones
    # mask changes no FLOP count (flop_counter counts attention from q, k and v alone).
    meta_drop: tuple[str, ...] = ()
    params: int | None = None  # the published parameter count, tied weights once
    tied: tuple[str, str] | None = None  # (module, "weight=<the tensor it shares>")
    fused: bool = False  # a plain eval forward takes a fused fast path (fewer module calls)


def _ids(vocab: int, length: int) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda g: torch.randint(0, vocab, (1, length), generator=g)


def _mask(length: int) -> torch.Tensor:
    return torch.ones(1, length, dtype=torch.long)


def _randn(*shape: int) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda g: torch.randn(*shape, generator=g)


SMALL_LLAMA = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=256,
)  # fmt: skip

CASES: dict[str, Case] = {
    "gpt2": Case(
        lambda: hf.GPT2LMHeadModel(hf.GPT2Config()),
        lambda g: {"input_ids": _ids(50257, 32)(g), "attention_mask": _mask(32)},
        meta_drop=("attention_mask",),
        params=124_439_808,
        tied=("lm_head", "weight=transformer.wte.weight"),
    ),
    "bert": Case(
        lambda: hf.BertModel(hf.BertConfig()),
        lambda g: {
            "input_ids": _ids(30522, 32)(g),
            "attention_mask": _mask(32),
            "token_type_ids": torch.zeros(1, 32, dtype=torch.long),
        },
        meta_drop=("attention_mask",),
        params=109_482_240,
    ),
    "llama-small": Case(
        lambda: hf.LlamaForCausalLM(hf.LlamaConfig(**SMALL_LLAMA)),
        lambda g: {"input_ids": _ids(256, 16)(g), "attention_mask": _mask(16)},
        meta_drop=("attention_mask",),
    ),
    "llama-7b-meta": Case(
        lambda: hf.LlamaForCausalLM(hf.LlamaConfig()),
        lambda g: {"input_ids": _ids(32000, 16)(g)},
        on_meta=True,
        params=6_738_415_616,
    ),
    "t5-small": Case(
        lambda: hf.T5ForConditionalGeneration(hf.T5Config()),
        lambda g: {
            "input_ids": _ids(32128, 32)(g),
            "attention_mask": _mask(32),
            "decoder_input_ids": _ids(32128, 8)(g),
        },
        meta_drop=("attention_mask",),
        params=60_506_624,
        tied=("lm_head", "weight=shared.weight"),
    ),
    "vit": Case(
        lambda: hf.ViTModel(hf.ViTConfig()),
        lambda g: {"pixel_values": _randn(1, 3, 224, 224)(g)},
        params=86_389_248,
    ),
    "nn-transformer": Case(
        lambda: nn.Transformer(
            d_model=64,
            nhead=4,
            num_encoder_layers=2,
            num_decoder_layers=2,
            dim_feedforward=128,
            batch_first=True,
        ),
        lambda g: {"src": _randn(2, 10, 64)(g), "tgt": _randn(2, 7, 64)(g)},
        fused=True,
    ),
    "lstm": Case(
        lambda: nn.LSTM(16, 32, num_layers=2, batch_first=True),
        lambda g: {"input": _randn(4, 12, 16)(g)},
    ),
    "gru-bidirectional": Case(
        lambda: nn.GRU(16, 32, num_layers=2, batch_first=True, bidirectional=True),
        lambda g: {"input": _randn(4, 12, 16)(g)},
    ),
    "mha": Case(
        lambda: nn.MultiheadAttention(32, 4, batch_first=True),
        lambda g: {
            "query": _randn(2, 5, 32)(g),
            "key": _randn(2, 9, 32)(g),
            "value": _randn(2, 9, 32)(g),
        },
    ),
}


@dataclasses.dataclass
class Built:
    """One case, built, plainly run and inspected once for the whole module."""

    name: str
    case: Case
    model: nn.Module
    inputs: Inputs
    plain_shapes: list[tuple[int, ...]]
    report: inn.Report
    unchanged: AssertionError | None  # assert_unchanged right after inspect


def _to_meta(value: Any) -> Any:
    return value.to("meta") if isinstance(value, torch.Tensor) else value


def _build(case: Case, meta: bool) -> nn.Module:
    torch.manual_seed(0)
    if meta:
        with torch.device("meta"):
            model = case.build()
    else:
        model = case.build()
    return model.eval()


@pytest.fixture(scope="module", params=list(CASES))
def built(request: pytest.FixtureRequest) -> Iterator[Built]:
    name: str = request.param
    case = CASES[name]
    model = _build(case, case.on_meta)
    inputs = case.inputs(torch.Generator().manual_seed(0))
    if case.on_meta:
        inputs = {k: _to_meta(v) for k, v in inputs.items()}
    with torch.no_grad():  # the reference: a separate plain forward
        plain_shapes = [tuple(t.shape) for t in tensors(model(**inputs))]
    before = snapshot(model)  # after the inputs: the snapshot holds the global RNG state
    report = inn.inspect(model, device="meta" if case.on_meta else None, **inputs)
    try:
        assert_unchanged(model, before)
        unchanged = None
    except AssertionError as err:
        unchanged = err
    del before
    yield Built(name, case, model, inputs, plain_shapes, report, unchanged)


# 1 ------------------------------------------------------------------------------------


def test_natural_call_works(built: Built) -> None:
    report = built.report
    assert report.error is None
    assert report.model == type(built.model).__name__
    assert report.device == ("meta" if built.case.on_meta else "cpu")
    assert report.mode == "eval"
    assert report.layers[0].name == "" and report.layers[0].type == report.model
    text = str(report)
    assert report.model in text and f"{report.totals.params:,}" in text
    data = json.loads(report.to_json())
    assert data["schema"] == "inspectnn/1" and data["totals"]["params"] == report.totals.params


# 2 ------------------------------------------------------------------------------------


def test_output_shapes_equal_a_plain_forward(built: Built) -> None:
    report = built.report
    assert [m.shape for m in report.outputs if m.is_tensor] == built.plain_shapes
    # A Hugging Face cache is listed by its key/value tensors; what is not a tensor is an
    # empty cache or cache layer, recorded by name.
    others = [m.value for m in report.outputs if not m.is_tensor]
    assert all(v is not None and re.fullmatch(r"<\w*(Cache|Layer)>", v) for v in others), others


def test_module_calls_equal_plain_forward_hooks(built: Built) -> None:
    """Every module call and its tensor output shapes, against plain forward hooks."""
    seen, _ = reference_shapes(built.model, **built.inputs)
    traced = [
        (rec.name, [m.shape for m in rec.outputs if m.is_tensor]) for rec in built.report.layers
    ]
    if built.case.fused:
        # A plain eval forward runs fused kernels and skips their submodules; under
        # inspectnn they run one by one (the "fast-path" finding says so). The calls a
        # plain forward makes must still all be there, in order, with the same shapes.
        it = iter(traced)
        missing = [call for call in seen if call not in it]
        assert missing == []
        assert any(f.kind == "fast-path" for f in built.report.findings)
    else:
        assert traced == seen


# 3 ------------------------------------------------------------------------------------


def test_params_count_each_tensor_once(built: Built) -> None:
    unique = sum(p.numel() for p in built.model.parameters())  # parameters() dedups ties
    totals = built.report.totals
    assert totals.params == unique
    assert totals.trainable_params == unique and totals.non_trainable_params == 0
    assert built.report.layers[0].params == unique
    if built.case.params is not None:
        assert totals.params == built.case.params
    if built.case.tied is not None:
        layer, shared = built.case.tied
        assert shared in built.report.layer(layer).shared


def test_torchinfo_counts_gpt2s_tied_weights_twice() -> None:
    """Documents the README's comparison: torchinfo counts lm_head.weight (= wte) again.

    Built on meta (the count does not depend on the device) to spare a second 5 s
    initialisation of the CPU model.
    """
    torchinfo = pytest.importorskip("torchinfo")
    model = _build(CASES["gpt2"], meta=True)
    ids = torch.zeros(1, 32, dtype=torch.long, device="meta")
    try:
        stats = torchinfo.summary(model, input_data={"input_ids": ids}, verbose=0, device="meta")
    except Exception as err:  # torchinfo's problem, not inspectnn's
        pytest.skip(f"torchinfo cannot summarise GPT-2 here: {type(err).__name__}: {err}")
    assert stats.total_params == 163_037_184 == 124_439_808 + 50257 * 768
    assert inn.inspect(model, input_ids=ids, device="meta").totals.params == 124_439_808


def test_llama_config_defaults_are_7b_shaped() -> None:
    cfg = hf.LlamaConfig()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (4096, 32, 11008)
    assert (cfg.num_attention_heads, cfg.vocab_size) == (32, 32000)


# 4 ------------------------------------------------------------------------------------


def test_flops_match_flop_counter_mode_on_meta(built: Built) -> None:
    case = built.case
    model = built.model if case.on_meta else _build(case, meta=True)
    inputs = {k: _to_meta(v) for k, v in built.inputs.items() if k not in case.meta_drop}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(**inputs)
    expected = counter.get_total_flops()
    got = built.report.totals.flops
    assert expected > 0
    assert abs(got - expected) <= 0.01 * expected, (
        f"inspectnn {got:,} vs FlopCounterMode {expected:,}"
    )


# 5 ------------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_default_graph_is_readable_and_renders(built: Built, tmp_path: Path) -> None:
    source = built.report.graph().source
    nodes = re.findall(r"^\t+(\w+) \[label=", source, flags=re.M)
    assert 3 <= len(nodes) <= MAX_NODES  # at least input, one layer, output
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz)")
    width, height = _png_size(built.report.render(tmp_path / f"{built.name}.png"))
    assert 0 < width < MAX_PIXELS and 0 < height < MAX_PIXELS


# 6 ------------------------------------------------------------------------------------


def test_model_is_unchanged(built: Built) -> None:
    if built.unchanged is not None:
        raise built.unchanged


# provenance ---------------------------------------------------------------------------


def _inside(inner: str, outer: str) -> bool:
    """``inner`` is a strict descendant of module ``outer``."""
    return inner != outer and (outer == "" or inner.startswith(outer + "."))


def test_op_inputs_never_come_from_ops_inside_child_modules(
    built: Built, request: pytest.FixtureRequest
) -> None:
    """A tensor an op makes inside a child module reaches the parent only as the child's
    output, whose source is then the child's call: never that op."""
    report = built.report
    wrong = []
    for op in report.ops:
        for meta in op.inputs:
            parsed = parse_source(meta.source)
            if parsed is not None and parsed[0] == "ops":
                src = report.ops[parsed[1]]
                if _inside(src.module, op.module):
                    wrong.append(f"ops[{op.index}] {op.name} in {op.module or '(root)'!r} <- "
                                 f"ops[{src.index}] {src.name} in {src.module!r}")  # fmt: skip
    assert wrong == []


class _Norm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32) * 2  # on float32 x, .to returns x itself


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.norm = _Norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return h + self.norm(h)


def test_an_op_returning_its_input_keeps_the_inputs_producer() -> None:
    report = inn.inspect(_Residual(), torch.randn(2, 4))
    fc, norm = report.layer("fc").index, report.layer("norm").index
    add = next(op for op in report.ops if op.module == "" and op.name.endswith("add"))
    assert [m.source for m in add.inputs] == [f"layers[{fc}]", f"layers[{norm}]"]
    edges = [line.strip() for line in report.graph().source.splitlines() if "->" in line]
    assert any(e.startswith(f"L{fc} -> op{add.index} ") for e in edges), edges


class _Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(x), self.b(x)


class _UsesSecond(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = _Pair()
        self.head = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, second = self.pair(x)
        return self.head(second)


def test_an_edge_from_an_expanded_layer_starts_at_the_output_used() -> None:
    report = inn.inspect(_UsesSecond(), torch.randn(2, 4))
    b, head = report.layer("pair.b").index, report.layer("head").index
    source = report.graph(depth=2).source
    assert f"L{b} -> L{head} " in source, source


# findings -----------------------------------------------------------------------------


def test_no_warnings_on_healthy_models(built: Built, request: pytest.FixtureRequest) -> None:
    for f in built.report.findings:  # shown with -s / -rA
        print(f"{built.name}: [{f.severity}] {f.kind} {f.layer!r}: {f.message}")
    assert [f for f in built.report.findings if f.severity != "info"] == []


def test_never_called_findings_name_modules_that_were_not_called(built: Built) -> None:
    called = {rec.name for rec in built.report.layers}
    for finding in built.report.findings:
        if finding.kind == "never-called":
            assert finding.layer not in called, finding.message


def test_fast_path_finding_does_not_claim_a_fused_run_when_children_have_rows() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    report = inn.inspect(encoder, torch.randn(2, 5, 32))
    assert {"layers.0", "layers.0.self_attn", "layers.1.linear2"} <= {r.name for r in report.layers}
    claims = [f.message for f in report.findings if "ran PyTorch's fused" in f.message]
    assert claims == []
