"""The shell shared by report.html and the compare page: one self-contained HTML file.

Everything the page needs is inline: plotly.js (the plotting library's own bundle, from the installed
`plotly` package), our few lines of JavaScript (draw the figures, sort and filter tables), and the CSS.
A Content-Security-Policy pins the two scripts by their sha256 and allows no network access at all, so
the page opens offline and an item text that slipped through unescaped could still not run or load
anything.

Untrusted text (questions, options, ids, subjects, model names, paths) enters the page in exactly two
ways: `esc()` for HTML, and `safe_json()` for the figures' JSON inside a non-executed
`<script type="application/json">` block (`<`, `>` and `&` written as \\u escapes). Text shown by
plotly (labels, tooltips) also goes through `plot_text()`, since plotly reads a few HTML tags in it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --soft: #f6f8fa;
        --leak: #b42318; --leak-bg: #fef3f2; --clean: #1a7f37; --clean-bg: #effaf2; --warn-bg: #fff8c5;
        --none: #59636e; --none-bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.6em; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 1.25em; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub, .note, figcaption { color: var(--muted); }
nav a { margin-right: 14px; }
.verdict { border: 1px solid var(--line); border-left-width: 8px; border-radius: 6px; padding: 14px 18px;
           margin: 18px 0; }
.verdict.leakage { border-left-color: var(--leak); background: var(--leak-bg); }
.verdict.no_evidence { border-left-color: var(--clean); background: var(--clean-bg); }
.verdict.undecided { border-left-color: var(--none); background: var(--none-bg); }
.badge { display: inline-block; font-weight: 700; font-size: 1.15em; margin-right: 10px; }
.leakage .badge { color: var(--leak); }
.no_evidence .badge { color: var(--clean); }
.undecided .badge { color: var(--none); }
.warn { background: var(--warn-bg); border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 12px 0 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-word; }
.plot { width: 100%; min-height: 320px; }
figure { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); position: sticky; top: 0; cursor: pointer; white-space: nowrap; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.wide { min-width: 260px; }
td.nowrap { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td ol { margin: 0; padding-left: 1.6em; }
td .answer { font-weight: 700; }
.tools { margin: 8px 0; display: flex; gap: 12px; align-items: center; }
.tools input { font: inherit; padding: 4px 8px; width: 320px; max-width: 100%; }
.scroll { max-height: 720px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
pre { background: var(--soft); padding: 12px; overflow: auto; font-size: 0.85em; }
code { font-size: 0.92em; }
"""

# Ours: draw every figure from its JSON block, make tables sortable (click or Enter on a header) and
# filterable (a search box names its table). Text is only ever read with textContent.
APP_JS = """(function () {
  "use strict";
  var config = {displaylogo: false, responsive: true};
  document.querySelectorAll("script.figure-data").forEach(function (block) {
    var fig = JSON.parse(block.textContent);
    Plotly.newPlot(document.getElementById(block.getAttribute("data-target")), fig.data, fig.layout, config);
  });
  function key(cell) {
    var v = cell.getAttribute("data-v");
    if (v === null) { return cell.textContent.trim().toLowerCase(); }
    var x = parseFloat(v);
    return isNaN(x) ? -Infinity : x;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    heads.forEach(function (th, i) {
      function sort() {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.tabIndex = 0;
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (box) {
    var table = document.getElementById(box.getAttribute("data-table"));
    var count = document.getElementById(box.getAttribute("data-count"));
    box.addEventListener("input", function () {
      var q = box.value.trim().toLowerCase(), rows = table.tBodies[0].rows, shown = 0;
      Array.prototype.forEach.call(rows, function (r) {
        var hit = !q || r.textContent.toLowerCase().indexOf(q) >= 0;
        r.hidden = !hit;
        shown += hit ? 1 : 0;
      });
      count.textContent = shown + " of " + rows.length + " shown";
    });
  });
})();
"""


def esc(value: object) -> str:
    """Any value as HTML text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def plot_text(value: object) -> str:
    """Text for plotly labels and tooltips: plotly renders a few HTML tags there, so none may come from data."""
    return html.escape(str(value), quote=False)


def safe_json(value: Any) -> str:
    """JSON that cannot end its <script> block or open a comment inside it."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


@cache
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the plotly package (no CDN)."""
    from plotly.offline import get_plotlyjs

    js: str = get_plotlyjs()
    if "</script" in js.lower():  # would end the inline block early
        raise RuntimeError("the plotly.js bundle contains '</script': cannot inline it")
    return js


@cache
def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


@dataclass(frozen=True)
class Figure:
    """A plotly figure placed in the page: its div id, the figure's JSON, a caption."""

    id: str
    figure: dict[str, Any]
    caption: str = ""
    height: int = 380


def figure_html(f: Figure) -> str:
    return (
        f'<figure><div id="{esc(f.id)}" class="plot" style="height:{int(f.height)}px"></div>'
        f'<script type="application/json" class="figure-data" data-target="{esc(f.id)}">{safe_json(f.figure)}'
        "</script>" + (f"<figcaption>{esc(f.caption)}</figcaption>" if f.caption else "") + "</figure>"
    )


@dataclass(frozen=True)
class Column:
    title: str
    numeric: bool = False


@dataclass(frozen=True)
class Cell:
    """One table cell: `html` is already escaped markup; `value` is the exact number to sort on."""

    html: str
    value: float | None = None
    css: str = ""  # a class for the cell (wide, nowrap)


def text_cell(value: object, css: str = "") -> Cell:
    return Cell(esc(value), css=css)


def num_cell(value: float | int | None, fmt: str = "{:.3g}") -> Cell:
    return Cell("" if value is None else esc(fmt.format(value)), None if value is None else float(value))


def table(table_id: str, columns: Sequence[Column], rows: Iterable[Sequence[Cell]], *, search: str = "") -> str:
    """A sortable table, with a search box when `search` names what it searches."""
    body = []
    for row in rows:
        cells = []
        for col, cell in zip(columns, row, strict=True):
            css = " ".join(c for c in ("num" if col.numeric else "", cell.css) if c)
            attrs = f' class="{css}"' if css else ""
            if col.numeric:
                attrs += f' data-v="{"" if cell.value is None else repr(float(cell.value))}"'
            cells.append(f"<td{attrs}>{cell.html}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    count = f"{table_id}-count"
    tools = (
        f'<div class="tools"><input class="filter" type="search" placeholder="{esc(search)}" '
        f'aria-label="{esc(search)}" data-table="{esc(table_id)}" data-count="{esc(count)}">'
        f'<span id="{esc(count)}" class="note">{len(body)} of {len(body)} shown</span></div>'
        if search
        else ""
    )
    head = "".join(f'<th scope="col">{esc(c.title)}</th>' for c in columns)
    return (
        f'{tools}<div class="scroll"><table id="{esc(table_id)}" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are escaped here."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs) + "</dl>"


def page(title: str, body: str) -> str:
    """The whole document: the CSP allows our two inline scripts (by hash) and nothing from anywhere."""
    lib, app = plotly_js(), APP_JS
    csp = (
        f"default-src 'none'; script-src {_sha256(lib)} {_sha256(app)}; style-src 'unsafe-inline'; "
        "img-src data:; font-src data:; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        f"<script>{lib}</script></head>\n"
        f"<body><main>{body}</main><script>{app}</script></body></html>\n"
    )
