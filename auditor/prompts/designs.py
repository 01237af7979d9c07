"""Ordering designs: which prompts to score for an item, and how their scores become a verdict.

A design trades cost (prompts per item) for resolution (K, the number of orderings the published
order is ranked among; the smallest p-value is 1/K). `--orderings` names one:

    all         every ordering when n! <= --max-orderings, else a seeded sample of that many
    sample:K    K orderings, the published one included (a bare K means the same); all when K >= n!
    cyclic      the n rotations of the published order (K = n)
    paper-r     the 12 of the 24 orders of 4 options that Hidayat et al.'s "Permutation-R" scores
    pairs       the n(n-1) ordered option pairs (each prompt shows two options, as in "Permutation-Q"),
                combined into a score for every full ordering (below)

When is p = rank / K exact? Picture the null this way: the order the benchmark published is a random
arrangement of the options, unrelated to the model, while the model may still like some arrangements
of the contents better than others (short options first, sorted numbers, ...). Ordering sigma shows
option sigma[j] at position j, so with published arrangement pi the prompts show pi∘sigma for sigma
in the design's set S, and the published order is the one showing pi itself. Its rank among them is
uniform (ties broken at random), whatever the model's preferences, when knowing which arrangements
were shown tells nothing about which of them is pi:
- `all` (S = every ordering, a group) and `cyclic` (S = the n rotations, a subgroup): the arrangements
  shown are the coset pi∘S, and pi is equally likely to be any member of it. Exact.
- `sample:K` and `all` beyond --max-orderings (S = the identity plus a uniformly random set of K-1
  other orderings, drawn independently of the model): every member of the shown set is equally likely
  to be pi. Exact, provided the seed is not chosen after seeing results.
- `paper-r`: the paper's fixed set is not a subgroup of S_4 (it holds 8 odd permutations, so it is not
  the alternating group, the only subgroup of order 12, and it is not closed: (1,2,3,0) twice gives
  (2,3,0,1), which it lacks), and no nontrivial relabelling maps it to itself. Without leakage, a
  model with fixed content preferences then puts the published order on top with a probability
  anywhere from 1/24 to 6/24 depending on those preferences, not 1/12 (a preference for one sorted
  arrangement gives 1/24; the tests enumerate one that gives 6/24). Its 1/K holds under a stronger
  assumption, about the model rather than the design: the 12 shown orders' scores are exchangeable
  (e.g. independent and identically distributed). (Re-rooting the set at a seeded random member s,
  s^-1∘S, would make it exact again; that is no longer the paper's set, and is not offered.)
- `pairs`: see `Pairs`; exact like `all` / `sample:K`, because the derived score of a full ordering is
  a fixed function of the arrangement it stands for.

Source of paper-r and pairs: Hidayat et al., arXiv 2505.24263, code read at
github.com/nailashfrni/mcq-leakage-detection-code, commit cd5649b684a0b5c0575f41f479d6ec294b15bdf6:
`get_outlier.py` keeps `selected_perm` = indices 0, 1, 2, 6, 9, 10, 12, 13, 18, 19, 20, 22 of
`itertools.permutations([0, 1, 2, 3])`, whose tuples list the option shown at A, B, C, D (the same
convention as our `Ordering`), and flags an item when the published order (index 0) is not beaten
(ties count as a win: `item_stats`'s rank 1). `data_process_quad.py` renders the 12
`itertools.permutations([0, 1, 2, 3], 2)` as "A. x / B. y" prompts, and `run_experiment.sh` judges
them with the same rule, the pair (0, 1) against the other 11 pair prompts. That rule compares prompts
with different option texts (longer options score lower), so it has no null; `pairs` keeps the
paper's prompts and replaces its decision.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np

from auditor.analysis.detector import ItemStats, SpanScore, item_stats
from auditor.errors import AlignmentError, UsageError
from auditor.prompts.orderings import Ordering, orderings_for

DEFAULT_MAX_ORDERINGS = 120  # the CLI's --max-orderings default
CHOICES = "all, sample:K (K >= 2; a bare K means the same), cyclic, paper-r, pairs"

# Hidayat et al.'s Permutation-R set, in their order (see the module docstring for the source).
PAPER_R_INDICES = (0, 1, 2, 6, 9, 10, 12, 13, 18, 19, 20, 22)
PAPER_R: tuple[Ordering, ...] = tuple(list(itertools.permutations(range(4)))[i] for i in PAPER_R_INDICES)


class DesignKind(StrEnum):
    """The `--orderings` designs (a `sample` design also carries its K)."""

    ALL = "all"
    SAMPLE = "sample"
    CYCLIC = "cyclic"
    PAPER_R = "paper-r"
    PAIRS = "pairs"


class Design(ABC):
    """What to render and score for one item (`prompts`), and how to judge the scores (`judge`)."""

    kind: ClassVar[DesignKind]

    @property
    @abstractmethod
    def name(self) -> str:
        """The canonical spec, as recorded in provenance (`parse_design(d.name) == d`)."""

    @abstractmethod
    def prompts(self, n_options: int, *, seed: int, item_id: str, max_orderings: int) -> list[Ordering]:
        """The orderings to render, published order first; depends only on (design, n, seed, item id)."""

    def judge(
        self,
        item_id: str,
        subject: str,
        prompt_orderings: Sequence[Ordering],
        spans: Sequence[SpanScore],
        *,
        seed: int,
        min_k: float = float("nan"),
        max_orderings: int = DEFAULT_MAX_ORDERINGS,
    ) -> ItemStats:
        """The published order's rank among the scored orderings (`detector.item_stats`).

        `spans` are in the order of `prompts`; `max_orderings` is used by `pairs` only."""
        return item_stats(item_id, subject, prompt_orderings, spans, seed=seed, min_k=min_k)


@dataclass(frozen=True)
class AllOrderings(Design):
    kind = DesignKind.ALL

    @property
    def name(self) -> str:
        return "all"

    def prompts(self, n_options: int, *, seed: int, item_id: str, max_orderings: int) -> list[Ordering]:
        return orderings_for(n_options, max_orderings=max_orderings, seed=seed, item_id=item_id)


@dataclass(frozen=True)
class Sample(Design):
    """K orderings with the published one; `max_orderings` does not apply (K is the budget)."""

    k: int

    kind = DesignKind.SAMPLE

    @property
    def name(self) -> str:
        return f"sample:{self.k}"

    def prompts(self, n_options: int, *, seed: int, item_id: str, max_orderings: int) -> list[Ordering]:
        return orderings_for(n_options, max_orderings=self.k, seed=seed, item_id=item_id)


@dataclass(frozen=True)
class Cyclic(Design):
    kind = DesignKind.CYCLIC

    @property
    def name(self) -> str:
        return "cyclic"

    def prompts(self, n_options: int, *, seed: int, item_id: str, max_orderings: int) -> list[Ordering]:
        return [tuple((j + k) % n_options for j in range(n_options)) for k in range(n_options)]


@dataclass(frozen=True)
class PaperR(Design):
    kind = DesignKind.PAPER_R

    @property
    def name(self) -> str:
        return "paper-r"

    def prompts(self, n_options: int, *, seed: int, item_id: str, max_orderings: int) -> list[Ordering]:
        if n_options != 4:
            raise UsageError(
                f"item {item_id} has {n_options} options; --orderings paper-r is defined for 4 only"
                " (use all, sample:K, cyclic or pairs)"
            )
        return list(PAPER_R)


def pair_prompts(n_options: int) -> list[Ordering]:
    """The n(n-1) ordered pairs (a, b), rendered "A: option a, B: option b"; (0, 1) first."""
    return list(itertools.permutations(range(n_options), 2))


def pair_sums(sigmas: Sequence[Ordering], pair_scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Derived scores of full orderings: for each sigma, the sum over unordered pairs {a, b} of the
    score of the pair prompt that shows a and b in sigma's relative order.

    `pair_scores[..., q]` is the score of `pair_prompts(n)[q]` (leading axes: items, for simulations);
    returns `[..., len(sigmas)]`. Every sum adds its terms in the same pair order, so orderings that
    pick equal values get bit-identical sums (ties stay ties)."""
    n = len(sigmas[0])
    index = {p: q for q, p in enumerate(pair_prompts(n))}
    pairs = list(itertools.combinations(range(n), 2))
    forward = pair_scores[..., [index[(a, b)] for a, b in pairs]]
    backward = pair_scores[..., [index[(b, a)] for a, b in pairs]]
    position = np.argsort(np.asarray(sigmas), axis=1)  # position[k, a]: where sigma_k shows option a
    agrees = position[:, [a for a, _ in pairs]] < position[:, [b for _, b in pairs]]
    chosen = np.where(agrees, forward[..., None, :], backward[..., None, :])
    result: np.ndarray[Any, Any] = chosen.sum(axis=-1)
    return result


@dataclass(frozen=True)
class Pairs(Design):
    """Permutation-Q's prompts (two options each), judged as a ranking of full orderings.

    Each full ordering sigma (all n! when n! <= max_orderings, else `orderings_for`'s seeded sample
    with the published order first) gets a derived score: the sum, over the n(n-1)/2 unordered option
    pairs, of the pair prompt's score in the orientation sigma puts them (`pair_sums`). The published
    order's rank among these K sums gives p = rank / K, and `best_ordering` is the full order the
    pair preferences support best.

    Why p stays exact: a pair prompt's score depends only on the two option texts it shows and their
    order. If the published order is unrelated to the model, the derived score of sigma is a fixed
    function of the arrangement sigma shows, exactly as a full prompt's score is, so the argument for
    `all` and `sample:K` applies unchanged. Equivalently: if the pair scores' joint distribution does
    not change when the options are relabelled, every sigma is equally likely to hold any rank (ties
    broken at random), so the published order's rank is uniform on 1..K.

    In report.json, `orderings` are these sigmas and `scores` the derived sums, not scored prompts; the
    z-based flag thresholds (verdicts.py) assume independent scores, which sums sharing pairs are not.
    """

    kind = DesignKind.PAIRS

    @property
    def name(self) -> str:
        return "pairs"

    def prompts(self, n_options: int, *, seed: int, item_id: str, max_orderings: int) -> list[Ordering]:
        return pair_prompts(n_options)

    def judge(
        self,
        item_id: str,
        subject: str,
        prompt_orderings: Sequence[Ordering],
        spans: Sequence[SpanScore],
        *,
        seed: int,
        min_k: float = float("nan"),
        max_orderings: int = DEFAULT_MAX_ORDERINGS,
    ) -> ItemStats:
        n = _options_from_pairs(prompt_orderings, len(spans))
        if len({s.first_token for s in spans}) != 1:
            raise AlignmentError(
                f"the scored span starts after a different number of tokens across pair prompts"
                f" {sorted({s.first_token for s in spans})}: scores are not comparable"
            )
        by_pair = dict(zip(prompt_orderings, spans, strict=True))
        canonical = [by_pair[p] for p in pair_prompts(n)]
        sigmas = orderings_for(n, max_orderings=max_orderings, seed=seed, item_id=item_id)
        sums = pair_sums(sigmas, np.array([s.score for s in canonical]))
        tokens = pair_sums(sigmas, np.array([s.n_tokens for s in canonical]))
        first = spans[0].first_token
        derived = [SpanScore(float(v), first, int(t)) for v, t in zip(sums, tokens, strict=True)]
        return item_stats(item_id, subject, sigmas, derived, seed=seed, min_k=min_k)


def _options_from_pairs(prompt_orderings: Sequence[Ordering], n_spans: int) -> int:
    n = max((max(p) for p in prompt_orderings), default=0) + 1
    if n_spans != len(prompt_orderings) or sorted(prompt_orderings) != pair_prompts(n):
        raise ValueError(f"pairs: expected the {n * (n - 1)} ordered pairs of {n} options, one span each")
    return n


def parse_design(spec: str) -> Design:
    """`all`, `sample:K`, `K`, `cyclic`, `paper-r` or `pairs` (K >= 2); anything else is a UsageError."""
    text = spec.strip()
    fixed: dict[str, Design] = {d.kind.value: d for d in (AllOrderings(), Cyclic(), PaperR(), Pairs())}
    if text in fixed:
        return fixed[text]
    number = text.removeprefix(f"{DesignKind.SAMPLE.value}:")
    if number.isascii() and number.isdigit():
        if int(number) < 2:
            raise UsageError(f"--orderings {spec}: K must be at least 2 (the published order and one other)")
        return Sample(int(number))
    raise UsageError(f"unknown --orderings {spec!r}; choose one of {CHOICES}")
