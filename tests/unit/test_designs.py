from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.analysis.detector import SpanScore, item_stats
from auditor.errors import AlignmentError, UsageError
from auditor.input.items import Item
from auditor.prompts.designs import (
    PAPER_R,
    AllOrderings,
    Cyclic,
    Design,
    Pairs,
    PaperR,
    Sample,
    pair_prompts,
    pair_sums,
    parse_design,
)
from auditor.prompts.orderings import PAPER, Ordering, orderings_for

# Permutation-R as listed in get_outlier.py (selected_perm indices into itertools.permutations of 4),
# github.com/nailashfrni/mcq-leakage-detection-code at cd5649b684a0b5c0575f41f479d6ec294b15bdf6.
PAPER_SET = [
    (0, 1, 2, 3), (0, 1, 3, 2), (0, 2, 1, 3), (1, 0, 2, 3), (1, 2, 3, 0), (1, 3, 0, 2),
    (2, 0, 1, 3), (2, 0, 3, 1), (3, 0, 1, 2), (3, 0, 2, 1), (3, 1, 0, 2), (3, 2, 0, 1),
]  # fmt: skip
FULL_DESIGNS: list[Design] = [AllOrderings(), Sample(10), Cyclic()]


def shown(pi: Ordering, sigma: Ordering) -> Ordering:
    """The arrangement of contents a prompt shows: published arrangement pi, ordering sigma."""
    return tuple(pi[s] for s in sigma)


def spans_of(scores: Sequence[float]) -> list[SpanScore]:
    return [SpanScore(float(s), 3, 10) for s in scores]


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("all", AllOrderings()), ("sample:12", Sample(12)), ("12", Sample(12)), (" 2 ", Sample(2)),
     ("cyclic", Cyclic()), ("paper-r", PaperR()), ("pairs", Pairs())],
)  # fmt: skip
def test_parse_accepts_the_named_designs(spec: str, expected: Design) -> None:
    design = parse_design(spec)
    assert design == expected
    assert parse_design(design.name) == design


@pytest.mark.parametrize("spec", ["", "sample", "sample:", "sample:x", "random", "-3", "12.5", "sample:K", "ALL"])
def test_parse_rejects_anything_else_in_one_line(spec: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_design(spec)
    message = str(err.value)
    assert "\n" not in message
    assert all(name in message for name in ("all", "sample:K", "cyclic", "paper-r", "pairs"))


@pytest.mark.parametrize("spec", ["0", "1", "sample:1", "sample:0"])
def test_parse_requires_k_at_least_two(spec: str) -> None:
    with pytest.raises(UsageError, match="at least 2"):
        parse_design(spec)


# --- prompts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("design", "n", "count"),
    [(AllOrderings(), 4, 24), (AllOrderings(), 6, 120), (Sample(10), 4, 10), (Sample(30), 4, 24),
     (Sample(7), 2, 2), (Cyclic(), 4, 4), (Cyclic(), 7, 7), (PaperR(), 4, 12), (Pairs(), 4, 12),
     (Pairs(), 5, 20), (Pairs(), 2, 2)],
)  # fmt: skip
def test_prompt_counts_published_first_distinct(design: Design, n: int, count: int) -> None:
    prompts = design.prompts(n, seed=3, item_id="q:1", max_orderings=120)
    assert len(prompts) == count == len(set(prompts))
    width = 2 if isinstance(design, Pairs) else n
    assert prompts[0] == tuple(range(width))
    assert all(len(p) == width and len(set(p)) == width and set(p) <= set(range(n)) for p in prompts)


def test_all_is_todays_orderings_for() -> None:
    for n, cap in [(4, 120), (5, 24), (7, 120)]:
        got = AllOrderings().prompts(n, seed=5, item_id="x", max_orderings=cap)
        assert got == orderings_for(n, max_orderings=cap, seed=5, item_id="x")


def test_sample_is_seeded_per_item_and_independent_of_other_items() -> None:
    design = Sample(10)
    first = design.prompts(5, seed=1, item_id="a", max_orderings=120)
    for other in ("b", "c", "d"):
        design.prompts(5, seed=1, item_id=other, max_orderings=120)
    assert design.prompts(5, seed=1, item_id="a", max_orderings=120) == first
    assert design.prompts(5, seed=2, item_id="a", max_orderings=120) != first
    assert design.prompts(5, seed=1, item_id="b", max_orderings=120) != first
    assert design.prompts(5, seed=1, item_id="a", max_orderings=3) == first  # K, not --max-orderings


@settings(max_examples=150, deadline=None)
@given(n=st.integers(2, 7), k=st.integers(2, 300), seed=st.integers(0, 2**31), item_id=st.text(max_size=12))
def test_sample_property(n: int, k: int, seed: int, item_id: str) -> None:
    prompts = Sample(k).prompts(n, seed=seed, item_id=item_id, max_orderings=2)
    assert len(prompts) == min(k, math.factorial(n)) == len(set(prompts))
    assert prompts[0] == tuple(range(n))
    assert all(sorted(p) == list(range(n)) for p in prompts)
    assert prompts == Sample(k).prompts(n, seed=seed, item_id=item_id, max_orderings=120)
    if k >= math.factorial(n):
        assert set(prompts) == set(itertools.permutations(range(n)))


def test_paper_r_is_the_papers_set_and_four_options_only() -> None:
    assert PaperR().prompts(4, seed=9, item_id="x", max_orderings=2) == PAPER_SET == list(PAPER_R)
    with pytest.raises(UsageError, match=r"item mmlu:7 has 5 options.*pairs") as err:
        PaperR().prompts(5, seed=0, item_id="mmlu:7", max_orderings=120)
    assert "\n" not in str(err.value)


def test_cyclic_is_a_subgroup_and_paper_r_is_not() -> None:
    def closed(group: Sequence[Ordering]) -> bool:
        return all(shown(a, b) in set(group) for a in group for b in group)

    def odd(p: Ordering) -> bool:
        return sum(p[i] > p[j] for i, j in itertools.combinations(range(len(p)), 2)) % 2 == 1

    for n in (3, 4, 5, 6):
        assert closed(Cyclic().prompts(n, seed=0, item_id="", max_orderings=2))
    assert not closed(PAPER_SET)
    assert sum(odd(p) for p in PAPER_SET) == 8  # so not A_4, the only subgroup of order 12


def test_template_renders_a_pair_prompt() -> None:
    item = Item("x:0", "What is 2+2?", ("3", "4", "5", "6"), 1, "math", "x.csv", 0)
    r = PAPER.render(item, (2, 0))
    assert r.text == "\nWhat is 2+2?:\nA:5\nB:3\n"
    assert r.text[r.span_start : r.span_end] == "A:5\nB:3\n"


# --- the null: published arrangement random, model preferences fixed ------------------------------


def top_count(design: Design, n: int, preference: Callable[[Ordering], float]) -> int:
    """Over every published arrangement pi, how often the published order is ranked first."""
    prompts = design.prompts(n, seed=0, item_id="q", max_orderings=120)
    wins = 0
    for pi in itertools.permutations(range(n)):
        spans = spans_of([preference(shown(pi, p)) for p in prompts])
        wins += design.judge("q", "s", prompts, spans, seed=0).rank == 1
    return wins


@pytest.mark.parametrize(("design", "n"), [(Cyclic(), 3), (Cyclic(), 4), (Cyclic(), 5), (AllOrderings(), 4)])
def test_group_designs_are_exact_for_any_fixed_preference(design: Design, n: int) -> None:
    k = len(design.prompts(n, seed=0, item_id="q", max_orderings=120))
    rng = np.random.default_rng(0)
    for _ in range(3):
        values = dict(zip(itertools.permutations(range(n)), rng.normal(size=math.factorial(n)), strict=True))
        assert top_count(design, n, values.__getitem__) == math.factorial(n) // k


# A model preferring these arrangements (best first, every other one below them) puts the published
# order on top for 6 of the 24 published arrangements under paper-r: 1/4, not 1/12.
ADVERSARY = [(0, 2, 3, 1), (1, 2, 0, 3), (1, 3, 2, 0), (0, 1, 2, 3), (0, 3, 1, 2), (1, 0, 3, 2)]


def adversary(arrangement: Ordering) -> float:
    if arrangement in ADVERSARY:
        return 100.0 - ADVERSARY.index(arrangement)
    return -float(list(itertools.permutations(range(4))).index(arrangement))


def test_paper_r_is_not_exact_for_a_fixed_preference() -> None:
    assert top_count(PaperR(), 4, adversary) == 6
    assert top_count(Cyclic(), 4, adversary) == 6  # 24 / 4: exact
    assert top_count(AllOrderings(), 4, adversary) == 1


def test_sample_is_exact_on_average_for_the_same_preference() -> None:
    rng = np.random.default_rng(11)
    items, k = 2400, 12
    wins = 0
    for i in range(items):
        pi = tuple(int(x) for x in rng.permutation(4))
        values = [adversary(shown(pi, p)) for p in Sample(k).prompts(4, seed=0, item_id=f"q{i}", max_orderings=2)]
        wins += values[0] > max(values[1:])
    sd = math.sqrt(items * (1 / k) * (1 - 1 / k))
    assert abs(wins - items / k) < 4 * sd  # paper-r would give 600


# --- pairs -----------------------------------------------------------------------------------------


def pair_spans(scores: dict[Ordering, float], prompts: Sequence[Ordering]) -> list[SpanScore]:
    return spans_of([scores[p] for p in prompts])


@pytest.mark.parametrize("n", [3, 4, 5])
def test_pairs_is_exact_for_any_fixed_pair_preference(n: int) -> None:
    prompts = Pairs().prompts(n, seed=0, item_id="q", max_orderings=120)
    rng = np.random.default_rng(n)
    for _ in range(3):
        g = rng.normal(size=(n, n))  # g[x, y]: score of a pair prompt showing contents x then y
        wins = 0
        for pi in itertools.permutations(range(n)):
            scores = {p: float(g[pi[p[0]], pi[p[1]]]) for p in prompts}
            wins += Pairs().judge("q", "s", prompts, pair_spans(scores, prompts), seed=0).rank == 1
        assert wins == 1  # 1 of n! published arrangements: p = 1/n!


def test_pairs_iid_null_top1_rate() -> None:
    rng = np.random.default_rng(2024)
    items, sigmas = 20_000, orderings_for(4, max_orderings=120, seed=0, item_id="")
    derived = pair_sums(sigmas, rng.normal(size=(items, 12)))
    wins = int((derived[:, 0] > derived[:, 1:].max(axis=1)).sum())
    k = len(sigmas)
    assert abs(wins - items / k) < 4 * math.sqrt(items * (1 / k) * (1 - 1 / k))


def test_pairs_sampled_sigmas_iid_null_top1_rate() -> None:
    rng = np.random.default_rng(7)
    prompts, wins, items = pair_prompts(5), 0, 1200
    for i in range(items):
        scores = dict(zip(prompts, rng.normal(size=20), strict=True))
        v = Pairs().judge(f"q{i}", "s", prompts, pair_spans(scores, prompts), seed=0, max_orderings=24)
        assert v.n_orderings == 24 and v.orderings[0] == (0, 1, 2, 3, 4)
        wins += v.rank == 1
    assert abs(wins - items / 24) < 4 * math.sqrt(items * (1 / 24) * (23 / 24))


def test_pairs_derived_scores_match_definition() -> None:
    rng = np.random.default_rng(3)
    prompts = pair_prompts(4)
    scores = dict(zip(prompts, rng.normal(size=12), strict=True))
    v = Pairs().judge("q", "s", list(reversed(prompts)), pair_spans(scores, prompts[::-1]), seed=0, min_k=-2.0)
    for sigma, score in zip(v.orderings, v.scores, strict=True):
        where = {o: j for j, o in enumerate(sigma)}
        expected = sum(
            scores[(a, b) if where[a] < where[b] else (b, a)] for a, b in itertools.combinations(range(4), 2)
        )
        assert score == pytest.approx(expected)
    assert v.orderings == orderings_for(4, max_orderings=120, seed=0, item_id="q") and v.min_k == -2.0


def test_pairs_planted_preference_gives_rank_one_and_recovers_a_shuffled_order() -> None:
    rng = np.random.default_rng(5)
    prompts = pair_prompts(5)
    noise = dict(zip(prompts, rng.normal(size=20), strict=True))
    for trained in [(0, 1, 2, 3, 4), (3, 0, 4, 2, 1)]:
        where = {o: j for j, o in enumerate(trained)}
        scores: dict[Ordering, float] = {p: float(s) + 50.0 * (where[p[0]] < where[p[1]]) for p, s in noise.items()}
        v = Pairs().judge("q", "s", prompts, pair_spans(scores, prompts), seed=0)
        assert v.best_ordering == trained and v.n_orderings == 120
        published = trained == (0, 1, 2, 3, 4)
        assert (v.rank == 1) == published and (v.p_value == 1 / 120) == published


def test_pairs_rejects_misaligned_or_incomplete_input() -> None:
    prompts = pair_prompts(3)
    spans = [SpanScore(-1.0, 3 + (i == 2), 5) for i in range(6)]
    with pytest.raises(AlignmentError):
        Pairs().judge("q", "s", prompts, spans, seed=0)
    with pytest.raises(ValueError, match="ordered pairs"):
        Pairs().judge("q", "s", prompts[:5], spans_of([0.0] * 5), seed=0)


def test_full_designs_judge_like_judge_item() -> None:
    scores = spans_of([-3.0, -1.0, -3.0, -5.0])
    prompts = Cyclic().prompts(4, seed=0, item_id="q", max_orderings=120)
    expected = item_stats("q", "s", prompts, scores, seed=4, min_k=-1.0)
    for design in [*FULL_DESIGNS, PaperR()]:
        assert design.judge("q", "s", prompts, scores, seed=4, min_k=-1.0) == expected
