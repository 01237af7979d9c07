"""report.json (the contract, for machines) and report.md (for people), written atomically.

The report depends only on the scores and the provenance, so re-running an audit from the cache
writes byte-identical files. Run statistics (requests sent, cache hits, wall time) are not part of
it: the CLI prints them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.analysis.assess import Assessment, item_fields
from auditor.analysis.detector import ItemFailure, ItemVerdict, judge_dataset
from auditor.input.items import Item

TOP_ITEMS = 20


@dataclass
class Report:
    data: dict[str, Any]

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        js = out / "report.json"
        md = out / "report.md"
        page = out / "report.html"
        _atomic_write(js, json.dumps(self.data, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
        _atomic_write(md, render_markdown(self.data))
        from auditor.report.html import render_html  # plotly loads only when a report is written

        _atomic_write(page, render_html(self.data))
        return [js, md, page]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_report(
    verdicts: Sequence[ItemVerdict],
    failures: Sequence[ItemFailure],
    provenance: dict[str, Any],
    *,
    skipped: Sequence[dict[str, Any]] = (),
    partial: bool = False,
    assessment: Assessment,
    extra: dict[str, Any] | None = None,
    texts: Mapping[str, Item] | None = None,
) -> Report:
    ds = judge_dataset(verdicts, n_failed=len(failures))
    a = assessment
    est, lo, hi = a.summary.fraction
    summary = {
        "n_items": ds.n_items,
        "n_leaked": ds.n_leaked,
        "leak_rate": ds.leak_rate,
        "chance_rate": ds.chance_rate,
        "p_value": ds.p_value,
        "n_failed": ds.n_failed,
        "n_skipped_invalid": len(skipped),
        "partial": partial,
        "method": a.method,
        "verdict": a.summary.verdict,
        "verdict_text": a.summary.sentence,
        "leaked_fraction": {"estimate": est, "low": lo, "high": hi},
        "null": a.null.to_json(),
        "n_flagged": sum(a.flagged.values()),
        "n_order_sensitive": sum(bool(r) for r in a.order_reasons.values()),
        "n_excluded_order_sensitive": len(a.excluded),
        "n_units": a.summary.n_units,
        "units_top1": a.summary.top1,
        "p_binomial_units": a.summary.p_binomial,
        "p_rank_sum": a.summary.p_rank_sum,
        "p_vs_control": a.summary.p_control,
        "p_verdict": a.summary.p_verdict,
        "verdict_test": a.summary.verdict_test,
        "subjects": a.summary.subjects,
    }
    extra = dict(extra or {})
    seq = extra.get("sequential")
    if seq is not None:  # an always-valid decision replaces the fixed-sample one (peeking invalidates it)
        summary.update(_sequential_summary(seq))
    summary["n_not_scored"] = extra.get("not_scored", {}).get("count", 0)
    summary["n_degenerate"] = extra.get("degenerate", {}).get("count", 0)
    if not verdicts:  # nothing to judge, sequential or not: the fixed-sample summary says why
        summary["verdict"], summary["verdict_text"] = a.summary.verdict, a.summary.sentence
    data = {
        "summary": summary,
        "items": [
            {
                "id": v.id,
                "subject": v.subject,
                **_text(texts, v.id),
                "n_orderings": v.n_orderings,
                "rank": v.rank,
                "leaked": v.leaked,
                "p_value": v.p_value,
                "margin": v.margin,
                "rank_random": v.rank_random,
                "z_published": v.z_published,
                "outlier_score": v.outlier_score,
                "best_ordering": list(v.best_ordering),
                "min_k": v.min_k if v.min_k == v.min_k else None,
                **item_fields(a, v.id),
                "scores": v.scores,
                "orderings": [list(p) for p in v.orderings],
            }
            for v in verdicts
        ],
        "failures": [{"id": f.id, "subject": f.subject, "reason": f.reason} for f in failures],
        "skipped_invalid": list(skipped),
        **extra,
        **_control(a),
        "provenance": provenance,
    }
    return Report(data)


def _text(texts: Mapping[str, Item] | None, item_id: str) -> dict[str, Any]:
    """The item's question and options in the published order (for report.html and exports)."""
    it = texts.get(item_id) if texts is not None else None
    return {} if it is None else {"question": it.question, "options": list(it.options), "answer": it.answer}


def _control(a: Assessment) -> dict[str, Any]:
    """The control run's item statistic (z of the published order), for the audited-vs-control plot."""
    n = a.null
    if n.kind != "control":
        return {}
    return {"control": {"source": n.source, "n_items": n.control_n, "top1": n.control_top1,
                        "z_published": n.control_z}}  # fmt: skip


def _sequential_summary(seq: dict[str, Any]) -> dict[str, Any]:
    lo, hi = seq["leaked_fraction_interval"]["low"], seq["leaked_fraction_interval"]["high"]
    decision = seq["decision"]
    n, tol, alpha = seq["items_used"], seq["tolerance"], seq["alpha"]
    if decision == "leakage":
        low = f"{lo:.0%} to {hi:.0%}" if lo > 0 else f"above 0, at most {hi:.0%}"
        text = (f"sequential test: leakage, decided after {n} items (e-value {seq['e_value_no_leakage']:.3g} >="
                f" 1/alpha = {1 / alpha:g}); leaked fraction {low} (always-valid {1 - alpha:.0%}"
                " confidence sequence)")  # fmt: skip
    elif decision == "no_evidence":
        text = (f"sequential test: no evidence of leakage above the tolerance: after {n} items the leaked"
                f" fraction is at most {hi:.0%} (tolerance {tol:.0%}) with {1 - alpha:.0%} confidence")  # fmt: skip
    else:
        text = (f"sequential test undecided after {n} items: leaked fraction {lo:.0%} to {hi:.0%}"
                f" ({1 - alpha:.0%} confidence sequence); add items or raise the budget")  # fmt: skip
    return {  # undecided: the items ran out before the test could decide: too few scored
        "verdict": {"leakage": "leakage", "no_evidence": "no_evidence"}.get(decision, "too_few_scored"),
        "verdict_text": text,
        "leaked_fraction": {"estimate": seq["leaked_fraction_estimate"], "low": lo, "high": hi},
        "sequential_decision": decision,
        "p_verdict": min(1.0, 1.0 / seq["e_value_no_leakage"]) if seq["e_value_no_leakage"] > 0 else 1.0,
        "verdict_test": "sequential test (p = 1/e-value, always valid)",
        "p_values_descriptive_only": True,
    }


EXPLANATION = [
    "## What the numbers mean",
    "",
    "- **Scores.** Every ordering of an item's options was scored by the model's log-probability of the",
    "  options block. A model that saw an item in training tends to prefer its published order.",
    "- **Top-1 count and its p-value.** Without any preference the published order comes first in 1 of K",
    "  orderings. The p-value is the chance of at least this many such items if the model had no preference.",
    "- **Rank-sum test.** Uses where the published order ranks in every item, not only whether it won:",
    "  more power when leakage lifts many items a little.",
    "- **Leaked fraction.** The share of items that would have to be leaked to explain the excess over",
    "  chance, with a 95% interval. An estimate under a simple model, not a count of leaked items.",
    "- **Flagged items.** An item is flagged when its published order wins by a clear margin (scenario a),",
    "  or another ordering stands out from the rest (scenario b, leaked in a shuffled order). Thresholds are",
    "  set so that an item without leakage is flagged with the stated probability under the null.",
    '- **Order-sensitive items.** Options that read naturally in one order only ("all of the above",',
    "  sorted numbers, options naming other options, answer grids) win without leakage: distrust their flags.",
    "- **When to distrust it all.** Without a control run, a small p-value says the model prefers the",
    "  published order, not why: natural order and pretraining on web copies of the benchmark look the same.",
    "  Audit a clean reference model on the same items and pass it as `--control-run`.",
]


def _partial_note(data: dict[str, Any]) -> list[str]:
    budget = data.get("budget") or {}
    if budget.get("stopped_by"):
        fin, left = budget["to_finish"], budget.get("left") or {}
        about = f"~{fin['tokens_estimate']}" if fin.get("tokens_estimate") is not None else "at most"
        bound = f"{about} tokens, at most {fin['tokens_upper_bound']}"
        unspent = (f" The {left['tokens']} tokens left unspent would have bought ~{left['items_it_would_buy']} more"
                   " item(s)." if left.get("items_it_would_buy") is not None else "")  # fmt: skip
        return [f"> **Partial report**: the {budget['stopped_by']} budget ended the run; {fin['items']} item(s),"
                f" {fin['prompts']} prompt(s) ({bound}) were left.{unspent} Scored prompts are cached: re-run with"
                " a larger budget to pay for the rest only.", ""]  # fmt: skip
    return ["> **Partial report**: the run was interrupted; re-run the same command to finish it.", ""]


def _spend_lines(data: dict[str, Any]) -> list[str]:
    lines = ["## Cost", ""]
    sp = data.get("spend")
    if sp:
        full = sp["full_protocol"]
        share = sp.get("share_of_full_protocol")
        used = f"{sp['prompts_used']} ({sp['prompt_tokens_used']} prompt tokens)"
        whole = f"{full['prompts']} prompts, ~{full['prompt_tokens_estimate'] or '?'} tokens"
        tail = f" ({share:.1%} of it spent)" if share else ""
        lines.append(f"- prompts behind these verdicts: {used}; the full protocol on the same {full['items']} items:"
                     f" {whole}{tail}")  # fmt: skip
    seq = data.get("sequential")
    if seq:
        lines.append(f"- sequential test ({seq['procedure']}, alpha {seq['alpha']}, tolerance {seq['tolerance']:.0%}):"
                     f" {seq['decision']} after {seq['items_used']} of {seq['items_available']} items; the p-values"
                     " above are descriptive only after a sequential stop")  # fmt: skip
    aside = data.get("set_aside") or {}
    for reason, v in aside.items():
        lines.append(f"- set aside before scoring ({reason.replace('_', ' ')}): {v['count']} item(s)")
    budget = data.get("budget")
    if budget:
        lim = {k: v for k, v in budget["limits"].items() if v is not None}
        cost = f", ${budget['cost']:.4f}" if budget.get("cost") is not None else ""
        stop = f"; stopped by the {budget['stopped_by']} limit" if budget.get("stopped_by") else ""
        charged = budget["tokens_charged_unconfirmed"]
        lines.append(f"- budget {lim}: {budget['tokens_total']} tokens ({charged} of them charged for failed or"
                     f" cancelled requests), {budget['requests']} requests{cost}{stop}")  # fmt: skip
    return [*lines, ""] if len(lines) > 2 else []


def _fmt_p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def render_markdown(data: dict[str, Any]) -> str:
    s = data["summary"]
    prov = data["provenance"]
    ep = prov["endpoint"]
    ds = prov["dataset"]
    excess = s["leak_rate"] - s["chance_rate"]
    lf = s["leaked_fraction"]
    null = s["null"]
    null_text = (
        f"control run {null.get('source', '')}" if null["kind"] == "control"
        else "exchangeable orderings (no control run: natural order cannot be told apart from leakage)"
    )  # fmt: skip
    lines = [
        f"# Leakage audit: `{ep['model']}` on `{ds['path']}`",
        "",
        f"Audited: {ds.get('description') or ds['path']}.",
        "",
        *(_partial_note(data) if s.get("partial") else []),
        f"**Verdict: {s['verdict'].replace('_', ' ')}** ({s['method']} method): {s['verdict_text']}.",
        "",
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| items scored | {s['n_items']} |",
        f"| published order scored highest | {s['n_leaked']} ({s['leak_rate']:.1%}) |",
        f"| expected by chance | {s['chance_rate']:.1%} |",
        f"| excess over chance | {excess:+.1%} |",
        f"| p-value, top-1 count (exact binomial, one-sided) | {_fmt_p(s['p_value'])} |",
        f"| units tested (items sharing an option list count once) | {s['n_units']} |",
        f"| p-value, rank-sum test over every unit's rank | {_fmt_p(s['p_rank_sum'])} |",
        *(
            [f"| p-value against the control's top-1 rate (Fisher) | {_fmt_p(s['p_vs_control'])} |"]
            if s.get("p_vs_control") is not None
            else []
        ),
        f"| estimated leaked fraction (95% CI) | {lf['estimate']:.1%} ({lf['low']:.1%} to {lf['high']:.1%}) |",
        f"| items flagged (item-level false-positive rate {null['alpha']:.0%}) | {s['n_flagged']} |",
        f"| order-sensitive items | {s['n_order_sensitive']} "
        f"({'excluded' if s['n_excluded_order_sensitive'] else 'kept'}) |",
        f"| null | {null_text} |",
        f"| items that failed | {s['n_failed']} |",
        *([f"| items with degenerate scores (not evidence, left out) | {s['n_degenerate']} |"]
          if s.get("n_degenerate") else []),
        f"| items skipped as invalid | {s['n_skipped_invalid']} |",
        "",
        *_spend_lines(data),
        *EXPLANATION,
        "",
    ]
    top = sorted((it for it in data["items"] if it["leaked"]), key=lambda it: -it["margin"])[:TOP_ITEMS]
    if top:
        lines += [
            f"## Items where the published order wins by the widest margin (top {len(top)})",
            "",
            "| item | subject | margin (nats) | z | flagged | order-sensitive |",
            "|---|---|---:|---:|---|---|",
        ]
        lines += [
            f"| `{it['id']}` | {it['subject']} | {it['margin']:.3f} | {it['z_published']:.2f} | "
            f"{'yes' if it['flagged'] else 'no'} | {', '.join(it['order_reasons']) or 'no'} |"
            for it in top
        ]
        lines.append("")
    degenerate = (data.get("degenerate") or {}).get("items") or []
    if degenerate:
        lines += ["## Degenerate scores", "", f"{len(degenerate)} item(s) were scored but their scores cannot show a"
                  " preference for any order, so they are left out of every statistic; the first ones:", ""]
        lines += [f"- `{d['id']}`: {d['reason']}" for d in degenerate[:10]]
        lines.append("")
    if data["failures"]:
        lines += ["## Failures", "", f"{len(data['failures'])} item(s) could not be scored; the first ones:", ""]
        lines += [f"- `{f['id']}`: {f['reason']}" for f in data["failures"][:10]]
        lines.append("")
    lines += [
        "## Provenance",
        "",
        f"- endpoint: {ep['base_url']} (provider `{ep['provider']}`), model `{ep['model']}`"
        + (f", server {ep['server']} {ep['server_version'] or ''}".rstrip() if ep.get("server") else ""),
        f"- dataset: `{ds['path']}`, {ds['files']} file(s), sha256 `{ds['sha256']}`,"
        f" {ds['items_loaded']} items loaded" + (f", first {ds['limit']} used" if ds.get("limit") else ""),
        *([f"- bundled sample `{b['name']}`: {b['source']}; licence {b['licence']}"] if (b := ds.get("bundled"))
          else []),
        f"- template: `{prov['template']['name']}`; max orderings {prov['max_orderings']}; seed {prov['seed']}",
        f"- tool: auditor {prov['tool']['version']}; scored between {prov['time']['first_scored']}"
        f" and {prov['time']['last_scored']}",
        "" if not ep.get("insecure_tls") else "- TLS verification was OFF (--insecure)",
    ]
    return "\n".join(lines).rstrip() + "\n"
