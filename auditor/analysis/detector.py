"""From per-ordering log-probabilities to per-item statistics (no decision: see analysis/verdicts.py).

Per item: each ordering's score is the sum of the log-probabilities of the tokens in its scored
span (first option label to the end of the options block). The published order's rank among the
K orderings is 1 + the number of orderings that score strictly higher (a tie with the best counts
as rank 1, as in the reference code); `top1` when rank == 1 (the published order ranked first: the
reference paper's scenario-a rule, which it calls "leaked"). Under the null that the model has no
preference for the published order, P(rank <= r) = r / K, so p = rank / K.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from auditor.errors import AlignmentError
from auditor.prompts.align import span_token_range
from auditor.prompts.orderings import Ordering, Rendered
from providers.base import LogprobRecord


@dataclass(frozen=True)
class SpanScore:
    score: float
    first_token: int  # index of the first scored token (= tokens before the span)
    n_tokens: int


def span_score(record: LogprobRecord, rendered: Rendered, *, skip_label: bool = False) -> SpanScore:
    """Sum of the span's token logprobs. `skip_label` reproduces the reference code's off-by-one: the
    token holding the first option label is left out and the sum starts at the next token."""
    first, last = span_token_range(record.offsets, len(rendered.text), rendered.span_start, rendered.span_end)
    if skip_label:
        first += 1
    values = record.logprobs[first:last]
    if None in values:
        raise AlignmentError("the scored span includes the first prompt token, which has no logprob")
    return SpanScore(float(sum(values)), first, last - first)  # type: ignore[arg-type]  # no None left


def min_k_prob(record: LogprobRecord, k: float = 0.2) -> float:
    """Min-K% Prob (Shi et al. 2023): the mean of the lowest k share of the prompt's token logprobs.

    Higher (closer to 0) means even the prompt's least likely tokens were expected: a sign the text
    was seen in training. Computed from the published ordering's echo, at no extra request.
    """
    values = sorted(v for v in record.logprobs if v is not None)
    if not values:
        return float("nan")
    n = max(1, int(len(values) * k))
    return float(np.mean(values[:n]))


def _z(value: float, rest: Sequence[float]) -> float:
    if len(rest) < 2:
        return 0.0
    sd = float(np.std(rest, ddof=1))
    return 0.0 if sd == 0 else (value - float(np.mean(rest))) / sd


@dataclass(frozen=True)
class ItemStats:
    id: str
    subject: str
    orderings: list[Ordering]
    scores: list[float]
    rank: int
    top1: bool  # the published order ranked first (ties count as first)
    p_value: float
    margin: float  # published score minus the best other ordering's score
    rank_random: int = 0  # rank with ties broken at random (seeded): exact uniform null
    z_published: float = 0.0  # published score against the other orderings, in their standard deviations
    outlier_score: float = 0.0  # best ordering's score against the rest (scenario b), in standard deviations
    best_index: int = 0  # which ordering scored highest
    min_k: float = float("nan")

    @property
    def n_orderings(self) -> int:
        return len(self.scores)

    @property
    def best_ordering(self) -> Ordering:
        return self.orderings[self.best_index]


TIE = 1e-9  # nats: scores closer than this (relative to their size) are the same score


def degenerate_reason(scores: Sequence[float], records: Sequence[LogprobRecord]) -> str | None:
    """Why an item's scores say nothing about the order of its options, or None.

    Every ordering scored the same (a rank means nothing: the reference rule would count the published
    order as the winner), or every token of every ordering came back with one logprob (the scores then
    only count tokens). Such items are reported as degenerate and never used as evidence."""
    top = max(scores)
    if top - min(scores) <= TIE * max(1.0, abs(top)):
        return f"degenerate scores: all {len(scores)} orderings scored the same ({top:.6g})"
    values = (v for r in records for v in r.logprobs[1:] if v is not None)
    one = next(values, None)
    if one is not None and all(v == one for v in values):  # stops at the first other value (the usual case)
        return f"degenerate scores: every token of every ordering has the same logprob ({one:.6g})"
    return None


@dataclass(frozen=True)
class ItemFailure:
    id: str
    subject: str
    reason: str


def item_stats(
    item_id: str,
    subject: str,
    orderings: Sequence[Ordering],
    spans: Sequence[SpanScore],
    *,
    seed: int = 0,
    min_k: float = float("nan"),
) -> ItemStats:
    """The statistics of one item; `orderings[0]` must be the published order."""
    if len(set(s.first_token for s in spans)) != 1:
        counts = sorted({s.first_token for s in spans})
        raise AlignmentError(
            f"the scored span starts after a different number of tokens across orderings {counts}:"
            " the text before the options tokenizes differently, so scores are not comparable"
        )
    scores = [s.score for s in spans]
    published = scores[0]
    rank = 1 + sum(1 for s in scores[1:] if s > published)
    ties = sum(1 for s in scores[1:] if s == published)
    digest = hashlib.sha256(f"{seed}\x00{item_id}".encode()).digest()
    rank_random = rank + int(np.random.default_rng(int.from_bytes(digest[:8], "little")).integers(0, ties + 1))
    best = int(np.argmax(scores))  # the first maximum, like the reference code
    k = len(scores)
    return ItemStats(
        id=item_id,
        subject=subject,
        orderings=list(orderings),
        scores=scores,
        rank=rank,
        top1=rank == 1,
        p_value=rank / k,
        margin=published - max(scores[1:]),
        rank_random=rank_random,
        z_published=_z(published, scores[1:]),
        outlier_score=_z(scores[best], scores[:best] + scores[best + 1 :]),
        best_index=best,
        min_k=min_k,
    )


def stats_from_report(d: dict[str, Any]) -> ItemStats:
    """An ItemStats from a report.json item (for control runs and re-evaluation without a server)."""
    orderings = [tuple(int(x) for x in p) for p in d["orderings"]]
    spans = [SpanScore(float(s), 0, 0) for s in d["scores"]]
    v = item_stats(str(d["id"]), str(d.get("subject", "")), orderings, spans)
    return replace(v, rank_random=int(d.get("rank_random", v.rank_random)),
                   min_k=float(d["min_k"]) if d.get("min_k") is not None else float("nan"))  # fmt: skip
