"""Paper-exact decisions (Ni et al. 2024, reference implementation), kept for comparison, not the default.

- Scores: the reference template (`--template paper`) and its span: from the token AFTER the first option
  label to the end of the prompt (`span_score(..., skip_label=True)`).
- Scenario a: an item is leaked when the published order's score is the maximum; ties count as the maximum.
- Scenario b: an IsolationForest(n_estimators=100, contamination="auto", random_state=42) is fitted on the
  item's K scores (1-D); the item is leaked when the decision function at the highest score (the first
  one, as numpy's argmax picks) is below a threshold delta: -0.20, -0.17 or -0.15 in the reference code.

These rules have no calibrated error rate (see the README): their false-positive rates on clean items are
measured, not controlled. Scenario b needs scikit-learn: `pip install 'auditor[paper]'`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from auditor.errors import UsageError

PAPER_DELTAS = (-0.20, -0.17, -0.15)


def paper_a(scores: Sequence[float]) -> bool:
    """Published order (index 0) is the maximum, ties included."""
    return all(s <= scores[0] for s in scores[1:])


def isolation_scores(scores: Sequence[float]) -> float:
    """The IsolationForest decision value at the highest score (lower = more of an outlier)."""
    try:
        from sklearn.ensemble import IsolationForest
    except ImportError:
        raise UsageError("--method paper-b needs scikit-learn: pip install 'auditor[paper]'") from None
    x = np.asarray(scores, dtype=float).reshape(-1, 1)
    forest = IsolationForest(n_estimators=100, contamination="auto", random_state=42)
    forest.fit(x)
    return float(forest.decision_function(x)[int(np.argmax(scores))])


def paper_b(decision_at_max: float, delta: float) -> bool:
    return decision_at_max < delta
