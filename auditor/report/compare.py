"""`auditor compare`: a leaderboard of finished runs, models x benchmarks, from their report.json files.

A benchmark is a dataset by content (its sha256), not by path. Within a benchmark, runs are ranked only
against runs audited the same way: same items, template, ordering design, null (exchangeable or a
control run), fixed-sample or sequential test, order-sensitive items kept or excluded, and complete (not
stopped early). The most common such setting is the benchmark's reference; any other run is listed,
unranked, with what differs. Rows are ranked by the lower end of the leaked fraction's 95% interval
(what the data are sure of), then the estimate.

Each run's p-value is the one its verdict was decided on. They are Holm-adjusted across every run
compared (family-wise error rate, valid however the runs depend on each other: the same items, the same
model); the grid verdict is "leakage" when the adjusted p-value is below the single-run threshold.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.analysis.stats import holm
from auditor.analysis.verdicts import DATASET_ALPHA, VerdictTest
from auditor.errors import UsageError

CORRECTION = "holm"
COLUMNS = [
    "benchmark",
    "rank",
    "model",
    "grid_verdict",
    "verdict",
    "leaked_fraction",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "p_test",
    "items",
    "failed",
    "orderings",
    "prompts",
    "tokens",
    "accuracy",
    "accuracy_decontaminated",
    "comparable",
    "why_not",
    "template",
    "design",
    "null",
    "dataset_sha256",
    "server",
    "model_root",
    "tool_version",
    "scored_until",
    "run",
]
ASPECTS = ("items", "template", "orderings", "null", "test", "order-sensitive items", "completeness")


@dataclass(frozen=True)
class Run:
    path: Path  # the report.json
    data: dict[str, Any]


def _is_pattern(arg: str) -> bool:
    return any(c in arg for c in "*?[")


def _report_of(path: Path) -> Path | None:
    if path.is_dir():
        return path / "report.json" if (path / "report.json").is_file() else None
    return path if path.is_file() else None


def find_runs(args: Sequence[str]) -> list[Path]:
    """report.json files from run directories, report.json paths and glob patterns (quoted, for the shell)."""
    found: list[Path] = []
    for arg in args:
        if _is_pattern(arg) and not Path(arg).exists():
            matches = [r for m in sorted(glob.glob(arg)) if (r := _report_of(Path(m))) is not None]
            if not matches:
                raise UsageError(f"{arg}: no run directory with a report.json matches this pattern")
            found += matches
            continue
        p = Path(arg)
        report = _report_of(p)
        if report is None:
            why = (
                "no report.json in this directory (not a finished run?)" if p.is_dir() else "no such file or directory"
            )
            raise UsageError(f"{arg}: {why}")
        found.append(report)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UsageError("no runs to compare: give run directories, report.json files or a quoted glob")
    return unique


REQUIRED = (
    ("summary", "verdict"),
    ("summary", "leaked_fraction", "estimate"),
    ("summary", "n_items"),
    ("summary", "null", "kind"),
    ("provenance", "endpoint", "model"),
    ("provenance", "dataset", "sha256"),
    ("items",),
)


def load_run(path: Path) -> Run:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: not a readable auditor report ({type(err).__name__}: {err})") from None
    for keys in REQUIRED:
        node = data
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                raise UsageError(f"{path}: not an auditor report (no {'.'.join(keys)})")
            node = node[k]
    return Run(path, data)


def verdict_p(data: dict[str, Any]) -> tuple[float, str]:
    """The p-value the run's verdict rests on, and its test (reports before p_verdict existed: rebuilt)."""
    s = data["summary"]
    if s.get("p_verdict") is not None:
        test = s.get("verdict_test", "")
        return float(s["p_verdict"]), VerdictTest(test).description if test in set(VerdictTest) else str(test)
    seq = data.get("sequential")
    if seq:
        e = float(seq["e_value_no_leakage"])
        return (min(1.0, 1 / e) if e > 0 else 1.0), "sequential test (p = 1/e-value, always valid)"
    if s.get("p_vs_control") is not None:
        return float(s["p_vs_control"]), "test against the control"
    p_bin = float(s.get("p_top1", s.get("p_binomial_units", s.get("p_value", 1.0))))  # schema 2, then older names
    p_rank = float(s.get("p_rank_sum", 1.0))
    return min(p_bin, p_rank), "rank-sum test" if p_rank < p_bin else "top-1 count test (units)"


def _setting(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """What must match for two runs to be ranked together: aspect -> (key, what to show)."""
    s, prov = data["summary"], data["provenance"]
    ids = sorted([it["id"] for it in data["items"]] + [f["id"] for f in data.get("failures", [])])
    digest = hashlib.sha256("\x00".join(ids).encode()).hexdigest()[:16]
    template = prov.get("template", {})
    design = f"{prov.get('orderings', 'all')} (max {prov.get('max_orderings', '?')})"
    excluded = bool(s.get("n_excluded_order_sensitive")) or bool(prov.get("exclude_order_sensitive"))
    null = s["null"]["kind"]
    return {
        "items": (digest, f"{len(ids)} items"),
        "template": (json.dumps(template, sort_keys=True), str(template.get("name", "?"))),
        "orderings": (design, design),
        "null": (null + str(s["null"].get("source", "")), "control run" if null == "control" else "exchangeable"),
        "test": ("sequential", "sequential") if data.get("sequential") else ("fixed", "fixed sample"),
        "order-sensitive items": ("excluded", "excluded") if excluded else ("kept", "kept"),
        "completeness": ("partial", "partial (stopped early)") if s.get("partial") else ("complete", "complete"),
    }


def _label(path: str) -> str:
    parts = [p for p in Path(path).parts if p not in ("..", ".", "/")]
    return "/".join(parts[-2:]) or path


def benchmarks(runs: Sequence[Run]) -> dict[str, str]:
    """dataset sha256 -> a readable label (the path's last two parts; the hash added where labels clash)."""
    first: dict[str, str] = {}
    for r in runs:
        ds = r.data["provenance"]["dataset"]
        first.setdefault(ds["sha256"], _label(str(ds.get("path", "?"))))
    counts = Counter(first.values())
    return {sha: (f"{lab} @{sha[:8]}" if counts[lab] > 1 else lab) for sha, lab in first.items()}


def _row(run: Run, label: str) -> dict[str, Any]:
    d = run.data
    s, prov = d["summary"], d["provenance"]
    ep, lf = prov["endpoint"], s["leaked_fraction"]
    p, test = verdict_p(d)
    spend = d.get("spend") or {}
    return {
        "benchmark": label,
        "rank": None,
        "model": str(ep["model"]),
        "grid_verdict": None,
        "verdict": s["verdict"],
        "leaked_fraction": lf["estimate"],
        "ci_low": lf["low"],
        "ci_high": lf["high"],
        "p_value": p,
        "p_holm": None,
        "p_test": test,
        "items": s["n_items"],
        "failed": s.get("n_failed", 0),
        "orderings": sum(int(it["n_orderings"]) for it in d["items"]),
        "prompts": spend.get("prompts_used"),
        "tokens": spend.get("prompt_tokens_used"),
        **_accuracy(d),
        "comparable": True,
        "why_not": "",
        "template": str(prov.get("template", {}).get("name", "?")),
        "design": str(prov.get("orderings", "all")),
        "null": s["null"]["kind"],
        "dataset_sha256": prov["dataset"]["sha256"],
        "server": f"{ep.get('server') or '?'} {ep.get('server_version') or ''}".strip(),
        "model_root": ep.get("model_root"),
        "tool_version": prov.get("tool", {}).get("version"),
        "scored_until": prov.get("time", {}).get("last_scored"),
        "run": str(run.path.parent),
    }


def _accuracy(data: dict[str, Any]) -> dict[str, float | None]:
    """Harness-style accuracy (letter method, `--accuracy`): all judged items, and with the flagged ones removed."""
    letter = (data.get("accuracy") or {}).get("methods", {}).get("letter")
    if not letter:
        return {"accuracy": None, "accuracy_decontaminated": None}
    return {"accuracy": letter["overall"]["accuracy"], "accuracy_decontaminated": letter["unflagged"]["accuracy"]}


def _mark_comparability(rows: list[dict[str, Any]], settings: list[dict[str, tuple[str, str]]]) -> None:
    keys = [tuple(st[a][0] for a in ASPECTS) for st in settings]
    reference = Counter(keys).most_common(1)[0][0]  # ties: the first run given
    ref = settings[keys.index(reference)]
    for row, st, key in zip(rows, settings, keys, strict=True):
        if key != reference:
            row["comparable"] = False
            row["why_not"] = "; ".join(
                f"{a}: {st[a][1]} (the others: {ref[a][1]})" for a in ASPECTS if st[a][0] != ref[a][0]
            )


def compare(runs: Sequence[Run]) -> dict[str, Any]:
    """The leaderboard: rows ranked within each benchmark, p-values Holm-adjusted across all runs."""
    labels = benchmarks(runs)
    out_rows: list[dict[str, Any]] = []
    groups = []
    for sha, label in sorted(labels.items(), key=lambda kv: kv[1]):
        members = [r for r in runs if r.data["provenance"]["dataset"]["sha256"] == sha]
        rows = [_row(r, label) for r in members]
        settings = [_setting(r.data) for r in members]
        _mark_comparability(rows, settings)
        ranked = sorted(
            (r for r in rows if r["comparable"]),
            key=lambda r: (-r["ci_low"], -r["leaked_fraction"], r["p_value"], r["model"]),
        )
        for i, r in enumerate(ranked, 1):
            r["rank"] = i
        rest = sorted((r for r in rows if not r["comparable"]), key=lambda r: (-r["ci_low"], r["model"]))
        ref = next(st for st, r in zip(settings, rows, strict=True) if r["comparable"])
        groups.append(
            {"benchmark": label, "dataset_sha256": sha, "runs": len(rows), "setting": {a: ref[a][1] for a in ASPECTS}}
        )
        out_rows += ranked + rest
    for r, q in zip(out_rows, holm([r["p_value"] for r in out_rows]), strict=True):
        r["p_holm"] = q
        r["grid_verdict"] = "leakage" if q < DATASET_ALPHA else "no_evidence"
    return {
        "runs": len(out_rows),
        "correction": CORRECTION,
        "alpha": DATASET_ALPHA,
        "note": f"p_value: the test each run's verdict rests on; p_holm: Holm-adjusted across all {len(out_rows)}"
        f" runs (family-wise error rate, any dependence); grid_verdict: leakage when p_holm < {DATASET_ALPHA:g}."
        " Ranks compare runs of one benchmark audited the same way (see why_not).",
        "benchmarks": groups,
        "rows": out_rows,
    }


def describe(setting: dict[str, str]) -> str:
    """A benchmark's reference setting in words."""
    st = setting
    return (
        f"{st['items']}, template {st['template']}, orderings {st['orderings']}, null {st['null']}, {st['test']}"
        f" test, order-sensitive items {st['order-sensitive items']}, {st['completeness']} runs"
    )


def to_csv(board: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in board["rows"]:
        w.writerow({k: "" if r[k] is None else r[k] for k in COLUMNS})
    return buf.getvalue()


def _md(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("\n", " ")


def _p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def accuracy_text(r: dict[str, Any]) -> str:
    """Accuracy before and after removing the flagged items, or '-' without --accuracy."""
    a, d = r["accuracy"], r["accuracy_decontaminated"]
    return "-" if a is None else f"{a:.1%} -> {'n/a' if d is None else format(d, '.1%')}"


def to_markdown(board: dict[str, Any]) -> str:
    rows = board["rows"]
    models = sorted({r["model"] for r in rows})
    lines = [
        f"# Leaderboard: {board['runs']} run(s), {len(models)} model(s), {len(board['benchmarks'])} benchmark(s)",
        "",
        board["note"],
        "",
    ]
    for g in board["benchmarks"]:
        st = g["setting"]
        lines += [
            f"## {_md(g['benchmark'])}",
            "",
            f"dataset sha256 `{g['dataset_sha256'][:16]}…`; compared: {_md(describe(st))}",
            "",
            "| rank | model | grid verdict | run verdict | leaked fraction (95% CI) | p | p (Holm) | items |"
            " orderings | prompt tokens | accuracy -> decontaminated |",
            "|---:|---|---|---|---|---:|---:|---:|---:|---:|---|",
        ]
        mine = [r for r in rows if r["benchmark"] == g["benchmark"]]
        for r in mine:
            lines.append(
                f"| {r['rank'] or 'n/c'} | {_md(r['model'])} | **{r['grid_verdict']}** | {r['verdict']} |"
                f" {r['leaked_fraction']:.1%} ({r['ci_low']:.1%} to {r['ci_high']:.1%}) | {_p(r['p_value'])} |"
                f" {_p(r['p_holm'])} | {r['items']} | {r['orderings']} |"
                f" {'?' if r['tokens'] is None else r['tokens']} | {accuracy_text(r)} |"
            )
        lines.append("")
        lines += [
            f"- not comparable: {_md(r['model'])} ({_md(r['run'])}): {_md(r['why_not'])}"
            for r in mine
            if not r["comparable"]
        ]
        if any(not r["comparable"] for r in mine):
            lines.append("")
    lines += [
        "## Provenance",
        "",
        "| model | benchmark | server | template | orderings | tool | scored until | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_md(r['model'])} | {_md(r['benchmark'])} | {_md(r['server'])} | {_md(r['template'])} |"
        f" {_md(r['design'])} | {_md(r['tool_version'])} | {_md(r['scored_until'])} | {_md(r['run'])} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def write_board(board: dict[str, Any], out: Path) -> list[Path]:
    """compare.md, compare.json, compare.csv and compare.html in `out`, each written atomically."""
    from auditor.report.build import _atomic_write
    from auditor.report.compare_html import render_compare_html

    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "compare.md": to_markdown(board),
        "compare.json": json.dumps(board, indent=1, ensure_ascii=False, allow_nan=False) + "\n",
        "compare.csv": to_csv(board),
        "compare.html": render_compare_html(board),
    }
    for name, text in texts.items():
        _atomic_write(out / name, text)
    return [out / name for name in texts]
