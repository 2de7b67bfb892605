"""Summarize a pytest-benchmark JSON file as Markdown tables, one per group.

Usage::

    python benchmarks/summarize.py benchmarks/results/core.json [memory.json]

For each group (one model): tool, median ms, IQR ms, rounds, the ratio of the
median to the ``plain`` median of the same group and to the ``torchinfo``
median, and the share of CPU time the hypervisor stole while it ran (a noise
indicator; high steal means the timings of that row are unreliable). Then the
targets of the inspectnn brief, marked ok/OVER (informational only), and, when
a memory JSON from ``test_peak_rss_extra`` is given or sits next to the
benchmark file as ``memory.json``, the memory table.
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


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__)
        return 2
    path = Path(argv[0])
    print(render(load_groups(path)))
    memory = Path(argv[1]) if len(argv) > 1 else path.with_name("memory.json")
    if memory.exists():
        print(render_memory(memory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
