"""What leakage does to the score: the model's answers, scored the way evaluation harnesses score
multiple choice (auditor/prompts/harness.py), and its accuracy on flagged and unflagged items.

Per item and method (`letter`, `cloze`, `cloze_norm`) the answer is the option whose continuation has the
highest log-likelihood (the first one on a tie, like the harness's np.argmax). Accuracy is over the items
that were judged by the audit, have an answer key, and had every prompt of that method scored:

- `overall`: all of them; `flagged`: those the audit flagged; `unflagged`: the rest. Removing the flagged
  items leaves the unflagged ones, so `unflagged` is the "decontaminated" accuracy.
- intervals: 95% Wilson score intervals; `flagged_minus_unflagged` (two disjoint samples) has Newcombe's
  hybrid score interval (method 10 of Newcombe 1998), and `decontaminated_change` (unflagged minus
  overall = -(n_flagged / n) x flagged_minus_unflagged, given which items were flagged) that interval scaled.

Items without an answer key get answers but no accuracy: they are counted apart (`n_no_answer`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.analysis.detector import span_score
from auditor.analysis.stats import wilson_interval
from auditor.errors import AuditorError
from auditor.input.items import Item
from auditor.prompts.harness import METHODS, HarnessPrompts
from providers.base import LogprobRecord


@dataclass(frozen=True)
class ItemAnswer:
    """One item's harness scores: a log-likelihood per option for each method, None when not scored."""

    id: str
    answer: int | None
    letter: tuple[float, ...] | None
    cloze: tuple[float, ...] | None
    option_chars: tuple[int, ...]
    error: str | None = None  # why a method is missing

    def scores(self, method: str) -> tuple[float, ...] | None:
        if method == "letter":
            return self.letter
        if method == "cloze":
            return self.cloze
        if self.cloze is None:
            return None
        return tuple(ll / max(1, c) for ll, c in zip(self.cloze, self.option_chars, strict=True))

    def choice(self, method: str) -> int | None:
        lls = self.scores(method)
        return None if lls is None else max(range(len(lls)), key=lambda k: (lls[k], -k))

    def correct(self, method: str) -> bool | None:
        choice = self.choice(method)
        return None if choice is None or self.answer is None else choice == self.answer


def answer_item(
    item: Item, prompts: HarnessPrompts, records: Sequence[LogprobRecord | None], errors: Sequence[str | None]
) -> ItemAnswer:
    """Score an item's harness prompts (`records` in the order of `prompts.all()`; None where one failed)."""
    n = len(item.options)
    problems: list[str] = []

    def method(part: slice, rendered: Sequence[Any]) -> tuple[float, ...] | None:
        recs, errs = records[part], errors[part]
        missing = [e or "not scored" for r, e in zip(recs, errs, strict=True) if r is None]
        if missing:
            problems.append(missing[0])
            return None
        try:
            return tuple(span_score(r, rend).score for r, rend in zip(recs, rendered, strict=True) if r is not None)
        except AuditorError as err:
            problems.append(str(err))
            return None

    letter = method(slice(0, n), prompts.letter)
    cloze = method(slice(n, 2 * n), prompts.cloze)
    chars = tuple(len(o) for o in item.options)
    return ItemAnswer(item.id, item.answer, letter, cloze, chars, problems[0] if problems else None)


@dataclass(frozen=True)
class Rate:
    n: int
    correct: int
    accuracy: float | None  # None when n == 0
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Difference:
    estimate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class MethodAccuracy:
    overall: Rate
    flagged: Rate
    unflagged: Rate  # = decontaminated: the accuracy once the flagged items are removed
    flagged_minus_unflagged: Difference
    decontaminated_change: Difference  # unflagged minus overall
    not_scored: int  # judged items with an answer key whose prompts of this method were not all scored


HOW = (
    "lm-evaluation-harness style, zero-shot, published order (auditor/prompts/harness.py): letter = log-likelihood"
    " of ' A', ' B', ... after the question with lettered options; cloze = of each option's text after"
    " 'Question: ...\\nAnswer:'; cloze_norm = cloze per character. 95% Wilson intervals; differences: Newcombe's"
    " hybrid score interval"
)


@dataclass(frozen=True)
class AnswerEntry:
    """One judged item's answers (report.json `accuracy.items[]`): option index chosen by each method."""

    id: str
    answer: int | None
    letter: int | None
    cloze: int | None
    cloze_norm: int | None
    letter_logprobs: tuple[float, ...] | None
    cloze_logprobs: tuple[float, ...] | None
    error: str | None


@dataclass(frozen=True)
class AccuracySection:
    """report.json `accuracy` (with --accuracy)."""

    how: str
    n_items: int  # judged items
    n_with_answer: int
    n_no_answer: int
    chance: float | None  # mean of 1/n over the items with an answer key
    prompts: int  # harness prompts scored for the items the run used
    prompt_tokens: int
    methods: Mapping[str, MethodAccuracy]
    items: tuple[AnswerEntry, ...]


def entry(a: ItemAnswer) -> AnswerEntry:
    return AnswerEntry(a.id, a.answer, a.choice("letter"), a.choice("cloze"), a.choice("cloze_norm"), a.letter,
                       a.cloze, a.error)  # fmt: skip


def rate(correct: int, n: int) -> Rate:
    if n == 0:
        return Rate(0, 0, None, None, None)
    low, high = wilson_interval(correct, n)
    return Rate(n, correct, correct / n, low, high)


def newcombe(a: Rate, b: Rate) -> Difference:
    """a - b for two independent proportions, with Newcombe's hybrid score (Wilson) interval."""
    if a.accuracy is None or b.accuracy is None or a.low is None or b.low is None:
        return Difference(None, None, None)
    assert a.high is not None and b.high is not None
    d = a.accuracy - b.accuracy
    low = d - math.sqrt((a.accuracy - a.low) ** 2 + (b.high - b.accuracy) ** 2)
    high = d + math.sqrt((a.high - a.accuracy) ** 2 + (b.accuracy - b.low) ** 2)
    return Difference(d, max(-1.0, low), min(1.0, high))


def method_accuracy(answers: Sequence[ItemAnswer], flagged: Mapping[str, bool], method: str) -> MethodAccuracy:
    outcomes = [(a.id, a.correct(method)) for a in answers if a.answer is not None]
    scored = [(i, c) for i, c in outcomes if c is not None]
    flag = [c for i, c in scored if flagged[i]]
    rest = [c for i, c in scored if not flagged[i]]
    overall, f, u = rate(sum(c for _, c in scored), len(scored)), rate(sum(flag), len(flag)), rate(sum(rest), len(rest))
    diff = newcombe(f, u)
    w = f.n / overall.n if overall.n else 0.0
    change = (Difference(None, None, None) if diff.estimate is None or diff.low is None or diff.high is None
              else Difference(-w * diff.estimate, -w * diff.high, -w * diff.low))  # fmt: skip
    return MethodAccuracy(overall, f, u, diff, change, len(outcomes) - len(scored))


def accuracy_section(
    answers: Sequence[ItemAnswer],
    flagged: Mapping[str, bool],
    n_options: Mapping[str, int],
    *,
    prompts: int,
    prompt_tokens: int,
) -> AccuracySection:
    """Accuracy of the judged items (`flagged`: item id -> flagged, for every judged item); `prompts` and
    `prompt_tokens`: the harness prompts scored for them."""
    judged = [a for a in answers if a.id in flagged]
    keyed = [a for a in judged if a.answer is not None]
    return AccuracySection(
        how=HOW,
        methods={m: method_accuracy(judged, flagged, m) for m in METHODS},
        n_items=len(judged),
        n_with_answer=len(keyed),
        n_no_answer=len(judged) - len(keyed),
        chance=sum(1 / n_options[a.id] for a in keyed) / len(keyed) if keyed else None,
        prompts=prompts,
        prompt_tokens=prompt_tokens,
        items=tuple(entry(a) for a in judged),
    )
