"""``renderers/html.py`` on hand-made reports, compared character for character."""

from __future__ import annotations

from inspectnn.records import ErrorInfo, Finding, Report
from inspectnn.renderers.html import render_html, render_html_page

from .reports import call, mlp, t, totals

RIGHT = "<td style='text-align:right'>"
LEFT = "<td style='text-align:left'>"


def test_fragment() -> None:
    rows = "".join(
        f"<tr>{LEFT}{name} <i>{kind}</i></td><td>{i}</td><td>{o}</td>{RIGHT}{p}</td></tr>"
        for name, kind, i, o, p in [
            ("", "Net", "[3, 4]", "[3, 2]", 58),
            ("&nbsp;" * 4 + "fc1", "Linear", "[3, 4]", "[3, 8]", 40),
            ("&nbsp;" * 4 + "act", "ReLU", "[3, 8]", "[3, 8]", 0),
            ("&nbsp;" * 4 + "fc2", "Linear", "[3, 8]", "[3, 2]", 18),
        ]
    )
    assert render_html(mlp()) == (
        "<div><b>Net</b> on cpu (eval)<table><thead><tr><th>Layer (type)</th>"
        "<th>Input shape</th><th>Output shape</th><th>Params</th></tr></thead>"
        f"<tbody>{rows}</tbody></table><p>Params: 58 · trainable 58 · FLOPs 240</p></div>"
    )


def test_error_first_then_findings_all_escaped() -> None:
    report = mlp(
        findings=[Finding("dead-computation", "info", "act", "<b> & unused")],
        error=ErrorInfo("ShapeMismatchError", "wants <8>", "fc2"),
    )
    assert render_html(report).endswith(
        "<ul><li><b>error</b> fc2: ShapeMismatchError: wants &lt;8&gt;</li>"
        "<li><b>info</b> act: &lt;b&gt; &amp; unused</li></ul></div>"
    )


def test_failed_call_is_red_and_says_failed() -> None:
    layers = [call(0, "", "Net", -1, [t(3, 4, source="inputs[0]")], [], 40, failed=True),
              call(1, "fc1", "Linear", 0, [t(3, 4, source="inputs[0]")], [], 40, failed=True)]
    html = render_html(Report("Net", "cpu", "eval", totals(40), layers))
    assert (f'<tr style="color:#c00">{LEFT}{"&nbsp;" * 4}fc1 <i>Linear</i></td>'
            f"<td>[3, 4]</td><td>(failed)</td>{RIGHT}40</td></tr>") in html  # fmt: skip


def test_page_wraps_the_fragment() -> None:
    page = render_html_page(mlp())
    assert page.startswith('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                           "<title>inspectnn: Net</title>\n")  # fmt: skip
    assert page.endswith(f"<body>\n{render_html(mlp())}\n</body>\n</html>\n")
