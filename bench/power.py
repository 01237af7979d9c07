"""Power of the dataset verdict, from the canary's real scores: the planning model's effect sizes, the
power curve, and (for information, after the pre-registered choice) the other candidate statistics.

    .venv/bin/python -m bench.power --fit --seed 1 --subset e2e      # effect sizes for auditor/analysis/power.py
    .venv/bin/python -m bench.power --curve --seed 1 --subset e2e    # power curve, resampled from the canary
    .venv/bin/python -m bench.power --choose --seed 1 --subset e2e   # candidate statistics compared

Each simulated dataset draws n items with replacement: a share f from the canary's published-order leaks,
the rest from its clean items, each with its real scores on the fine-tuned model (epoch 3) and on the base
model (the reference). The verdict is the permutation test of auditor/analysis/combined.py (2,000 draws
here; the report uses 20,000), at the dataset alpha 1e-3, alone and paired with the base model. Shared
option lists are not deduplicated here (the resampled items are treated as independent). Writes
bench/results/power.json (each mode updates its own key).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from auditor.analysis.combined import KINDS, ordering_stats
from auditor.analysis.itemtests import deviation, reference_scores
from auditor.analysis.power import EFFECTS, power
from auditor.analysis.verdicts import DATASET_ALPHA
from bench.canary import ground_truth
from bench.rules import verdicts_of

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "runs"
DRAWS = 2_000


def pools(seed: int, subset: str, kind: str) -> dict[str, dict[str, np.ndarray[Any, Any]]]:
    """{mode: {status: items x K matrix of t(j)}} for mode alone / paired."""
    summary = json.loads((RESULTS / f"detection-{subset}-seed{seed}.json").read_text())
    truth = ground_truth(Path(summary["canary"]))
    runs = RUNS if seed == 0 else RUNS / f"seed{seed}"
    audited = verdicts_of(json.loads((runs / subset / "epoch-3" / "report.json").read_text()))
    base = {v.id: v for v in verdicts_of(json.loads((runs / subset / "base" / "report.json").read_text()))}
    out: dict[str, dict[str, list[np.ndarray[Any, Any]]]] = {"alone": {}, "paired": {}}
    for v in audited:
        status = truth[v.id]["status"]
        ref = reference_scores(v, [base])
        out["alone"].setdefault(status, []).append(ordering_stats(v.scores, kind))
        if ref is not None:
            out["paired"].setdefault(status, []).append(ordering_stats(deviation(v, ref), kind))
    return {m: {s: np.asarray(rows) for s, rows in by.items()} for m, by in out.items()}


def detect(t: np.ndarray[Any, Any], rng: np.random.Generator, draws: int = DRAWS) -> bool:
    """The permutation test on an items x K matrix of t(j), published ordering in column 0."""
    observed = t[:, 0].sum()
    idx = rng.integers(0, t.shape[1], size=(draws, t.shape[0]))
    null = np.take_along_axis(t.T, idx, axis=0).sum(axis=1)
    p = (1 + np.sum(null >= observed - 1e-9 * max(1.0, abs(observed)))) / (draws + 1)
    return bool(p < DATASET_ALPHA)


def rate(pool: dict[str, np.ndarray[Any, Any]], n: int, f: float, reps: int, rng: np.random.Generator) -> float:
    leaked, clean = pool["leaked-published-order"], pool["clean"]
    hits = 0
    for _ in range(reps):
        k = rng.binomial(n, f)
        rows = np.concatenate([leaked[rng.integers(0, len(leaked), k)], clean[rng.integers(0, len(clean), n - k)]])
        hits += detect(rows, rng)
    return hits / reps


def choose(seed: int, subset: str, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"seed": seed, "subset": subset, "n": 200, "fraction": 0.1, "reps": reps, "power": {}}
    for kind in KINDS:
        p = pools(seed, subset, kind)
        rng = np.random.default_rng(1)
        out["power"][kind] = {m: rate(p[m], 200, 0.1, reps, rng) for m in ("alone", "paired")}
        print(f"{kind:<8} power at n=200, f=0.1: {out['power'][kind]}")
    return out


def fit(seed: int, subset: str) -> dict[str, Any]:
    out: dict[str, Any] = {"seed": seed, "subset": subset}
    for mode, pool in pools(seed, subset, "rank+z").items():
        c = {s: m[:, 0] - m.mean(axis=1) for s, m in pool.items()}
        v_null = float(np.mean(np.concatenate([m.var(axis=1) for m in pool.values()])))
        out[mode] = {"mu_leaked": float(c["leaked-published-order"].mean()),
                     "var_leaked": float(c["leaked-published-order"].var(ddof=1)), "var_null": v_null,
                     "mu_clean": float(c["clean"].mean()), "var_clean": float(c["clean"].var(ddof=1)),
                     "n_leaked": len(c["leaked-published-order"]), "n_clean": len(c["clean"])}  # fmt: skip
        print(mode, out[mode])
    return out


def curve(seed: int, subset: str, reps: int) -> dict[str, Any]:
    ns, fs = (50, 100, 200, 400, 800), (0.0, 0.05, 0.1, 0.2, 0.3)
    out: dict[str, Any] = {"seed": seed, "subset": subset, "reps": reps, "alpha": DATASET_ALPHA, "modes": {}}
    for mode, pool in pools(seed, subset, "rank+z").items():
        rng = np.random.default_rng(2)
        table = {str(f): {str(n): rate(pool, n, f, reps, rng) for n in ns} for f in fs}
        model = {str(f): {str(n): round(power(n, f, EFFECTS[mode]), 3) for n in ns} for f in fs if f > 0}
        out["modes"][mode] = {"resampled": table, "planning_model": model}
        print(f"{mode}: detection rate (rows: leaked fraction; columns: items {ns})")
        for f in fs:
            sim = " ".join(f"{table[str(f)][str(n)]:5.2f}" for n in ns)
            plan = " ".join(f"{model[str(f)][str(n)]:5.2f}" for n in ns) if f > 0 else ""
            print(f"  f={f:<4} resampled {sim}   planning model {plan}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subset", default="e2e")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--choose", action="store_true")
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--curve", action="store_true")
    args = ap.parse_args()
    path = RESULTS / "power.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if args.choose:
        data["choice"] = choose(args.seed, args.subset, args.reps)
    if args.fit:
        data["fit"] = fit(args.seed, args.subset)
    if args.curve:
        data["curve"] = curve(args.seed, args.subset, args.reps)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
