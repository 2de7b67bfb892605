"""Summarize a pytest-benchmark JSON file as Markdown tables, one per group.

Usage::

    python benchmarks/summarize.py benchmarks/results/core.json [memory.json]
    python benchmarks/summarize.py benchmarks/results/tools.json

For each group (one model): tool, median ms, IQR ms, rounds, the ratio of the
median to the ``plain`` median of the same group and to the ``torchinfo``
median, and the share of CPU time the hypervisor stole while it ran (a noise
indicator; high steal means the timings of that row are unreliable). Then the
targets of the inspectnn brief, marked ok/OVER (informational only), and, when
a memory JSON from ``test_peak_rss_extra`` is given or sits next to the
benchmark file as ``memory.json``, the memory table.

A ``tools.json`` from ``test_bench_tools.py`` (given, or found next to the
benchmark file) is printed as one table per model: each tool's median paired
ratio to the plain forward and to torchinfo, its extra peak RSS over a plain
forward, or the error it raised; then the module-count scaling table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TOOL_ORDER = {"plain": 0, "inspectnn": 1, "torchinfo": 2}

# (group prefix, numerator, denominator, limit): informational targets.
TARGETS = [
    ("ResNet50Like", "inspectnn", "plain", 1.10),
    ("GPT2Like", "inspectnn", "plain", 1.10),
    ("LlamaLike-7B-meta", "inspectnn", "plain", 1.20),
    ("LlamaLike-70B-meta", "inspectnn", "plain", 1.20),
    ("MLPStack-400", "inspectnn", "torchinfo", 0.50),
    ("SimpleCNN", "inspectnn", "torchinfo", 0.50),
]


def _tool(bench: dict[str, Any]) -> str:
    extra = bench.get("extra_info") or {}
    params = bench.get("params") or {}
    return str(extra.get("tool") or params.get("tool") or bench["name"])


def _ratio(value: float, ref: float | None) -> str:
    return f"{value / ref:.2f}x" if ref else "n/a"


def load_groups(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    data = json.loads(path.read_text())
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for bench in data["benchmarks"]:
        groups.setdefault(bench.get("group") or "(no group)", {})[_tool(bench)] = bench
    return groups


def render(groups: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines: list[str] = []
    for group, tools in groups.items():
        medians = {t: b["stats"]["median"] for t, b in tools.items()}
        plain, tinfo = medians.get("plain"), medians.get("torchinfo")
        lines += [
            f"### {group}",
            "",
            "| tool | median ms | IQR ms | rounds | vs plain | vs torchinfo | steal % |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for tool in sorted(tools, key=lambda t: (TOOL_ORDER.get(t, 9), t)):
            st = tools[tool]["stats"]
            steal = (tools[tool].get("extra_info") or {}).get("steal_pct", "")
            lines.append(
                f"| {tool} | {st['median'] * 1e3:.2f} | {st['iqr'] * 1e3:.2f} | {st['rounds']} "
                f"| {_ratio(st['median'], plain)} | {_ratio(st['median'], tinfo)} | {steal} |"
            )
        if "torchinfo" not in tools:
            lines.append("| torchinfo | skipped / not run | | | | | |")
        lines.append("")
    lines += ["### Targets (informational, medians)", "", "| group | ratio | value | limit | |"]
    lines.append("|---|---|---:|---:|---|")
    for group, num, den, limit in TARGETS:
        tools = groups.get(group, {})
        if num in tools and den in tools:
            r = tools[num]["stats"]["median"] / tools[den]["stats"]["median"]
            flag = "ok" if r <= limit else "OVER"
            lines.append(f"| {group} | {num}/{den} | {r:.2f} | {limit:.2f} | {flag} |")
        else:
            lines.append(f"| {group} | {num}/{den} | n/a | {limit:.2f} | missing |")
    lines.append("")
    return "\n".join(lines)


def render_memory(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = [
        "### Peak RSS: inspect vs plain forward (MB)",
        "",
        "| model | extra peak, first pair | extra peak, steady | plain peak over RSS "
        "| inspect peak over RSS | RSS growth |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in data.values():
        lines.append(
            f"| {row['model']} | {row['first_extra_peak_mb']:+.1f} | {row['extra_peak_mb']:+.1f} "
            f"| {row['plain_peak_over_rss_mb']:.1f} | {row['inspect_peak_over_rss_mb']:.1f} "
            f"| {row['rss_growth_mb']:+.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


TOOLS_ORDER = ("plain", "inspectnn", "torchinfo", "torchview", "torchlens")

# (model, tool, reference, limit): the brief's targets checked against tools.json.
TOOLS_TARGETS = [
    ("GPT2LMHeadModel", "inspectnn", "plain", 1.10),
    ("BertModel", "inspectnn", "plain", 1.10),
    ("ViTModel", "inspectnn", "plain", 1.10),
    ("ResNet50Like", "inspectnn", "plain", 1.10),
    ("SimpleCNN", "inspectnn", "torchinfo", 0.50),
    ("SimpleCNN-b1", "inspectnn", "torchinfo", 0.50),
    ("MyModel", "inspectnn", "torchinfo", 0.50),
    ("softmax_mlp", "inspectnn", "torchinfo", 0.50),
    ("cnn32", "inspectnn", "torchinfo", 0.50),
    ("ComplexModel", "inspectnn", "torchinfo", 0.50),
    ("MLPStack-400", "inspectnn", "torchinfo", 0.50),
    ("LlamaLike-7B-meta", "inspectnn", "plain", 1.20),
    ("LlamaLike-70B-meta", "inspectnn", "plain", 1.20),
]


def _error_text(errors: list[dict[str, str]], width: int = 160) -> str:
    parts = []
    for e in errors:
        msg = " ".join(e.get("message", "").split())
        if len(msg) > width:
            msg = msg[:width] + " ..."
        where = f" (at {e['where']})" if e.get("where") else ""
        parts.append(f"`{e['type']}`: {msg}{where}".replace("|", "\\|"))
    return "; ".join(parts)


def render_tools(path: Path) -> str:
    """Markdown tables of a ``tools.json``: per model, then the targets, then scaling."""
    data = json.loads(path.read_text())
    lines: list[str] = []
    machine = data.get("machine") or {}
    if machine:
        v = machine.get("versions", {})
        git = machine.get("git", {})
        dirty = (
            " + uncommitted inspectnn/ changes" if git.get("inspectnn_uncommitted_changes") else ""
        )
        lines += [
            f"_{machine.get('cpus')} CPUs, {machine.get('mem_gib')} GiB, "
            f"{machine.get('torch_threads')} torch threads; torch {v.get('torch')}, Python "
            f"{v.get('python')}, torchinfo {v.get('torchinfo')}, torchview {v.get('torchview')}, "
            f"torchlens {v.get('torchlens')}, transformers {v.get('transformers')}; commit "
            f"{git.get('commit', '?')}{dirty}_",
            "",
        ]
    models = data.get("models", {})
    for name, m in models.items():
        lines += [
            f"### {name} ({m['modules']:,} modules, {m['input']}; steal {m.get('steal_pct')}%)",
            "",
            "| tool | median ratio to plain | ratio to torchinfo | median ms | extra peak MB "
            "| rounds | error |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        tools = m["tools"]
        for tool in sorted(tools, key=lambda t: TOOLS_ORDER.index(t) if t in TOOLS_ORDER else 9):
            row = tools[tool]
            err = _error_text(row.get("errors", []))
            if row.get("median_ratio_to_plain") is None:
                lines.append(f"| {tool} | raised | | | | | {err} |")
                continue
            if err:  # ran with a fallback call after the first one raised
                err = f"ran as `{row['call']}`; first: {err}"
            extra = row.get("extra_peak_mb")
            to_ti = row.get("median_ratio_to_torchinfo")
            lines.append(
                f"| {tool} | {row['median_ratio_to_plain']:.2f}x "
                f"| {'' if to_ti is None else f'{to_ti:.2f}x'} | {row['median_ms']:.1f} "
                f"| {'' if extra is None else f'{extra + 0.0:+.1f}'} | {row['rounds']} | {err} |"
            )
        lines.append("")
    if models:
        lines += ["### Targets (informational; paired medians from tools.json)", ""]
        lines += ["| model | ratio | value | limit | |", "|---|---|---:|---:|---|"]
        for name, num, den, limit in TOOLS_TARGETS:
            row = models.get(name, {}).get("tools", {}).get(num, {})
            r = row.get(f"median_ratio_to_{den}")
            if r is None:
                lines.append(f"| {name} | {num}/{den} | n/a | {limit:.2f} | missing |")
            else:
                flag = "ok" if r <= limit else "OVER"
                lines.append(f"| {name} | {num}/{den} | {r:.2f} | {limit:.2f} | {flag} |")
        lines.append("")
    scaling = (data.get("scaling") or {}).get("module_count")
    if scaling:
        lines += [
            f"### Scaling: {scaling['model']}",
            "",
            "| modules | inspect ms | plain ms | inspect us/module | overhead us/module |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in scaling["sizes"]:
            lines.append(
                f"| {r['modules']:,} | {r['inspect_median_s'] * 1e3:.1f} "
                f"| {r['plain_median_s'] * 1e3:.1f} | {r['inspect_us_per_module']:.1f} "
                f"| {r['overhead_us_per_module']:.1f} |"
            )
        lines += [
            "",
            f"Per-module time, largest / smallest: "
            f"{scaling['per_module_ratio_largest_to_smallest']:.2f}x (1.00 = linear).",
            "",
        ]
    return "\n".join(lines)


def _kind(path: Path) -> str:
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "benchmarks" in data:
        return "core"
    if isinstance(data, dict) and ("models" in data or "scaling" in data):
        return "tools"
    return "memory"


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 3:
        print(__doc__)
        return 2
    paths = [Path(a) for a in argv]
    kinds = {p: _kind(p) for p in paths}
    core = [p for p in paths if kinds[p] == "core"]
    for path in core:
        print(render(load_groups(path)))
    memory = [p for p in paths if kinds[p] == "memory"]
    if not memory and core and core[0].with_name("memory.json").exists():
        memory = [core[0].with_name("memory.json")]
    for path in memory:
        print(render_memory(path))
    tools = [p for p in paths if kinds[p] == "tools"]
    if not tools and core and core[0].with_name("tools.json").exists():
        tools = [core[0].with_name("tools.json")]
    for path in tools:
        print(render_tools(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
