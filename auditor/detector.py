"""From per-ordering log-probabilities to per-item and per-dataset verdicts (first version).

Per item: each ordering's score is the sum of the log-probabilities of the tokens in its scored
span (first option label to the end of the options block). The published order's rank among the
K orderings is 1 + the number of orderings that score strictly higher (a tie with the best counts
as rank 1, as in the reference code). Scenario a: `leaked` when rank == 1. Under the null that the
model has no preference for the published order, P(rank <= r) = r / K, so p = rank / K.

Dataset: the count of leaked items is tested against chance, each item contributing 1/K
(an exact binomial test when K is the same for all items; Poisson-binomial otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditor.align import span_token_range
from auditor.errors import AlignmentError
from auditor.orderings import Ordering, Rendered
from auditor.stats import poisson_binomial_sf
from providers.base import LogprobRecord


@dataclass(frozen=True)
class SpanScore:
    score: float
    first_token: int  # index of the first scored token (= tokens before the span)
    n_tokens: int


def span_score(record: LogprobRecord, rendered: Rendered) -> SpanScore:
    first, last = span_token_range(record.offsets, len(rendered.text), rendered.span_start, rendered.span_end)
    values = record.logprobs[first:last]
    if any(v is None for v in values):
        raise AlignmentError("the scored span includes the first prompt token, which has no logprob")
    return SpanScore(float(sum(v for v in values if v is not None)), first, last - first)


@dataclass(frozen=True)
class ItemVerdict:
    id: str
    subject: str
    orderings: list[Ordering]
    scores: list[float]
    rank: int
    leaked: bool
    p_value: float
    margin: float  # published score minus the best other ordering's score

    @property
    def n_orderings(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class ItemFailure:
    id: str
    subject: str
    reason: str


def judge_item(item_id: str, subject: str, orderings: Sequence[Ordering], spans: Sequence[SpanScore]) -> ItemVerdict:
    """Verdict for one item; `orderings[0]` must be the published order."""
    if len(set(s.first_token for s in spans)) != 1:
        counts = sorted({s.first_token for s in spans})
        raise AlignmentError(
            f"the scored span starts after a different number of tokens across orderings {counts}:"
            " the text before the options tokenizes differently, so scores are not comparable"
        )
    scores = [s.score for s in spans]
    published = scores[0]
    rank = 1 + sum(1 for s in scores[1:] if s > published)
    k = len(scores)
    return ItemVerdict(
        id=item_id,
        subject=subject,
        orderings=list(orderings),
        scores=scores,
        rank=rank,
        leaked=rank == 1,
        p_value=rank / k,
        margin=published - max(scores[1:]),
    )


@dataclass(frozen=True)
class DatasetVerdict:
    n_items: int
    n_leaked: int
    leak_rate: float
    chance_rate: float
    p_value: float
    n_failed: int


def judge_dataset(verdicts: Sequence[ItemVerdict], n_failed: int) -> DatasetVerdict:
    n = len(verdicts)
    leaked = sum(v.leaked for v in verdicts)
    chances = [1.0 / v.n_orderings for v in verdicts]
    return DatasetVerdict(
        n_items=n,
        n_leaked=leaked,
        leak_rate=leaked / n if n else 0.0,
        chance_rate=sum(chances) / n if n else 0.0,
        p_value=poisson_binomial_sf(leaked, chances) if n else 1.0,
        n_failed=n_failed,
    )
