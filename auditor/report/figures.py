"""The plots of report.html and of the compare page, as plotly.js figure JSON made from report.json's content.

Each function takes report data (or compare rows) and returns a `Figure` for `page.figure_html`: the
`data` traces and `layout` plotly.js draws, written out as plain dicts (plotly's Python figure objects
cost ~0.7 s and ~20 MB at the end of every run to validate four small figures; the browser tier checks
that each one is drawn without a console warning). Text from the data is passed through `plot_text`
(plotly renders a few HTML tags in labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditor.report.page import Figure, plot_text

BINS = 40  # histogram bins of the item statistic
SUBJECT_FDR = 0.05  # subjects whose BH-adjusted p-value is below this are marked
LEAK, CLEAN, MUTED, CONTROL = "#b42318", "#1a7f37", "#8c959f", "#0969da"
_LAYOUT: dict[str, Any] = {
    # a few lines of style instead of a named template (copying plotly's templates costs ~0.2 s a figure)
    "template": {
        "layout": {
            "plot_bgcolor": "white",
            "paper_bgcolor": "white",
            "colorway": [CONTROL, LEAK, MUTED],
            "xaxis": {"gridcolor": "#eaeef2", "zerolinecolor": "#d1d9e0", "linecolor": "#d1d9e0"},
            "yaxis": {"gridcolor": "#eaeef2", "zerolinecolor": "#d1d9e0", "linecolor": "#d1d9e0"},
        }
    },
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "font": {"family": "system-ui, DejaVu Sans, sans-serif", "size": 13},
    "legend": {"orientation": "h", "y": 1.12, "x": 0},
}


def _title(text: str) -> dict[str, str]:
    return {"text": text}


def _figure(data: list[dict[str, Any]], **layout: Any) -> dict[str, Any]:
    return {"data": data, "layout": {**_LAYOUT, **layout}}


def rank_histogram(items: Sequence[dict[str, Any]]) -> Figure:
    """How often the published order lands at each rank, against what no preference would give.

    Uses `rank_random` (ties broken at random, seeded), which is exactly uniform on 1..K under the
    null: the expected count at rank r is the sum of 1/K over the items with K >= r.
    """
    k_max = max((int(it["n_orderings"]) for it in items), default=1)
    ranks = list(range(1, k_max + 1))
    counts = [0] * k_max
    for it in items:
        counts[int(it["rank_random"]) - 1] += 1
    expected = [sum(1 / it["n_orderings"] for it in items if it["n_orderings"] >= r) for r in ranks]
    fig = _figure(
        [
            {"type": "bar", "x": ranks, "y": counts, "name": "items (published order at this rank)",
             "marker": {"color": CONTROL}, "hovertemplate": "rank %{x}: %{y} item(s)<extra></extra>"},
            {"type": "scatter", "x": ranks, "y": expected, "mode": "lines",
             "line": {"shape": "hvh", "dash": "dash", "color": LEAK}, "name": "expected without preference (uniform)",
             "hovertemplate": "rank %{x}: %{y:.2f} expected<extra></extra>"},
        ],
        bargap=0.08,
        xaxis={"title": _title("rank of the published order (1 = scored highest)")},
        yaxis={"title": _title("items")},
    )  # fmt: skip
    n1 = counts[0] if counts else 0
    caption = (
        f"{n1} of {len(items)} items put the published order first, {expected[0]:.1f} expected without"
        " a preference; a leak piles items up at rank 1, a model without one gives a flat histogram."
    )
    return Figure("fig-ranks", fig, caption)


def subject_intervals(subjects: Sequence[dict[str, Any]]) -> Figure:
    """Leaked fraction per subject with its 95% interval, sorted, BH-significant subjects marked."""
    rows = sorted(subjects, key=lambda s: (s["leaked_fraction"]["estimate"], s["leaked_fraction"]["high"]))
    traces = []
    for significant, name, colour in (
        (True, f"BH-adjusted p < {SUBJECT_FDR:g}", LEAK),
        (False, "not significant", MUTED),
    ):
        part = [s for s in rows if (s["p_adjusted_bh"] < SUBJECT_FDR) == significant]
        lf = [s["leaked_fraction"] for s in part]
        traces.append({
            "type": "scatter",
            "x": [f["estimate"] for f in lf],
            "y": [plot_text(s["subject"]) for s in part],
            "mode": "markers",
            "marker": {"color": colour, "size": 9, "symbol": "diamond" if significant else "circle"},
            "error_x": {
                "type": "data",
                "symmetric": False,
                "array": [f["high"] - f["estimate"] for f in lf],
                "arrayminus": [f["estimate"] - f["low"] for f in lf],
                "color": colour,
            },
            "name": name,
            "customdata": [
                [s["n"], s["top1"], s["chance"], s["p_value"], s["p_adjusted_bh"], f["low"], f["high"]]
                for s, f in zip(part, lf, strict=True)
            ],
            "hovertemplate": "%{y}<br>leaked fraction %{x:.1%} (95% CI %{customdata[5]:.1%} to %{customdata[6]:.1%})"
            "<br>%{customdata[1]} of %{customdata[0]} units on top (chance %{customdata[2]:.1%})"
            "<br>p = %{customdata[3]:.3g}, BH-adjusted %{customdata[4]:.3g}<extra></extra>",
        })  # fmt: skip
    order = [plot_text(s["subject"]) for s in rows]
    fig = _figure(
        traces,
        xaxis={"title": _title("estimated leaked fraction (95% CI)"), "tickformat": ".0%", "rangemode": "tozero"},
        yaxis={"categoryorder": "array", "categoryarray": order, "automargin": True},
    )
    n_sig = sum(s["p_adjusted_bh"] < SUBJECT_FDR for s in rows)
    caption = (
        f"{len(rows)} subject(s), {n_sig} with a Benjamini-Hochberg adjusted p-value below {SUBJECT_FDR:g}"
        " (diamonds). Units: items sharing an option list count once."
    )
    return Figure("fig-subjects", fig, caption, height=140 + 26 * max(1, len(rows)))


def statistic_distribution(data: dict[str, Any]) -> Figure:
    """z of the published order (against the other orderings) for the audited items and the control's."""
    audited = [it["z_published"] for it in data["items"] if not it.get("excluded")]
    control = data.get("control")
    ctrl = list(control["z_published"].values()) if control else []
    norm = "probability density" if control else ""
    lo, hi = min(audited + ctrl), max(audited + ctrl)
    bins = {"start": lo, "end": hi, "size": max(hi - lo, 1e-9) / BINS}  # the same bins for both, comparable
    traces = [{"type": "histogram", "x": audited, "name": f"audited model ({len(audited)} items)",
               "marker": {"color": LEAK}, "opacity": 0.6, "histnorm": norm, "xbins": bins}]  # fmt: skip
    if control:
        traces.append({"type": "histogram", "x": ctrl, "name": f"control ({len(ctrl)} items)",
                       "marker": {"color": CONTROL}, "opacity": 0.6, "histnorm": norm, "xbins": bins})  # fmt: skip
    fig = _figure(
        traces,
        barmode="overlay",
        xaxis={"title": _title("z of the published order (standard deviations of the other orderings' scores)")},
        yaxis={"title": _title("density" if control else "items")},
    )
    caption = (
        "Audited items against the control run's (same statistic, densities); the paired test in the verdict"
        " compares them item by item."
        if control
        else "No control run: each item is judged against its own orderings (the exchangeable null). Pass"
        " --control-run DIR (a clean model on the same items) to see the two distributions side by side."
    )
    return Figure("fig-statistic", fig, caption)


def leaderboard_heatmap(rows: Sequence[dict[str, Any]], models: Sequence[str], benchmarks: Sequence[str]) -> Figure:
    """Models x benchmarks, coloured by the leaked fraction; the tooltip gives the CI, p-values and verdict."""
    cell: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:  # rows come ranked: the first row of a model and benchmark fills its cell
        cell.setdefault((r["model"], r["benchmark"]), r)
    z, text, hover = [], [], []
    for m in models:
        z.append([cell[m, b]["leaked_fraction"] if (m, b) in cell else None for b in benchmarks])
        text.append([_cell_text(cell.get((m, b))) for b in benchmarks])
        hover.append([_cell_hover(cell.get((m, b))) for b in benchmarks])
    heat = {
        "type": "heatmap",
        "z": z,
        "x": [plot_text(b) for b in benchmarks],
        "y": [plot_text(m) for m in models],
        "text": text,
        "customdata": hover,
        "texttemplate": "%{text}",
        "hovertemplate": "%{customdata}<extra></extra>",
        "zmin": 0,
        "zmax": 1,
        "colorscale": [[0, "#f6f8fa"], [0.25, "#f9c4b8"], [1, LEAK]],
        "colorbar": {"title": _title("leaked<br>fraction"), "tickformat": ".0%"},
        "xgap": 2,
        "ygap": 2,
    }
    fig = _figure([heat], xaxis={"side": "top", "automargin": True},
                  yaxis={"automargin": True, "autorange": "reversed"})  # fmt: skip
    return Figure(
        "fig-heatmap",
        fig,
        "Leaked fraction per model and benchmark (hover for the 95% CI, p-values and verdict); an empty cell: no run.",
        height=160 + 60 * max(1, len(models)),
    )


def _cell_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return ""
    mark = " *" if r["grid_verdict"] == "leakage" else ""
    return f"{r['leaked_fraction']:.0%}{mark}" + ("" if r["comparable"] else " (n/c)")


def _cell_hover(r: dict[str, Any] | None) -> str:
    if r is None:
        return ""
    lines = [
        f"{plot_text(r['model'])} on {plot_text(r['benchmark'])}",
        f"leaked fraction {r['leaked_fraction']:.1%} (95% CI {r['ci_low']:.1%} to {r['ci_high']:.1%})",
        f"p = {r['p_value']:.3g} ({plot_text(r['p_test'])}); Holm-adjusted {r['p_holm']:.3g}",
        f"verdict across the grid: {r['grid_verdict']} (the run's own: {r['verdict']})",
        f"{r['items']} items, {r['orderings']} orderings",
    ]
    if not r["comparable"]:
        lines.append("not comparable: " + plot_text(r["why_not"]))
    return "<br>".join(lines)
