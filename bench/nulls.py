"""False-positive rate of the dataset verdict, measured: >= 200 seeded clean datasets per scenario.

    .venv/bin/python -m bench.nulls [--datasets 200] [--items 200] [--real SEED:SUBSET]
    .venv/bin/python -m bench.nulls --items-only    # item level only (~2 min): references, scale mismatch

Every dataset goes through auditor.analysis.assess.assess (the code `auditor run` uses after scoring):
item verdicts from item_stats, shared option lists, order sensitivity, the permutation test with its
20,000 draws. Scenarios (all clean):
- random logprobs: i.i.d. Gaussian scores per ordering; heavy-tailed (Student t, 2 df) scores with a
  different scale per item;
- a model audited against itself: reference = the same scores (every deviation 0), and the same scores
  re-scored with numerical noise (1e-3 nats, as a second server might return);
- two clean models that share each item's natural-order preference (the published order lifted by
  1 sd plus a shared per-ordering component), each with its own noise: paired, and alone (which is
  expected to say "preferred more than chance": that is what natural order looks like without a reference);
- --real: the held-out canary's clean items resampled (fine-tuned model paired with its base model).
Reported: the share of datasets whose verdict is "leakage" at the dataset alpha (1e-3) and, from the
same p-values, at 0.01 and 0.05 (with Wilson intervals), and the share of items flagged.
Item level (`--items-only` recomputes just these, keeping the saved dataset-level scenarios): the share of
clean and of leaked items flagged with 1 or 3 references, and with one reference that expresses natural
order on another scale than the audited model (the paired rule's weak point), for the default paired
rule (deviation in nats) and the first version (standardised scores).
Writes bench/results/nulls.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from auditor.analysis.assess import assess
from auditor.analysis.detector import ItemStats, SpanScore, item_stats, stats_from_report
from auditor.analysis.stats import wilson_interval
from auditor.input.items import Item
from auditor.prompts.orderings import orderings_for

RESULTS = Path(__file__).parent / "results"
PERMS = orderings_for(4, max_orderings=120, seed=0, item_id="x")
ALPHAS = (1e-3, 0.01, 0.05)
Pair = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]  # audited scores, reference scores (items x K)


def items_for(n: int) -> list[Item]:
    return [Item(f"q{i}", f"Question {i}?", (f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"), 0, "s", "sim", i)
            for i in range(n)]  # fmt: skip


def verdicts(scores: np.ndarray[Any, Any]) -> list[ItemStats]:
    return [item_stats(f"q{i}", "s", PERMS, [SpanScore(float(x), 3, 5) for x in row]) for i, row in enumerate(scores)]


def gaussian(rng: np.random.Generator, n: int) -> Pair:
    return rng.normal(-50, 3, size=(n, 24)), None


def heavy(rng: np.random.Generator, n: int) -> Pair:
    return -50 + rng.standard_t(2, size=(n, 24)) * rng.uniform(0.5, 5, size=(n, 1)), None


def itself(rng: np.random.Generator, n: int) -> Pair:
    s = rng.normal(-50, 3, size=(n, 24))
    return s, s.copy()


def itself_noisy(rng: np.random.Generator, n: int) -> Pair:
    s = rng.normal(-50, 3, size=(n, 24))
    return s + rng.normal(0, 1e-3, size=s.shape), s


def natural(rng: np.random.Generator, n: int) -> Pair:
    shared = rng.normal(0, 2, size=(n, 24))
    shared[:, 0] += 2.0
    return -50 + shared + rng.normal(0, 1, size=(n, 24)), -60 + 1.5 * shared + rng.normal(0, 1.5, size=(n, 24))


def run(name: str, make: Callable[[np.random.Generator, int], Pair], datasets: int, n: int, paired: bool,
        work: Path) -> dict[str, Any]:  # fmt: skip
    ps, flagged = [], []
    items = items_for(n)
    t0 = time.monotonic()
    for d in range(datasets):
        rng = np.random.default_rng([d, 101])
        audited, reference = make(rng, n)
        control = None
        if paired and reference is not None:
            control = work / name
            control.mkdir(parents=True, exist_ok=True)
            rows = [{"id": v.id, "subject": v.subject, "scores": v.scores, "orderings": [list(p) for p in v.orderings],
                     "rank_random": v.rank_random} for v in verdicts(reference)]  # fmt: skip
            (control / "report.json").write_text(json.dumps({"items": rows}))
        a = assess(verdicts(audited), items, control=control, seed=d)
        ps.append(a.summary.p_verdict)
        flagged.append(float(np.mean(list(a.flagged.values()))))
    return summarize(name, ps, flagged, n, paired, time.monotonic() - t0)


def summarize(name: str, ps: list[float], flagged: list[float], n: int, paired: bool, secs: float) -> dict[str, Any]:
    arr = np.asarray(ps)
    rates = {str(a): {"rate": float(np.mean(arr < a)), "ci": list(wilson_interval(int(np.sum(arr < a)), len(arr)))}
             for a in ALPHAS}  # fmt: skip
    out = {"datasets": len(ps), "items": n, "paired": paired, "rates": rates, "item_fpr": float(np.mean(flagged)),
           "seconds": round(secs, 1)}  # fmt: skip
    print(f"{name}: {json.dumps(out)}", flush=True)
    return out


def real_clean(spec: str, datasets: int, n: int) -> dict[str, Any]:
    """Resample the held-out canary's clean items (audited: epoch 3; reference: its base model)."""
    from bench.canary import ground_truth

    seed, subset = spec.split(":")
    summary = json.loads((RESULTS / f"detection-{subset}-seed{seed}.json").read_text())
    truth = ground_truth(Path(summary["canary"]))
    runs = RESULTS / "runs" / ("" if seed == "0" else f"seed{seed}") / subset
    audited = [stats_from_report(d) for d in json.loads((runs / "epoch-3" / "report.json").read_text())["items"]]
    clean = [v for v in audited if truth[v.id]["status"] == "clean"]
    by_id = {b["id"]: b for b in json.loads((runs / "base" / "report.json").read_text())["items"]}
    ps, flagged = [], []
    t0 = time.monotonic()
    for d in range(datasets):
        rng = np.random.default_rng([d, 202])
        picks = [clean[int(i)] for i in rng.integers(0, len(clean), n)]
        # resampled copies get fresh ids (so shared option lists do not merge them) and the base as reference
        renamed = [replace(v, id=f"q{j}") for j, v in enumerate(picks)]
        with tempfile.TemporaryDirectory() as tmp:
            rows = [{**by_id[v.id], "id": f"q{j}"} for j, v in enumerate(picks)]
            (Path(tmp) / "report.json").write_text(json.dumps({"items": rows}))
            a = assess(renamed, items_for(n), control=Path(tmp), seed=d)
        ps.append(a.summary.p_verdict)
        flagged.append(float(np.mean(list(a.flagged.values()))))
    return summarize(f"canary seed {seed} clean items, resampled, paired with base", ps, flagged, n, True,
                     time.monotonic() - t0)  # fmt: skip


def references_sharpen(n: int = 2000, lift: float = 4.0) -> dict[str, Any]:
    """Item level, simulated: clean items and items leaked by `lift` (in score units) share a natural-order
    preference with 1 or 3 clean references (each with its own noise); the share flagged under scenario a."""
    from auditor.analysis.verdicts import control_null, decide

    rng = np.random.default_rng(303)
    shared = rng.normal(0, 2, size=(n, 24))
    shared[:, 0] += 1.0
    audited = -50 + shared + rng.normal(0, 1, size=(n, 24))
    leaked = audited.copy()
    leaked[:, 0] += lift
    refs = [verdicts(-60 + shared + rng.normal(0, 1, size=(n, 24))) for _ in range(3)]
    out: dict[str, Any] = {"items": n, "lift": lift}
    for m in (1, 3):
        null = control_null([(r, f"ref{j}") for j, r in enumerate(refs[:m])])
        fpr = np.mean([decide(v, null).scenario == "a" for v in verdicts(audited)])
        rec = np.mean([decide(v, null).scenario == "a" for v in verdicts(leaked)])
        out[f"{m} reference(s)"] = {"clean_flagged": float(fpr), "leaked_flagged": float(rec)}
    print(f"references: {json.dumps(out)}", flush=True)
    return out


def _rule_rates(null: Any, clean: list[ItemStats], leaked: list[ItemStats]) -> dict[str, dict[str, float]]:
    """Share of clean and of leaked items flagged under scenario a: default paired rule and the first version."""
    from auditor.analysis.itemtests import item_test
    from auditor.analysis.verdicts import decide

    out = {}
    for rule in ("nats (default)", "standardised (first version)"):

        def flag(v: ItemStats) -> bool:
            test = decide(v, null) if rule.startswith("nats") else item_test(v, null.reference_for(v), null.alpha)  # noqa: B023
            return test.scenario == "a"

        out[rule] = {"clean_flagged": float(np.mean([flag(v) for v in clean])),
                     "leaked_flagged": float(np.mean([flag(v) for v in leaked]))}  # fmt: skip
    return out


def centred(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each item's (row's) scores minus their mean over its orderings."""
    return np.asarray(x - x.mean(axis=1, keepdims=True))


def published_first(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Per item: the published order (column 0, as in ItemStats) has the largest value (a tie counts as first)."""
    return np.asarray(np.argmax(x, axis=1) == 0)


def instrument_beta(audited: np.ndarray[Any, Any], ref1: np.ndarray[Any, Any], ref2: np.ndarray[Any, Any]) -> float:
    """cov(audited, ref2) / cov(ref1, ref2) over every ordering of every item, scores centred within items (no
    labels): with natural order n, audited = n + noise and ref_k = s_k n + noise_k, it estimates 1 / s_1, so
    audited - beta ref1 has no natural order left whatever ref1's scale (a slope fitted on ref1 alone cannot:
    ref1's own noise attenuates it). ref2 is the instrument; its noise must be independent of ref1's."""
    return float(np.sum(centred(audited) * centred(ref2)) / np.sum(centred(ref1) * centred(ref2)))


def _instrumented(
    clean: np.ndarray[Any, Any], leaked: np.ndarray[Any, Any], ref1: np.ndarray[Any, Any], ref2: np.ndarray[Any, Any]
) -> dict[str, Any]:
    """Not in the package: the deviation from ref1 rescaled by `instrument_beta`, with ref2 the instrument,
    beta taken over clean and leaked items together (as a real dataset mixes them). "nats, numpy" is the
    default's rule computed the same way (deviation in nats, and the published order first in the audited
    scores too), a check of this code against the package's rows."""
    beta = instrument_beta(np.concatenate([clean, leaked]), np.concatenate([ref1, ref1]), np.concatenate([ref2, ref2]))

    def rates(scale: float, both: bool) -> dict[str, float]:
        out = {}
        for name, a in (("clean_flagged", clean), ("leaked_flagged", leaked)):
            top = published_first(a - scale * ref1)
            if both:
                top &= published_first(a)
            out[name] = float(np.mean(top))
        return out

    return {"nats, numpy (check)": rates(1.0, True), "instrumented beta": {"beta": beta},
            "instrumented, deviation first": rates(beta, False),
            "instrumented, deviation and audited first": rates(beta, True)}  # fmt: skip


def scale_mismatch(n: int = 4000, lift: float = 4.0) -> dict[str, Any]:
    """Clean and leaked items (published order lifted by `lift`) sharing natural order with one reference
    whose natural-order component is scaled by 0.5..2.0 (bench.nulls.natural's model at scale 1.5)."""
    from auditor.analysis.verdicts import control_null

    out: dict[str, Any] = {"items": n, "lift": lift, "scales": {}}
    for scale in (0.5, 0.67, 1.0, 1.5, 2.0):
        rng = np.random.default_rng([7, int(scale * 100)])
        shared = rng.normal(0, 2, size=(n, 24))
        shared[:, 0] += 2.0
        clean = -50 + shared + rng.normal(0, 1, size=(n, 24))
        leaked = clean.copy()
        leaked[:, 0] += lift
        ref1 = -60 + scale * shared + rng.normal(0, 1, size=(n, 24))
        null = control_null([(verdicts(ref1), "ref")])
        row: dict[str, Any] = _rule_rates(null, verdicts(clean), verdicts(leaked))
        ref2 = -55 + shared + rng.normal(0, 1, size=(n, 24))  # drawn last: the rows above keep their numbers
        row |= _instrumented(clean, leaked, ref1, ref2)
        out["scales"][str(scale)] = row
        print(f"reference scale {scale}: {json.dumps(row)}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--real", action="append", default=[], metavar="SEED:SUBSET")
    ap.add_argument("--items-only", action="store_true", help="only the item-level parts; keep the saved scenarios")
    args = ap.parse_args()
    out = RESULTS / "nulls.json"
    if args.items_only:
        data = json.loads(out.read_text())
        data |= {"references": references_sharpen(), "scale_mismatch": scale_mismatch()}
        out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {out}")
        return
    scenarios: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, make, paired in (
            ("random logprobs (Gaussian), alone", gaussian, False),
            ("random logprobs (heavy-tailed t2, per-item scale), alone", heavy, False),
            ("a model audited against itself (identical scores), paired", itself, True),
            ("a model audited against itself (re-scored, 1e-3 nats noise), paired", itself_noisy, True),
            ("two clean models sharing natural order, paired", natural, True),
            ("two clean models sharing natural order, alone (no reference)", natural, False),
        ):
            scenarios[name] = run(name, make, args.datasets, args.items, paired, work)
    for spec in args.real:
        scenarios[f"canary seed {spec} clean items, resampled, paired with base"] = real_clean(
            spec, args.datasets, min(args.items, 100)
        )
    RESULTS.mkdir(exist_ok=True)
    data = {"dataset_alpha": 1e-3, "scenarios": scenarios, "references": references_sharpen(),
            "scale_mismatch": scale_mismatch()}  # fmt: skip
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
