"""Familiarity: does the item's Min-K% (its text's least likely tokens) tell natural order from leakage?

    .venv/bin/python -m bench.familiarity --canary-seed 0 --subset full            # choose (seed 0)
    .venv/bin/python -m bench.familiarity --canary-seed 1 --subset full [--except-subset e2e]   # read (seed 1)

Reads the canary audits bench.detection leaves in bench/results/runs (epoch 3 and its base model). Rank 1 of
the published order has probability 1/K under exchangeable orderings, but a clean model's natural order puts
the published order first more often (6% of the held-out canary's clean items; its base model 9%). Natural
order is a property of the option texts; leakage also makes the item's own text likely. So each item gets a
second p-value, for familiarity: its Min-K% (or, with a reference model, its Min-K% gain over the reference)
against the same statistic on the dataset's "no-preference" items, those whose published order ranks in the
lower half (rank > K/2), p_f = (1 + #{reference >= x}) / (n + 1). Null: the rank is uniform and independent of
the item's familiarity, so the no-preference items are a random half whose statistic is exchangeable with the
item's. Two ways to combine: a gate (rank 1 and p_f <= q: size q / K) and the product t = (rank / K) * p_f,
whose exact null distribution is P(T <= t) = (1 / K) * sum_r min(1, K t / r) (the rank discrete uniform, p_f
uniform), flagged at <= alpha_a = 1/24 (the default's scenario-a share of 0.05).

The candidates below were written down (and committed, fe6dfa6) before the seed-0 canary's full run was looked
at; the rule is chosen on seed 0's full run by `choose`, then read once on the held-out seed 1. The first chooser
(highest recall at a clean FPR <= 5% without a reference) picked N1 on seed 0's epoch-3 run: 0.688 at 0.048 (9 of
186 clean items, one item under the cap; Wilson upper bound 0.089), where N2 has 0.674 at 0.016 (upper 0.046).
It was then amended, on seed 0's figures only and before seed 1 was read: the chosen rule must keep its clean
FPR's 95% upper bound at or under 5% (and, with a reference, its point FPR at or under a third of paper-a's);
among those, the highest recall, ties to the smaller FPR, then to the earlier candidate. Writes
bench/results/familiarity-<subset>[-except-<s>]-seed<S>.json.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auditor.analysis.familiarity import pooled_p, product_p
from auditor.analysis.itemtests import ALPHA_B_SHARE
from auditor.analysis.verdicts import DEFAULT_ALPHA
from bench.canary import ground_truth, subset
from bench.detection import SUBSETS
from bench.rules import metrics

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "runs"
ALPHA_A = DEFAULT_ALPHA * (1 - ALPHA_B_SHARE)  # the default's scenario-a share: 1/24
LEAK, CLEAN = "leaked-published-order", "clean"


@dataclass(frozen=True)
class Item:
    id: str
    k: int
    rank: int  # rank_random of the published order in the audited scores (1 = first)
    rank_paired: int  # ... in the deviation in nats from the base (0: no reference)
    min_k: float
    shift: float  # Min-K% gain over the base (nan: no reference)


def aligned(a: dict[str, Any], b: dict[str, Any]) -> np.ndarray[Any, Any]:
    """b's scores in a's ordering order."""
    pos = {tuple(o): i for i, o in enumerate(b["orderings"])}
    return np.asarray(b["scores"], dtype=float)[[pos[tuple(o)] for o in a["orderings"]]]


def items_of(audited: dict[str, Any], base: dict[str, Any] | None) -> list[Item]:
    """Items the audited run scored in every ordering (and the base too, when given)."""
    refs = {d["id"]: d for d in base["items"]} if base else {}
    out = []
    for d in audited["items"]:
        s, r = d.get("scores"), refs.get(d["id"])
        if not s or len(s) != d["n_orderings"] or d.get("min_k") is None:
            continue
        if base is not None and (r is None or not r.get("scores") or len(r["scores"]) != len(s)):
            continue
        rank_paired, shift = 0, float("nan")
        if r is not None:
            dev = np.asarray(s, dtype=float) - aligned(d, r)
            rank_paired = 1 + int(np.sum(dev[1:] > dev[0]))  # ties: none in float scores of real runs
            shift = float(d["min_k"]) - float(r["min_k"])
        out.append(Item(d["id"], len(s), int(d["rank_random"]), rank_paired, float(d["min_k"]), shift))
    return out


def familiarity_p(items: list[Item], value: Callable[[Item], float]) -> dict[str, float]:
    """p_f of each item against the items whose published order ranks in the lower half (the package's
    pooled_p; the canaries' values are all finite and their no-preference sets never empty)."""
    return pooled_p({v.id: value(v) for v in items}, [value(v) for v in items if 2 * v.rank > v.k])


def candidates(items: list[Item], with_base: bool) -> dict[str, dict[str, bool]]:
    """The pre-registered rules (name -> item id -> flagged)."""
    p_mk = familiarity_p(items, lambda v: v.min_k)
    rules: dict[str, Callable[[Item], bool]] = {
        "paper-a: rank 1": lambda v: v.rank == 1,
        "N1 rank 1 & p_mk <= 0.75": lambda v: v.rank == 1 and p_mk[v.id] <= 0.75,
        "N2 rank 1 & p_mk <= 0.5": lambda v: v.rank == 1 and p_mk[v.id] <= 0.5,
        "N3 rank 1 & p_mk <= 0.25": lambda v: v.rank == 1 and p_mk[v.id] <= 0.25,
        "N4 product(rank, p_mk) <= 1/24": lambda v: product_p(v.rank, v.k, p_mk[v.id]) <= ALPHA_A * (1 + 1e-9),
    }
    if with_base:
        p_sh = familiarity_p(items, lambda v: v.shift)
        rules |= {
            "default paired: rank 1 & deviation rank 1": lambda v: v.rank == 1 and v.rank_paired == 1,
            "W1 product(rank, p_shift) <= 1/24": lambda v: product_p(v.rank, v.k, p_sh[v.id]) <= ALPHA_A * (1 + 1e-9),
            "W2 product(max(rank, deviation rank), p_shift) <= 1/24":
                lambda v: product_p(max(v.rank, v.rank_paired), v.k, p_sh[v.id]) <= ALPHA_A * (1 + 1e-9),
            "W3 product(deviation rank, p_shift) <= 1/24":
                lambda v: product_p(v.rank_paired, v.k, p_sh[v.id]) <= ALPHA_A * (1 + 1e-9),
            "W4 rank 1 & p_shift <= 0.5": lambda v: v.rank == 1 and p_sh[v.id] <= 0.5,
        }  # fmt: skip
    return {name: {v.id: f(v) for v in items} for name, f in rules.items()}


def scored(flags: dict[str, bool], truth: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pos = np.array([f for i, f in flags.items() if truth[i]["status"] == LEAK])
    neg = np.array([f for i, f in flags.items() if truth[i]["status"] == CLEAN])
    return metrics(pos, neg)


def choose(rows: dict[str, dict[str, Any]], names: list[str], fpr_cap: float = 1.0) -> str | None:
    """Highest recall among the rules whose clean FPR's Wilson 95% upper bound is <= 5% and whose point FPR is
    <= fpr_cap; ties to the smaller FPR, then to the earlier name."""
    ok = [(-rows[n]["recall"], rows[n]["fpr"], k, n) for k, n in enumerate(names)
          if rows[n]["fpr_ci"][1] <= 0.05 + 1e-12 and rows[n]["fpr"] <= fpr_cap + 1e-12]  # fmt: skip
    return min(ok)[3] if ok else None


def _ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m[key + "_ci"]
    return f"[{lo:.2f},{hi:.2f}]"


def canary_args(ap: argparse.ArgumentParser) -> None:
    """The options that say which canary audit to read (this module's and bench/lift.py's)."""
    ap.add_argument("--canary-seed", type=int, default=0)
    ap.add_argument("--subset", choices=tuple(SUBSETS), default="full")
    ap.add_argument("--except-subset", choices=tuple(SUBSETS), default=None)


def canary_reports(args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(ground truth, epoch 3's report, the base's report), both reports cut to the items asked for."""
    seed = args.canary_seed
    runs = (RUNS if seed == 0 else RUNS / f"seed{seed}") / args.subset
    det = json.loads((RESULTS / f"detection-{args.subset}-seed{seed}.json").read_text())
    truth = ground_truth(Path(det["canary"]))
    audited, base = (json.loads((runs / m / "report.json").read_text()) for m in ("epoch-3", "base"))
    keep = set(truth) - (set(subset(truth, SUBSETS[args.except_subset])) if args.except_subset else set())
    for r in (audited, base):
        r["items"] = [d for d in r["items"] if d["id"] in keep]
    return truth, audited, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    canary_args(ap)
    args = ap.parse_args()
    seed = args.canary_seed
    truth, audited, base = canary_reports(args)
    out: dict[str, Any] = {"canary_seed": seed, "subset": args.subset, "except": args.except_subset}
    both = items_of(audited, base)
    out["counts"] = {s: sum(truth[v.id]["status"] == s for v in both) for s in (LEAK, "leaked-shuffled", CLEAN)}
    rows = {n: scored(f, truth) for n, f in candidates(both, with_base=True).items()}
    # the base model audited alone: every item is clean for it (natural order and pretraining only)
    base_alone = items_of(base, None)
    base_rows = {n: float(np.mean(list(f.values()))) for n, f in candidates(base_alone, with_base=False).items()}
    out["rules"], out["base_alone_flagged"] = rows, base_rows
    names = list(rows)
    fpr_a = rows["paper-a: rank 1"]["fpr"]
    out["chosen_no_reference"] = choose(rows, [n for n in names if n.startswith("N")])
    out["chosen_with_reference"] = choose(rows, [n for n in names if n.startswith("W")], fpr_a / 3)
    print(f"canary seed {seed}, {args.subset}" + (f" except {args.except_subset}" if args.except_subset else ""),
          out["counts"])  # fmt: skip
    print(f"{'rule':58s} {'recall':>17s} {'clean FPR':>19s} {'base alone':>10s}")
    for n, m in rows.items():
        base_txt = f"{base_rows[n]:.3f}" if n in base_rows else "-"
        print(f"{n:58s} {m['recall']:.2f} {_ci(m, 'recall'):>12s} {m['fpr']:.3f} {_ci(m, 'fpr'):>13s} {base_txt:>10s}")
    print("chosen (by this run's figures):", out["chosen_no_reference"], "|", out["chosen_with_reference"])
    tag = args.subset + (f"-except-{args.except_subset}" if args.except_subset else "")
    (RESULTS / f"familiarity-{tag}-seed{seed}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
