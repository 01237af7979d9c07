"""report.json (the contract, for machines) and report.md (for people), written atomically.

The report depends only on the scores and the provenance, so re-running an audit from the cache
writes byte-identical files. Run statistics (requests sent, cache hits, wall time) are not part of
it: the CLI prints them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.detector import ItemFailure, ItemVerdict, judge_dataset

TOP_ITEMS = 20


@dataclass
class Report:
    data: dict[str, Any]

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        js = out / "report.json"
        md = out / "report.md"
        _atomic_write(js, json.dumps(self.data, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
        _atomic_write(md, render_markdown(self.data))
        return [js, md]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_report(
    verdicts: Sequence[ItemVerdict],
    failures: Sequence[ItemFailure],
    provenance: dict[str, Any],
    *,
    skipped: Sequence[dict[str, Any]] = (),
    partial: bool = False,
) -> Report:
    ds = judge_dataset(verdicts, n_failed=len(failures))
    summary = {
        "n_items": ds.n_items,
        "n_leaked": ds.n_leaked,
        "leak_rate": ds.leak_rate,
        "chance_rate": ds.chance_rate,
        "p_value": ds.p_value,
        "n_failed": ds.n_failed,
        "n_skipped_invalid": len(skipped),
        "partial": partial,
    }
    data = {
        "summary": summary,
        "items": [
            {
                "id": v.id,
                "subject": v.subject,
                "n_orderings": v.n_orderings,
                "rank": v.rank,
                "leaked": v.leaked,
                "p_value": v.p_value,
                "margin": v.margin,
                "rank_random": v.rank_random,
                "z_published": v.z_published,
                "outlier_score": v.outlier_score,
                "best_ordering": list(v.best_ordering),
                "min_k": v.min_k if v.min_k == v.min_k else None,
                "scores": v.scores,
                "orderings": [list(p) for p in v.orderings],
            }
            for v in verdicts
        ],
        "failures": [{"id": f.id, "subject": f.subject, "reason": f.reason} for f in failures],
        "skipped_invalid": list(skipped),
        "provenance": provenance,
    }
    return Report(data)


def _fmt_p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def render_markdown(data: dict[str, Any]) -> str:
    s = data["summary"]
    prov = data["provenance"]
    ep = prov["endpoint"]
    ds = prov["dataset"]
    excess = s["leak_rate"] - s["chance_rate"]
    lines = [
        f"# Leakage audit: `{ep['model']}` on `{ds['path']}`",
        "",
        *(
            ["> **Partial report**: the run was interrupted; re-run the same command to finish it.", ""]
            if s.get("partial")
            else []
        ),
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| items scored | {s['n_items']} |",
        f"| published order scored highest | {s['n_leaked']} ({s['leak_rate']:.1%}) |",
        f"| expected by chance | {s['chance_rate']:.1%} |",
        f"| excess over chance | {excess:+.1%} |",
        f"| p-value (exact binomial, one-sided) | {_fmt_p(s['p_value'])} |",
        f"| items that failed | {s['n_failed']} |",
        f"| items skipped as invalid | {s['n_skipped_invalid']} |",
        "",
        "**What this means.** For each item every ordering of its options was scored by the model's",
        "log-probability of the options block. A model that saw an item in training tends to prefer the",
        "published order. Without such a preference the published order comes first in 1 of K",
        "orderings by chance; the p-value is the probability of seeing at least this many such items",
        "if the model had no preference at all.",
        "",
        '**When to distrust it.** Some items read naturally in one order only ("all of the above",',
        "ascending numbers, options that refer to each other), and a model can prefer published orders",
        "from pretraining on text that quotes the benchmark. A small p-value says the model prefers the",
        "published order; it does not by itself say the model was trained on the benchmark. Compare with",
        "a clean reference model before concluding.",
        "",
    ]
    top = sorted((it for it in data["items"] if it["leaked"]), key=lambda it: -it["margin"])[:TOP_ITEMS]
    if top:
        lines += [
            f"## Items where the published order wins by the widest margin (top {len(top)})",
            "",
            "| item | subject | orderings | margin (nats) |",
            "|---|---|---:|---:|",
        ]
        lines += [f"| `{it['id']}` | {it['subject']} | {it['n_orderings']} | {it['margin']:.3f} |" for it in top]
        lines.append("")
    if data["failures"]:
        lines += ["## Failures", "", f"{len(data['failures'])} item(s) could not be scored; the first ones:", ""]
        lines += [f"- `{f['id']}`: {f['reason']}" for f in data["failures"][:10]]
        lines.append("")
    lines += [
        "## Provenance",
        "",
        f"- endpoint: {ep['base_url']} (provider `{ep['provider']}`), model `{ep['model']}`"
        + (f", server {ep['server']} {ep['server_version'] or ''}".rstrip() if ep.get("server") else ""),
        f"- dataset: `{ds['path']}`, {ds['files']} file(s), sha256 `{ds['sha256']}`,"
        f" {ds['items_loaded']} items loaded" + (f", first {ds['limit']} used" if ds.get("limit") else ""),
        f"- template: `{prov['template']['name']}`; max orderings {prov['max_orderings']}; seed {prov['seed']}",
        f"- tool: auditor {prov['tool']['version']}; scored between {prov['time']['first_scored']}"
        f" and {prov['time']['last_scored']}",
        "" if not ep.get("insecure_tls") else "- TLS verification was OFF (--insecure)",
    ]
    return "\n".join(lines).rstrip() + "\n"
