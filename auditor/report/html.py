"""report.html: the run's report for people who would rather look than read, built from report.json's data.

Sections: the verdict, the rank histogram against the uniform expectation, the leaked fraction per
subject, the item statistic of the audited model against the control's, the flagged items (searchable,
sortable), failures and provenance. One self-contained file (see auditor/report/page.py).
"""

from __future__ import annotations

import json
import string
from typing import Any

from auditor.analysis.verdicts import VerdictTest
from auditor.report.accuracy import accuracy_html
from auditor.report.figures import rank_histogram, statistic_distribution, subject_intervals
from auditor.report.page import Cell, Column, esc, facts, figure_html, num_cell, page, table, text_cell


def _p(p: float | None) -> str:
    return "n/a" if p is None else (f"{p:.2e}" if p < 1e-3 else f"{p:.3g}")


def _label(i: int) -> str:
    return string.ascii_uppercase[i] if i < 26 else str(i + 1)


def verdict_block(data: dict[str, Any]) -> str:
    s = data["summary"]
    lf = s["leaked_fraction"]
    null = s["null"]
    partial = (
        '<p class="warn">Partial report: the run was stopped (budget or interrupt) before every item was scored;'
        " re-run the same command to finish it.</p>"
        if s.get("partial")
        else ""
    )
    rows = [
        ("items scored", f"{s['n_items']} ({s['n_failed']} failed, {s.get('n_not_scored', 0)} not scored)"),
        ("published order ranked first", f"{s['n_top1']} ({s['top1_rate']:.1%}; chance {s['chance_rate']:.1%})"),
        ("estimated leaked fraction", f"{lf['estimate']:.1%} (95% CI {lf['low']:.1%} to {lf['high']:.1%})"),
        ("p-value of the verdict", f"{_p(s.get('p_verdict'))} ({_test_words(s.get('verdict_test'))})"),
        ("rank-sum p / top-1 p (units)", f"{_p(s['p_rank_sum'])} / {_p(s['p_top1'])}"),
        (
            "items flagged",
            f"{s['n_flagged']} (scenario a: {s['n_flagged_a']}, b: {s['n_flagged_b']}; item-level false-positive"
            f" rate {null['alpha']:.0%})",
        ),
        (
            "order-sensitive items",
            f"{s['n_order_sensitive']} ({'excluded' if s['n_excluded_order_sensitive'] else 'kept'})",
        ),
        (
            "null",
            "control run " + str(null.get("source", ""))
            if null["kind"] == "control"
            else "exchangeable orderings (no control run)",
        ),
    ]
    # too few scored / nothing scored decide nothing: grey, never the green of "no evidence"
    verdict = s["verdict"] if s["verdict"] in ("leakage", "no_evidence") else "undecided"
    return (
        f'{partial}<section id="verdict" class="verdict {verdict}" data-verdict="{esc(s["verdict"])}">'
        '<span class="badge">'
        f"{esc(s['verdict'].replace('_', ' ').capitalize())}</span><span>({esc(s['method'])} method)</span>"
        f"<p>{esc(s['verdict_text'])}.</p>{facts(rows)}</section>"
    )


def flagged_table(items: list[dict[str, Any]]) -> str:
    flagged = [it for it in items if it.get("flagged")]
    if not flagged:
        return '<p class="note">No item is flagged.</p>'
    columns = [
        Column("item"),
        Column("subject"),
        Column("scenario"),
        Column("question"),
        Column("options (published order)"),
        Column("best ordering (b: named)"),
        Column("published score", True),
        Column("best score", True),
        Column("margin", True),
        Column("z published", True),
        Column("outlier z", True),
        Column("order-sensitive"),
    ]
    rows = []
    for it in sorted(flagged, key=lambda it: -it["z_published"]):
        n = len(it["orderings"][0]) if it.get("orderings") else 0
        options = it.get("options") or []
        answer = it.get("answer")
        opts = "".join(f"<li{' class=answer' if i == answer else ''}>{esc(o)}</li>" for i, o in enumerate(options))
        published = " ".join(_label(i) for i in range(n))
        named = (it.get("p") or {}).get("b_ordering_index", -1) if it.get("scenario") == "b" else -1
        shown = it["orderings"][named] if named >= 0 else it["best_ordering"]  # scenario b: the ordering named
        best = " ".join(_label(int(i)) for i in shown)
        rows.append(
            [
                text_cell(it["id"]),
                text_cell(it["subject"]),
                text_cell(it.get("scenario") or ""),
                text_cell(it.get("question", "(not in this report)"), "wide"),
                Cell(f'<ol type="A">{opts}</ol>' if opts else esc("(not in this report)"), css="wide"),
                Cell(f"{esc(best)}<br><span class=note>published: {esc(published)}</span>", css="nowrap"),
                num_cell(it["scores"][0], "{:.3f}"),
                num_cell(max(it["scores"]), "{:.3f}"),
                num_cell(it["margin"], "{:.3f}"),
                num_cell(it["z_published"], "{:.2f}"),
                num_cell(it["outlier_score"], "{:.2f}"),
                text_cell(", ".join(it.get("order_reasons") or []) or "no"),
            ]
        )
    return (
        f"<p class=note>{len(flagged)} item(s). Scenario a: the published order wins and stands out; b: another"
        " ordering stands out (leaked in a shuffled order). Best ordering: the published option shown at each"
        " position. Scores are log-probabilities of the options block (nats). The answer is in bold.</p>"
        + table("flagged", columns, rows, search="search question, options, id, subject")
    )


def _failures(data: dict[str, Any]) -> str:
    fails = data.get("failures") or []
    if not fails:
        return ""
    lines = "".join(f"<li><code>{esc(f['id'])}</code>: {esc(f['reason'])}</li>" for f in fails[:20])
    head = f'<h2 id="failures">Failures</h2><p>{len(fails)} item(s) could not be scored; the first ones:</p>'
    return f"{head}<ul>{lines}</ul>"


def provenance_block(prov: dict[str, Any]) -> str:
    ep, ds = prov["endpoint"], prov["dataset"]
    server = f"{ep.get('server') or '?'} {ep.get('server_version') or ''}".strip()
    rows = [
        ("endpoint", f"{ep['base_url']} (provider {ep['provider']})"),
        ("model", f"{ep['model']}" + (f" (weights {ep['model_root']})" if ep.get("model_root") else "")),
        ("server", server),
        ("dataset", f"{ds['path']}: {ds['files']} file(s), {ds['items_loaded']} items loaded"),
        ("dataset sha256", ds["sha256"]),
        ("template", prov["template"]["name"]),
        ("orderings", f"{prov.get('orderings', 'all')} (max {prov['max_orderings']}, seed {prov['seed']})"),
        ("tool", f"auditor {prov['tool']['version']}"),
        ("scored", f"{prov['time']['first_scored']} to {prov['time']['last_scored']}"),
    ]
    if ep.get("insecure_tls"):
        rows.append(("TLS", "verification was OFF (--insecure)"))
    full = json.dumps(prov, indent=1, ensure_ascii=False, sort_keys=True)
    return f"{facts(rows)}<details><summary>all provenance (JSON)</summary><pre>{esc(full)}</pre></details>"


def _test_words(value: Any) -> str:
    """The deciding test's description (report.json holds its name)."""
    try:
        return VerdictTest(value).description
    except ValueError:
        return str(value or "see below")


def render_html(data: dict[str, Any]) -> str:
    s, prov = data["summary"], data["provenance"]
    model, dataset = prov["endpoint"]["model"], prov["dataset"]["path"]
    items = data["items"]
    ranks = rank_histogram(items) if items else None
    subjects = subject_intervals(s["subjects"]) if s.get("subjects") else None
    stat = statistic_distribution(data) if items else None
    no_items = '<p class="note">No item was scored.</p>'
    body = [
        f"<header><h1>Leakage audit: {esc(model)}</h1><p class=sub>on {esc(dataset)}</p>",
        '<nav><a href="#verdict">verdict</a><a href="#ranks">ranks</a><a href="#subjects">subjects</a>'
        '<a href="#statistic">item statistic</a><a href="#flagged-items">flagged items</a>'
        '<a href="#provenance">provenance</a></nav></header>',
        verdict_block(data),
        accuracy_html(data),
        '<h2 id="ranks">Where the published order ranks</h2>',
        figure_html(ranks) if ranks else no_items,
        '<h2 id="subjects">Leaked fraction per subject</h2>',
        figure_html(subjects) if subjects else no_items,
        '<h2 id="statistic">Item statistic: audited' + (" vs control" if data.get("control") else "") + "</h2>",
        figure_html(stat) if stat else no_items,
        '<h2 id="flagged-items">Flagged items</h2>',
        flagged_table(items),
        _failures(data),
        '<h2 id="provenance">Provenance</h2>',
        provenance_block(prov),
    ]
    return page(f"Leakage audit: {model} on {dataset}", "\n".join(body))
