"""Paper-exact mode against a straight transcription of the reference algorithm (get_outlier.py)."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.analysis.paper import PAPER_DELTAS, isolation_scores, paper_a, paper_b

sklearn = pytest.importorskip("sklearn")


def reference_scenario_a(data: list[float]) -> bool:
    # transcription: max = data[0]; isMax = True; any later value strictly greater clears it
    first = data[0]
    is_max = True
    for temp in data[1:]:
        if temp > first:
            is_max = False
            break
    return is_max


def reference_scenario_b(data: list[float], thresholds: list[float]) -> list[bool]:
    from sklearn.ensemble import IsolationForest

    x = np.array(data).reshape(-1, 1)
    clf = IsolationForest(n_estimators=100, contamination="auto", random_state=42)
    clf.fit(x)
    scores = clf.decision_function(x)
    max_value_score = scores[np.argmax(data)]
    return [bool(max_value_score < t) for t in thresholds]


def score_sets(n: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    sets = []
    for i in range(n):
        s = list(rng.normal(-60, 3, size=24))
        if i % 3 == 0:
            s[int(rng.integers(0, 24))] += float(rng.uniform(2, 15))  # a planted outlier
        if i % 7 == 0:
            s[5] = s[0] = max(s)  # a tie at the top, published included
        sets.append([float(v) for v in s])
    return sets


def test_scenario_a_bit_for_bit() -> None:
    sets = score_sets(300, 1)
    ours = [paper_a(s) for s in sets]
    assert ours == [reference_scenario_a(s) for s in sets]
    assert 0 < sum(ours) < len(ours)


def test_scenario_b_bit_for_bit() -> None:
    sets = score_sets(24, 2)  # an IsolationForest fit costs ~0.1 s
    for s in sets:
        decision = isolation_scores(s)
        assert [paper_b(decision, d) for d in PAPER_DELTAS] == reference_scenario_b(s, list(PAPER_DELTAS))
    flags = [paper_b(isolation_scores(s), -0.2) for s in sets]
    assert 0 < sum(flags) < len(flags)
