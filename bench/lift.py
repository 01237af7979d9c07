"""Scenario b rules: does the lift of an item's best ordering, gated on familiarity, name shuffled leaks?

    .venv/bin/python -m bench.lift --canary-seed 0 --subset full                          # choose (seed 0)
    .venv/bin/python -m bench.lift --canary-seed 1 --subset full [--except-subset e2e]    # read (seed 1)

Reads the canary audits bench.detection leaves in bench/results/runs (epoch 3 and its base model). A shuffled
leak is counted as found when it is flagged under scenario b with its trained ordering named; a clean item
flagged under b is a false positive (issue 17's goal: >= 0.30 at <= 2.5% of clean items). The statistic and
its null are auditor/analysis/lift.py's: the lift T = max_j d_j - median_j d_j (d: the deviation in nats from
the base with a reference, the audited scores without), p_lift against the items whose familiarity p-value
is above 0.5, p_familiar against the no-preference items (auditor/analysis/familiarity.py).

Candidates, written after looking at seed 0's 374 items only (seed 1's full run not read for scenario b):
gate p_familiar <= q and p_lift <= alpha_b / q for q in 0.5, 0.25, 0.15, 0.10 (size alpha_b under the two
nulls), and the product p_familiar * p_lift with its exact null P(U1 U2 <= t) = t (1 - ln t) at alpha_b;
each with the base as reference (B*) and without (N*, d = the audited scores, familiarity = Min-K%). The
rule before (the package's Gaussian z test of the best ordering) is the baseline. Chooser (bench/familiarity.py's
`choose`, its point-FPR cap at 2.5%): the highest recall among the candidates whose clean FPR is <= 2.5% with a
Wilson 95% upper bound <= 5%; ties to the smaller FPR, then to the earlier candidate; adopted only when it
beats the baseline. Writes
bench/results/lift-<subset>[-except-<s>]-seed<S>.json.

Then (B6, N6), written after seeds 0 and 1 had both been read for scenario b, before the seed-2 canary was
read at all: the same gates as the defaults (0.25 with the base, 0.15 without) at a larger level for the lift
test, `itemtests.levels`: alpha / 4 with a reference (a's product test keeps 3/4 of alpha, continuous, so it
can give up a share), 5/12 of alpha without (a's rank-1-and-familiar test has that size, 1/48 at 0.05; b is
given as much). With them the package names b over a when the ordering b names begins with another option
than the published order. Seeds 0 and 1 were the data this was chosen on; the seed-2 canary is read once.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from auditor.analysis.familiarity import pooled_p
from auditor.analysis.itemtests import ALPHA_B_SHARE, levels
from auditor.analysis.lift import gated_p, lift, lift_p
from auditor.analysis.verdicts import DEFAULT_ALPHA, control_null, decide, exchangeable_null
from bench.detection import RESULTS
from bench.familiarity import aligned, canary_args, canary_reports, choose
from bench.rules import metrics, verdicts_of

ALPHA_B = DEFAULT_ALPHA * ALPHA_B_SHARE  # 1/120
SHUFFLED, CLEAN = "leaked-shuffled", "clean"
GATES = (0.5, 0.25, 0.15, 0.10)


@dataclass(frozen=True)
class Item:
    id: str
    rank: int  # rank_random of the published order in the audited scores
    k: int
    s: np.ndarray[Any, Any]  # audited scores
    r: np.ndarray[Any, Any] | None  # the base's scores in the same ordering order
    min_k: float
    min_k_ref: float


def items_of(audited: dict[str, Any], base: dict[str, Any] | None) -> tuple[list[Item], dict[str, list[list[int]]]]:
    refs = {d["id"]: d for d in base["items"]} if base else {}
    out, orderings = [], {}
    for d in audited["items"]:
        s, b = d.get("scores"), refs.get(d["id"])
        if not s or len(s) != d["n_orderings"] or d.get("min_k") is None:
            continue
        r = None
        if base is not None:
            if b is None or not b.get("scores") or len(b["scores"]) != len(s):
                continue
            r = aligned(d, b)
        ref_mk = float(b["min_k"]) if b is not None else math.nan
        scores = np.asarray(s, dtype=float)
        out.append(Item(d["id"], int(d["rank_random"]), len(s), scores, r, float(d["min_k"]), ref_mk))
        orderings[d["id"]] = d["orderings"]
    return out, orderings


def candidates(items: list[Item], with_base: bool, before: dict[str, int]) -> dict[str, dict[str, int]]:
    """Rule name -> item id -> the ordering index flagged under scenario b (-1: not flagged); `before`: the
    rule before's (`rule_before`)."""
    fam = {v.id: v.min_k - v.min_k_ref if with_base else v.min_k for v in items}
    p_f = pooled_p(fam, [fam[v.id] for v in items if 2 * v.rank > v.k])
    lifts = {v.id: lift(v.s - v.r if with_base and v.r is not None else v.s) for v in items}
    p_l = lift_p({i: t for i, (_, t) in lifts.items()}, dict(p_f))

    def gate(q: float, alpha_b: float = ALPHA_B) -> Callable[[Item], bool]:
        return lambda v: gated_p(p_f[v.id], p_l[v.id] or 1.0, q) <= alpha_b * (1 + 1e-9)

    def product(v: Item) -> bool:
        t = p_f[v.id] * (p_l[v.id] or 1.0)
        return t * (1 - math.log(t)) <= ALPHA_B * (1 + 1e-9)

    tag = "B" if with_base else "N"
    rules: dict[str, Callable[[Item], bool]] = {
        f"{tag}{n} p_f <= {q:g} & p_lift <= alpha_b/{q:g}": gate(q) for n, q in enumerate(GATES, 1)
    }
    rules[f"{tag}{len(GATES) + 1} product p_f * p_lift (exact) <= alpha_b"] = product
    q6 = 0.25 if with_base else 0.15  # the defaults' gates, at the lift test's level of itemtests.levels
    alpha6 = levels(DEFAULT_ALPHA, paired=with_base, familiar=True, lifted=True)[1]
    rules[f"{tag}{len(GATES) + 2} p_f <= {q6:g} & p_lift <= {alpha6:.4g}/{q6:g}"] = gate(q6, alpha6)
    out = {name: {v.id: (lifts[v.id][0] if lifts[v.id][0] != 0 and f(v) else -1) for v in items}
           for name, f in rules.items()}  # fmt: skip
    out[f"{tag}0 default before: Gaussian z" + (" (audited and deviation)" * with_base)] = {
        v.id: before[v.id] for v in items
    }
    return out


def rule_before(audited: dict[str, Any], base: dict[str, Any] | None, ids: set[str]) -> dict[str, int]:
    """The rule before: the package's z test (`decide` without the dataset's p-values), the ordering it names
    under b whether or not scenario a flags the item (as the candidates are scored), or -1."""

    def stats(report: dict[str, Any]) -> list[Any]:
        return verdicts_of({"items": [d for d in report["items"] if d["id"] in ids]})

    null = control_null([(stats(base), "base")]) if base else exchangeable_null()
    return {v.id: int(np.argmax(v.scores)) if decide(v, null).p_b <= ALPHA_B * (1 + 1e-9) else -1
            for v in stats(audited)}  # fmt: skip


def scored(
    named: dict[str, int], truth: dict[str, dict[str, Any]], orderings: dict[str, list[list[int]]]
) -> dict[str, Any]:
    def right(i: str) -> bool:
        return named[i] >= 0 and orderings[i][named[i]] == truth[i].get("order")

    shuffled = [i for i in named if truth[i]["status"] == SHUFFLED]
    clean = [i for i in named if truth[i]["status"] == CLEAN]
    m = metrics(np.array([right(i) for i in shuffled]), np.array([named[i] >= 0 for i in clean]))
    m["wrongly_named"] = sum(named[i] >= 0 and not right(i) for i in shuffled)
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    canary_args(ap)
    args = ap.parse_args()
    seed = args.canary_seed
    truth, audited, base = canary_reports(args)
    both, orderings = items_of(audited, base)
    counts = {s: sum(truth[v.id]["status"] == s for v in both) for s in (SHUFFLED, CLEAN)}
    out: dict[str, Any] = {"canary_seed": seed, "subset": args.subset, "except": args.except_subset, "counts": counts}
    ids = {v.id for v in both}
    before = {w: rule_before(audited, base if w else None, ids) for w in (False, True)}
    rows = {n: scored(f, truth, orderings) for w in (False, True) for n, f in candidates(both, w, before[w]).items()}
    base_alone, _ = items_of(base, None)
    alone = candidates(base_alone, False, rule_before(base, None, {v.id for v in base_alone}))
    out["base_alone_flagged"] = {n: float(np.mean([x >= 0 for x in f.values()])) for n, f in alone.items()}
    out["rules"] = rows
    for tag, key in (("N", "chosen_no_reference"), ("B", "chosen_with_reference")):
        names = [n for n in rows if n.startswith(tag) and n[1] in "12345"]  # the first choice's candidates
        pick = choose(rows, names, fpr_cap=0.025)
        baseline = next(n for n in rows if n.startswith(tag + "0"))
        out[key] = pick if pick and rows[pick]["recall"] > rows[baseline]["recall"] else None
    print(f"canary seed {seed}, {args.subset}" + (f" except {args.except_subset}" if args.except_subset else ""),
          out["counts"])  # fmt: skip
    print(f"{'rule (scenario b)':58s} {'recall':>17s} {'clean FPR':>19s} {'wrong':>5s} {'base alone':>10s}")
    for n, m in rows.items():
        lo, hi = m["recall_ci"]
        flo, fhi = m["fpr_ci"]
        b = out["base_alone_flagged"].get(n)
        print(f"{n:58s} {m['recall']:.2f} [{lo:.2f},{hi:.2f}] {m['fpr']:.3f} [{flo:.2f},{fhi:.2f}] "
              f"{m['wrongly_named']:5d} {'-' if b is None else f'{b:.3f}':>10s}")  # fmt: skip
    print("chosen (by this run's figures):", out["chosen_no_reference"], "|", out["chosen_with_reference"])
    tag = args.subset + (f"-except-{args.except_subset}" if args.except_subset else "")
    (RESULTS / f"lift-{tag}-seed{seed}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
