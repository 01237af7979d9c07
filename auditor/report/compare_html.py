"""The compare page (compare.html): the heatmap of leaked fractions, the leaderboard table, provenance."""

from __future__ import annotations

from typing import Any

from auditor.report.compare import accuracy_text, describe
from auditor.report.figures import leaderboard_heatmap
from auditor.report.page import Cell, Column, esc, figure_html, num_cell, page, table, text_cell

BOARD = [Column(t, numeric) for t, numeric in (
    ("benchmark", False), ("rank", True), ("model", False), ("grid verdict", False), ("run verdict", False),
    ("leaked fraction", True), ("95% CI", True), ("p", True), ("p (Holm)", True), ("items", True),
    ("orderings", True), ("prompt tokens", True), ("accuracy -> decontaminated", True), ("comparable", False),
)]  # fmt: skip
PROVENANCE = [Column(t) for t in ("model", "benchmark", "dataset sha256", "server", "template", "orderings", "null",
                                  "p from", "tool", "scored until", "run")]  # fmt: skip


def _verdict(v: str) -> Cell:
    colour = "#b42318" if v == "leakage" else "#1a7f37"
    return Cell(f'<strong style="color:{colour}">{esc(v)}</strong>')


def _board_row(r: dict[str, Any]) -> list[Cell]:
    return [
        text_cell(r["benchmark"], "nowrap"), Cell(str(r["rank"]) if r["rank"] else "n/c", r["rank"]),
        text_cell(r["model"], "nowrap"), _verdict(r["grid_verdict"]), text_cell(r["verdict"]),
        num_cell(r["leaked_fraction"], "{:.1%}"), Cell(esc(f"{r['ci_low']:.1%} to {r['ci_high']:.1%}"), r["ci_low"]),
        num_cell(r["p_value"]), num_cell(r["p_holm"]), num_cell(r["items"], "{}"), num_cell(r["orderings"], "{}"),
        num_cell(r["tokens"], "{:,}"), Cell(esc(accuracy_text(r)), r["accuracy"]),
        text_cell("yes" if r["comparable"] else "no: " + r["why_not"], "wide"),
    ]  # fmt: skip


def _provenance_row(r: dict[str, Any]) -> list[Cell]:
    sha = r["dataset_sha256"]
    return [
        text_cell(r["model"] + (f" ({r['model_root']})" if r["model_root"] else "")), text_cell(r["benchmark"]),
        Cell(f'<code title="{esc(sha)}">{esc(sha[:16])}…</code>'),
        *(text_cell(v) for v in (r["server"], r["template"], r["design"], r["null"], r["p_test"],
                                 r["tool_version"], r["scored_until"], r["run"])),
    ]  # fmt: skip


def render_compare_html(board: dict[str, Any]) -> str:
    rows = board["rows"]
    models = list(dict.fromkeys(r["model"] for r in sorted(rows, key=lambda r: (r["rank"] or 1e9, -r["ci_low"]))))
    benches = [g["benchmark"] for g in board["benchmarks"]]
    settings = "".join(
        f"<li><strong>{esc(g['benchmark'])}</strong> (sha256 <code>{esc(g['dataset_sha256'][:16])}…</code>):"
        f" {esc(describe(g['setting']))}</li>"
        for g in board["benchmarks"]
    )
    body = [
        f"<header><h1>Leaderboard: {board['runs']} run(s), {len(models)} model(s), {len(benches)} benchmark(s)</h1>"
        f"<p class=sub>{esc(board['note'])}</p></header>",
        '<h2 id="heatmap">Leaked fraction, models x benchmarks</h2>',
        figure_html(leaderboard_heatmap(rows, models, benches)),
        '<h2 id="board">Leaderboard</h2>',
        "<p class=note>Ranked within each benchmark by the lower end of the 95% interval; n/c: not comparable"
        " with the benchmark's other runs (the last column says why). A grid verdict marked * in the heatmap is"
        " leakage after the Holm correction.</p>",
        table("board", BOARD, (_board_row(r) for r in rows), search="search model, benchmark, verdict"),
        f'<h2 id="settings">What was compared</h2><ul>{settings}</ul>',
        '<h2 id="provenance">Provenance</h2>',
        table("provenance", PROVENANCE, (_provenance_row(r) for r in rows)),
    ]
    return page(f"auditor leaderboard: {board['runs']} run(s)", "\n".join(body))
