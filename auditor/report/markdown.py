"""report.md, and the verdict block that the terminal prints too: both from the typed Report."""

from __future__ import annotations

from typing import Any

from auditor.report.accuracy import accuracy_headline, accuracy_lines
from auditor.report.model import ItemEntry, Report, Summary

TOP_ITEMS = 20
SCENARIOS = {"a": "a: published order on top", "b": "b: another ordering stands out (named)"}

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
    "- **Flagged items.** An item is flagged when its published order is on top and its own text is familiar to",
    "  the model (scenario a: Min-K% against the items with no order preference; with a control run, the rank and",
    "  the likelihood gained over the reference combined), or another ordering rose far above the item's others",
    "  and the text is familiar (scenario b: that ordering is named). Each has a p-value from a stated null",
    "  (report.json: summary.null, items[].p); an item without leakage is flagged with at most the stated",
    "  probability when those nulls hold.",
    '- **Order-sensitive items.** Options that read naturally in one order only ("all of the above",',
    "  sorted numbers, options naming other options, answer grids) win without leakage: distrust their flags.",
    "- **When to distrust it all.** Without a control run, a small p-value says the model prefers the",
    "  published order, not why: natural order and pretraining on web copies of the benchmark look the same.",
    "  Audit a clean reference model on the same items and pass it as `--control-run`.",
]


# why an item was set aside before scoring, as the verdict block's items row says it
SET_ASIDE_WORDS = {
    "shared_option_list": "same options as another audited item: scored once",
    "order_sensitive": "order-sensitive; --keep-order-sensitive scores them",
}


def fmt_p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def headline_rows(report: Report) -> list[tuple[str, str]]:
    """The verdict block: what report.md opens with and the terminal ends with, word for word."""
    s = report.summary
    lf = s.leaked_fraction
    test = s.verdict_test.description
    sensitive = (
        f"{s.n_order_sensitive} of {s.n_items + s.n_excluded_order_sensitive} items ({s.order_sensitive_share:.0%})"
    )
    rows = [
        ("verdict", f"{_verdict_words(s)} ({s.method.value} method)" + (" [partial run]" if s.partial else "")),
        ("deciding test", f"{test}: p = {fmt_p(s.p_verdict)}" + (" (always valid)" if s.sequential_decision else "")),
        (
            "leaked fraction",
            f"{lf.estimate:.1%} (95% {'CS' if s.sequential_decision else 'CI'} {lf.low:.1%} to {lf.high:.1%})",
        ),
        (
            "items",
            f"{s.n_items} scored, {s.n_top1} with the published order first ({s.top1_rate:.1%} vs chance"
            f" {s.chance_rate:.1%}), {s.n_failed} failed"
            + (f", {s.n_not_scored} not scored" if s.n_not_scored else "")
            + (f", {s.n_skipped_invalid} skipped as invalid" if s.n_skipped_invalid else "")
            + "".join(
                f", {v['count']} set aside ({SET_ASIDE_WORDS.get(reason, reason.replace('_', ' '))})"
                for reason, v in (report.set_aside or {}).items()
                if v["count"]
            ),
        ),
        (
            "flagged items",
            f"{s.n_flagged} of {s.n_items} (a: {s.n_flagged_a}, b: {s.n_flagged_b}; item-level"
            f" false-positive rate {s.null.alpha:.0%})",
        ),
        ("order-sensitive", sensitive + (", excluded from the headline" if s.n_excluded_order_sensitive else ", kept")),
        ("null", _null_words(s)),
    ]
    if report.accuracy is not None:
        rows.append(("accuracy", accuracy_headline(report.accuracy)))
    if s.partial:
        rows.append(("status", _status_words(s, report)))
    return rows


def _verdict_words(s: Summary) -> str:
    if s.sequential_decision == "undecided":
        return "undecided (no evidence so far)"
    return s.verdict.value.replace("_", " ")


def _null_words(s: Summary) -> str:
    if s.has_control:
        return f"control run {s.null.source}"
    return ("no control: leakage, natural order and pretraining exposure cannot be told apart"
            " (audit a clean model and pass --control-run)")  # fmt: skip


def _status_words(s: Summary, report: Report) -> str:
    left = s.n_not_scored
    if s.stopped_by == "interrupted":
        return f"partial: interrupted, {left} item(s) not scored; re-run the same command to finish"
    return f"partial: the {s.stopped_by} budget stopped the run, {left} item(s) not scored"


def render_markdown(report: Report) -> str:
    s = report.summary
    prov = report.provenance
    ep = prov["endpoint"]
    ds = prov["dataset"]
    lf = s.leaked_fraction
    width = max(len(k) for k, _ in headline_rows(report))
    lines = [
        f"# Leakage audit: `{ep['model']}` on `{ds['path']}`",
        "",
        f"Audited: {ds.get('description') or ds['path']}.",
        "",
        *(_partial_note(report) if s.partial else []),
        f"**Verdict: {_verdict_words(s)}** ({s.method.value} method): {s.verdict_text}.",
        "",
        "```",
        *(f"{k:<{width}}  {v}" for k, v in headline_rows(report)),
        "```",
        "",
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| items scored{' (order-sensitive ones excluded)' if s.n_excluded_order_sensitive else ''} | {s.n_items} |",
        f"| published order ranked first (top-1) | {s.n_top1} ({s.top1_rate:.1%}) |",
        f"| expected by chance | {s.chance_rate:.1%} |",
        f"| excess over chance | {s.top1_rate - s.chance_rate:+.1%} |",
        f"| units tested (items sharing an option list count once) | {s.n_units} |",
        f"| p-value, top-1 count over units (exact binomial, one-sided) | {fmt_p(s.p_top1)} |",
        f"| p-value, rank-sum test over every unit's rank | {fmt_p(s.p_rank_sum)} |",
        *([f"| p-value against the control | {fmt_p(s.p_vs_control)} |"] if s.p_vs_control is not None else []),
        f"| estimated leaked fraction (95% CI) | {lf.estimate:.1%} ({lf.low:.1%} to {lf.high:.1%}) |",
        f"| items flagged (item-level false-positive rate {s.null.alpha:.0%}) | {s.n_flagged}"
        f" (scenario a: {s.n_flagged_a}, b: {s.n_flagged_b}) |",
        f"| order-sensitive items | {s.n_order_sensitive} ({'excluded' if s.n_excluded_order_sensitive else 'kept'}) |",
        f"| items that failed | {s.n_failed} |",
        *([f"| items with degenerate scores (not evidence, left out) | {s.n_degenerate} |"] if s.n_degenerate else []),
        f"| items skipped as invalid | {s.n_skipped_invalid} |",
        "",
        *_spend_lines(report),
        *accuracy_lines(report.accuracy),
        *_flagged_lines(report.flagged()),
        *EXPLANATION,
        "",
    ]
    top = sorted((it for it in report.items if it.top1), key=lambda it: -it.margin)[:TOP_ITEMS]
    if top:
        lines += [
            f"## Items where the published order wins by the widest margin (top {len(top)})",
            "",
            "| item | subject | margin (nats) | z | flagged | order-sensitive |",
            "|---|---|---:|---:|---|---|",
        ]
        lines += [
            f"| `{it.id}` | {it.subject} | {it.margin:.3f} | {it.z_published:.2f} | "
            f"{'yes' if it.flagged else 'no'} | {', '.join(it.order_reasons) or 'no'} |"
            for it in top
        ]
        lines.append("")
    if report.degenerate is not None:
        lines += [
            "## Degenerate scores",
            "",
            f"{report.degenerate.count} item(s) were scored but their scores cannot"
            " show a preference for any order, so they are left out of every statistic; the first ones:",
            "",
        ]
        lines += [f"- `{d.id}`: {d.reason}" for d in report.degenerate.items[:10]]
        lines.append("")
    if report.skipped_invalid:
        lines += [
            "## Skipped as invalid",
            "",
            f"{len(report.skipped_invalid)} item(s) were not loaded; the first ones:",
            "",
        ]
        lines += [f"- `{k.file}` row {k.row}: {k.reason}" for k in report.skipped_invalid[:10]]
        lines.append("")
    if report.failures:
        lines += ["## Failures", "", f"{len(report.failures)} item(s) could not be scored; the first ones:", ""]
        lines += [f"- `{f.id}`: {f.reason}" for f in report.failures[:10]]
        lines.append("")
    lines += _provenance_lines(prov)
    return "\n".join(lines).rstrip() + "\n"


def _flagged_lines(flagged: list[ItemEntry]) -> list[str]:
    """Every flagged item, with its scenario."""
    if not flagged:
        return []
    lines = [
        f"## Flagged items ({len(flagged)})",
        "",
        "| item | subject | scenario | rank | z published | outlier score | order-sensitive |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| `{it.id}` | {it.subject} | {SCENARIOS.get(it.scenario or '', it.scenario or '?')} | {it.rank} |"
        f" {it.z_published:.2f} | {it.outlier_score:.2f} | {', '.join(it.order_reasons) or 'no'} |"
        for it in flagged
    ]
    return [*lines, ""]


def _provenance_lines(prov: Any) -> list[str]:
    ep = prov["endpoint"]
    ds = prov["dataset"]
    return [
        "## Provenance",
        "",
        f"- endpoint: {ep['base_url']} (provider `{ep['provider']}`), model `{ep['model']}`"
        + (f", server {ep['server']} {ep['server_version'] or ''}".rstrip() if ep.get("server") else ""),
        f"- dataset: `{ds['path']}`, {ds['files']} file(s), sha256 `{ds['sha256']}`,"
        f" {ds['items_loaded']} items loaded" + (f", first {ds['limit']} used" if ds.get("limit") else ""),
        *(
            [f"- bundled sample `{b['name']}`: {b['source']}; licence {b['licence']}"]
            if (b := ds.get("bundled"))
            else []
        ),
        f"- template: `{prov['template']['name']}`; max orderings {prov['max_orderings']}; seed {prov['seed']}",
        f"- tool: auditor {prov['tool']['version']}; scored between {prov['time']['first_scored']}"
        f" and {prov['time']['last_scored']}",
        "" if not ep.get("insecure_tls") else "- TLS verification was OFF (--insecure)",
    ]


def _partial_note(report: Report) -> list[str]:
    budget = report.budget or {}
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


def _spend_lines(report: Report) -> list[str]:
    lines = ["## Cost", ""]
    sp = report.spend
    full = sp.full_protocol
    share = sp.share_of_full_protocol
    used = f"{sp.prompts_used} ({sp.prompt_tokens_used} prompt tokens)"
    whole = f"{full.prompts} prompts, ~{full.prompt_tokens_estimate or '?'} tokens"
    tail = f" ({share:.1%} of it spent)" if share else ""
    lines.append(f"- prompts behind these verdicts: {used}; the full protocol on the same {full.items} items:"
                 f" {whole}{tail}")  # fmt: skip
    seq = report.sequential
    if seq:
        lines.append(f"- sequential test ({seq['procedure']}, alpha {seq['alpha']}, tolerance {seq['tolerance']:.0%}):"
                     f" {seq['decision']} after {seq['items_used']} of {seq['items_available']} items; the p-values"
                     " above are descriptive only after a sequential stop")  # fmt: skip
    for reason, v in (report.set_aside or {}).items():
        lines.append(f"- set aside before scoring ({reason.replace('_', ' ')}): {v['count']} item(s)")
    budget = report.budget
    if budget:
        lim = {k: v for k, v in budget["limits"].items() if v is not None}
        cost = f", ${budget['cost']:.4f}" if budget.get("cost") is not None else ""
        stop = f"; stopped by the {budget['stopped_by']} limit" if budget.get("stopped_by") else ""
        charged = budget["tokens_charged_unconfirmed"]
        lines.append(f"- budget {lim}: {budget['tokens_total']} tokens ({charged} of them charged for failed or"
                     f" cancelled requests), {budget['requests']} requests{cost}{stop}")  # fmt: skip
    return [*lines, ""]
