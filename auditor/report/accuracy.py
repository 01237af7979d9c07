"""The report section on what leakage does to the score (`--accuracy`): report.md from the typed section,
report.html from report.json's `accuracy` (the page is built from the file alone)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditor.analysis.accuracy import AccuracySection
from auditor.report.model import to_json
from auditor.report.page import Column, esc, table, text_cell

TITLE = "What leakage does to the score"
NAMES = {"letter": "letter (MMLU-style)", "cloze": "cloze", "cloze_norm": "cloze, per character"}
HOW = (
    "The model's answers on the published order, scored the way evaluation harnesses score multiple choice"
    " (zero-shot, lm-evaluation-harness style): letter = the option letter with the highest log-likelihood"
    " after the question and its lettered options; cloze = the option whose text is most likely after"
    " 'Question: ... Answer:'; per character = the same divided by the option's length. 95% Wilson"
    " intervals; differences with Newcombe's interval. Flagged items that a model answers much better than"
    " the rest are what leakage buys on this benchmark's score."
)
ROWS = (  # (label, key in a method's section, kind)
    ("all judged items", "overall", "rate"),
    ("flagged", "flagged", "rate"),
    ("decontaminated (flagged items removed)", "unflagged", "rate"),
    ("flagged minus unflagged", "flagged_minus_unflagged", "difference"),
    ("change from removing the flagged items", "decontaminated_change", "difference"),
)


def _rate(r: Mapping[str, Any]) -> str:
    if r["accuracy"] is None:
        return "n/a (0 items)"
    return f"{r['accuracy']:.1%} ({r['low']:.1%} to {r['high']:.1%}), {r['correct']}/{r['n']}"


def _diff(d: Mapping[str, Any]) -> str:
    if d["estimate"] is None:
        return "n/a"
    return f"{100 * d['estimate']:+.1f} pp ({100 * d['low']:+.1f} to {100 * d['high']:+.1f})"


def _cells(acc: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    methods = acc["methods"]
    return [
        (label, [(_rate if kind == "rate" else _diff)(m[key]) for m in methods.values()]) for label, key, kind in ROWS
    ]


def _footer(acc: Mapping[str, Any]) -> str:
    chance = f"{acc['chance']:.1%}" if acc["chance"] is not None else "n/a"
    not_scored = {m: s["not_scored"] for m, s in acc["methods"].items() if s["not_scored"]}
    return (
        f"Chance: {chance}. {acc['n_with_answer']} of {acc['n_items']} judged items have an answer key;"
        f" {acc['n_no_answer']} without one are counted apart (their answers are in report.json). Cost:"
        f" {acc['prompts']} harness prompts, {acc['prompt_tokens']} prompt tokens."
        + (f" Not scored (a prompt failed): {not_scored}." if not_scored else "")
    )


def accuracy_headline(section: AccuracySection) -> str:
    """One line for the verdict block: the letter method's accuracy, all judged items -> flagged removed."""
    m = section.methods["letter"]
    a, d = m.overall, m.unflagged
    if a.accuracy is None or d.accuracy is None:
        return f"n/a (letter method: {a.n} judged items with an answer key scored)"
    return (f"{a.accuracy:.1%} -> {d.accuracy:.1%} with the {m.flagged.n} flagged item(s) removed (letter method,"
            f" lm-evaluation-harness style; flagged items: {_rate(to_json(m.flagged))})")  # fmt: skip


def accuracy_lines(section: AccuracySection | None) -> list[str]:
    """report.md's section (empty without --accuracy)."""
    if section is None:
        return []
    acc = to_json(section)  # the numbers as report.json has them, formatted once for both pages
    names = [NAMES.get(m, m) for m in acc["methods"]]
    return [
        f"## {TITLE}",
        "",
        HOW,
        "",
        "| items | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        *(f"| {label} | " + " | ".join(cells) + " |" for label, cells in _cells(acc)),
        "",
        _footer(acc),
        "",
    ]


def accuracy_html(data: Mapping[str, Any]) -> str:
    """report.html's section, from report.json's data (empty without --accuracy)."""
    acc = data.get("accuracy")
    if not acc:
        return ""
    columns = [Column("items"), *(Column(NAMES.get(m, m)) for m in acc["methods"])]
    rows = [[text_cell(label), *(text_cell(c) for c in cells)] for label, cells in _cells(acc)]
    return (
        f'<h2 id="accuracy">{TITLE}</h2><p class=note>{esc(HOW)}</p>{table("accuracy", columns, rows)}'
        f"<p class=note>{esc(_footer(acc))}</p>"
    )
