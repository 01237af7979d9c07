"""The permutation verdict, the per-item p-values and the planning model (analysis: combined, itemtests, power)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from auditor.analysis.combined import ordering_stats, permutation_test
from auditor.analysis.detector import SpanScore, item_stats
from auditor.analysis.itemtests import p_gaussian_b, random_rank, reference_scores, standardised
from auditor.analysis.power import EFFECTS, items_needed, power
from auditor.cli.main import main
from auditor.prompts.orderings import orderings_for

PERMS = orderings_for(4, max_orderings=120, seed=0, item_id="x")


def test_permutation_p_values_are_valid_on_exchangeable_data() -> None:
    rng = np.random.default_rng(0)
    ps = np.array([permutation_test([rng.standard_t(3, size=24) for _ in range(60)], draws=999, seed=s).p_value
                   for s in range(300)])  # fmt: skip
    assert np.mean(ps <= 0.05) <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / 300)  # heavy tails: still valid
    assert np.mean(ps <= 0.2) == pytest.approx(0.2, abs=0.07)  # and not conservative to uselessness


def test_permutation_test_detects_a_lift_and_ignores_constant_items() -> None:
    rng = np.random.default_rng(1)
    lifted = [rng.normal(size=24) + np.r_[2.0, np.zeros(23)] for _ in range(50)]
    test = permutation_test(lifted)
    assert test.p_value < 1e-3 and test.z > 5
    assert permutation_test([np.zeros(24)] * 30).p_value == 1.0  # a model against itself: every deviation 0


def test_ordering_stats_rank_and_margin() -> None:
    t = ordering_stats([3.0, 1.0, 1.0, 0.0])
    assert t[0] == max(t) and t[1] == t[2]  # ties share the best rank
    assert ordering_stats([1.0, 0.0], "top1").tolist() == [1.0, 0.0]


def test_random_rank_breaks_ties_uniformly() -> None:
    ranks = [random_rank(np.zeros(4), 0, f"k{i}") for i in range(4000)]
    assert sorted(set(ranks)) == [1, 2, 3, 4] and abs(np.mean(ranks) - 2.5) < 0.1
    assert random_rank(np.array([1.0, 2.0, 0.0]), 0, "x") == 2


def test_reference_scores_align_by_ordering() -> None:
    scores = [float(i) for i in range(24)]
    v = item_stats("q", "s", PERMS, [SpanScore(s, 3, 5) for s in scores])
    shuffled = list(reversed(PERMS))
    r = item_stats("q", "s", shuffled, [SpanScore(s, 3, 5) for s in reversed(scores)])
    ref = reference_scores(v, [{"q": r}])
    assert ref is not None and np.allclose(ref, standardised(scores))
    assert reference_scores(v, [{}]) is None


def test_gaussian_b_p_value() -> None:
    assert p_gaussian_b(float("-inf"), 24) == 1.0
    assert p_gaussian_b(10.0, 24) < 1e-4 < p_gaussian_b(4.0, 24) < 0.05 < p_gaussian_b(3.0, 24)


def test_planning_model() -> None:
    e = EFFECTS["paired"]
    assert power(400, 0.1, e) > power(200, 0.1, e) > power(100, 0.1, e)
    n = items_needed(0.1, 0.8, e)
    assert n is not None and power(n, 0.1, e) >= 0.8 > power(n - 1, 0.1, e)
    assert items_needed(0.3, 0.8, e) < n  # type: ignore[operator]


def test_plan_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Question {i}?", "choices": ["a", "b", "c", "d"],
                                      "answer": 0, "subject": "s"}) + "\n" for i in range(30)))  # fmt: skip
    assert main(["plan", "--dataset", str(ds), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["items"] > 30 and not answer["enough_items"] and answer["prompts_per_item"] == 24
    assert main(["plan", "--dataset", str(ds), "--reference"]) == 0
    out = capsys.readouterr().out
    assert "more than the dataset holds" in out and "reference run" in out
    assert main(["plan", "--dataset", str(ds), "--power", "1.5"]) == 2
