"""How far apart shuffled leaks and clean items are on scenario b's statistics (issue 17): an upper bound.

    .venv/bin/python -m bench.scenario_b [--fpr 0.025] [--subset e2e|full] [--out ...]

Reads what bench/detection.py left (the reports of epoch-3 and its base model under bench/results/runs,
the canary's ground truth named in bench/results/detection-<subset>-seed<S>.json; writes
bench/results/scenario_b.json for e2e, scenario_b-<subset>.json otherwise). For every statistic a
scenario-b rule can threshold - the z of the best ordering against the others, the gap from the best to
the second, and the lift (the best's height above the item's median, auditor/analysis/lift.py), on the
audited scores s and on the deviation from the base d = s - s_base (nats) - it
takes the best threshold chosen on the same data ("oracle": the lowest one that flags at most `--fpr` of
the clean items whose best ordering is not the published one) and reports the shuffled leaks it would flag
with their trained order named. No rule built on that statistic can do better on these items at that
false-positive rate; the goal is 0.30 at 2.5%.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from auditor.analysis.lift import lift
from bench.detection import RESULTS, RUNS
from bench.rules import verdicts_of

STATS = ("z on s", "gap on s", "lift on s", "z on d", "gap on d", "lift on d")


def item_stats(values: np.ndarray[Any, Any]) -> tuple[int, float, float, float]:
    """(index of the best, its z against the others, its gap to the second, its lift above the median)."""
    best = int(np.argmax(values))
    rest = np.delete(values, best)
    sd = float(rest.std(ddof=1))
    z = (float(values[best]) - float(rest.mean())) / sd if sd else 0.0
    return best, z, float(values[best] - rest.max()), lift(values)[1]


def rows_for(seed: int, subset: str = "e2e") -> tuple[list[dict[str, Any]], str]:
    saved = json.loads((RESULTS / f"detection-{subset}-seed{seed}.json").read_text())
    truth = json.loads((Path(saved["canary"]) / "ground_truth.json").read_text())["items"]
    runs = (RUNS if seed == 0 else RUNS / f"seed{seed}") / subset
    audited = verdicts_of(json.loads((runs / "epoch-3" / "report.json").read_text()))
    base = {v.id: v for v in verdicts_of(json.loads((runs / "base" / "report.json").read_text()))}
    rows = []
    for v in audited:
        r = base.get(v.id)
        if r is None:
            continue
        pos = {tuple(p): k for k, p in enumerate(r.orderings)}
        s = np.asarray(v.scores, dtype=float)
        d = s - np.asarray([r.scores[pos[tuple(p)]] for p in v.orderings])
        t = truth[v.id]
        trained = next((k for k, p in enumerate(v.orderings) if list(p) == t.get("order")), None)
        row: dict[str, Any] = {"status": t["status"], "trained": trained}
        for name, values in (("s", s), ("d", d)):
            best, z, gap, lift = item_stats(values)
            row[f"best on {name}"], row[f"z on {name}"], row[f"gap on {name}"] = best, z, gap
            row[f"lift on {name}"] = lift
        rows.append(row)
    return rows, saved["canary"]


def oracle(rows: list[dict[str, Any]], stat: str, fpr: float) -> dict[str, Any]:
    on = stat.split()[-1]
    clean = sorted((r[stat] for r in rows if r["status"] == "clean" and r[f"best on {on}"] != 0), reverse=True)
    n_clean = sum(r["status"] == "clean" for r in rows)
    allowed = int(np.floor(fpr * n_clean))  # clean items it may flag
    threshold = clean[allowed] + 1e-12 if allowed < len(clean) else -np.inf  # strictly above the (allowed+1)-th
    shuffled = [r for r in rows if r["status"] == "leaked-shuffled"]
    named = [r for r in shuffled if r[f"best on {on}"] == r["trained"]]
    hits = sum(r[stat] >= threshold for r in named)
    quant = np.quantile(clean, [0.5, 0.9, 0.975]).round(2).tolist() if clean else []
    return {"threshold": threshold, "clean_flagged": sum(c >= threshold for c in clean), "n_clean": n_clean,
            "shuffled": len(shuffled), "trained_is_best": len(named), "recall": hits / max(1, len(shuffled)),
            "trained_values": sorted(round(r[stat], 2) for r in named), "clean_quantiles": quant}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--fpr", type=float, default=0.025)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--subset", choices=("e2e", "full"), default="e2e")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.out = args.out or RESULTS / ("scenario_b.json" if args.subset == "e2e" else f"scenario_b-{args.subset}.json")
    result: dict[str, Any] = {"fpr": args.fpr, "subset": args.subset, "seeds": {}}
    print(f"scenario b, best threshold chosen on the same items (an upper bound), clean FPR <= {args.fpr:.1%}")
    print("| seed | statistic | shuffled leaks | trained order is the best | recall | clean flagged |"
          " trained-and-best values | clean: median, 90%, 97.5% |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---|---|")
    for seed in args.seeds:
        rows, canary = rows_for(seed, args.subset)
        out = {stat: oracle(rows, stat, args.fpr) for stat in STATS}
        result["seeds"][str(seed)] = {"canary": canary, "statistics": out}
        for stat, o in out.items():
            cells = [seed, stat, o["shuffled"], o["trained_is_best"], f"{o['recall']:.2f}",
                     f"{o['clean_flagged']}/{o['n_clean']}", o["trained_values"], o["clean_quantiles"]]  # fmt: skip
            print("| " + " | ".join(str(c) for c in cells) + " |")
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
