"""The README's detection table says what bench/detection.py measured on all items of each canary: the seed-2
canary, held out from every rule (bench/results/detection-full-seed2.json), and seeds 1 and 0, on which the rules
were chosen (detection-full-seed1.json, detection-full-seed0.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ROWS = {  # README row -> the rule's name in the saved tables
    "paper's rule (published order on top)": "paper-a (published order on top)",
    "auditor's default, no reference": "auditor, exchangeable (default)",
    "auditor's default with the base model as reference (`--control-run`)": "auditor, paired with base (default)",
}
SAVED = {2: "detection-full-seed2.json", 1: "detection-full-seed1.json", 0: "detection-full-seed0.json"}


def epoch3(seed: int, rule: str) -> dict[str, Any]:
    data = json.loads((ROOT / "bench" / "results" / SAVED[seed]).read_text())
    rules: dict[str, Any] = next(r for r in data["rows"] if r["model"] == "epoch-3")["rules"]
    return dict(rules[rule])


def test_the_readme_detection_table_is_the_saved_measurement() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ROWS:
            found[cells[0]] = cells[1:]
    assert set(found) == set(ROWS), "the README's detection table lost a row"
    for row, rule in ROWS.items():
        a = {seed: epoch3(seed, rule)["a"] for seed in SAVED}
        want = [f"{a[2]['recall']:.2f}", f"{a[2]['fpr']:.3f}",
                *(f"{a[s]['recall']:.2f} / {a[s]['fpr']:.3f}" for s in (1, 0))]  # fmt: skip
        assert found[row] == want, row
    # scenario b: shuffled leaks flagged under b with their trained order named, and clean items flagged under b
    b = {seed: [epoch3(seed, rule)["b"] for rule in list(ROWS.values())[1:]] for seed in SAVED}
    named = ", ".join(f"{b[s][0]['recall']:.2f} / {b[s][1]['recall']:.2f} on seed {s}" for s in SAVED)
    clean = ", ".join(" / ".join(f"{round(x['fpr'] * x['n_clean'])}" for x in b[s]) + f" on seed {s}" for s in SAVED)
    assert f"named right: {named}" in " ".join(readme.split()), named
    assert f"clean items flagged under b: {clean}" in " ".join(readme.split()), clean
    counts = {seed: epoch3(seed, ROWS["auditor's default, no reference"])["a"] for seed in SAVED}
    text = " ".join(readme.split())
    for seed, a in counts.items():
        assert re.search(rf"seed {seed}: {a['n_positive']} leaked in their published order and {a['n_clean']} clean",
                         text), seed  # fmt: skip
