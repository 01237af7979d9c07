"""The README's detection table says what bench/detection.py measured: the held-out seed-1 canary on all its items
(bench/results/detection-full-seed1.json) and the seed-0 canary on all its items (detection-full-seed0.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROWS = {  # README row -> the rule's name in the saved tables
    "paper's rule (published order on top)": "paper-a (published order on top)",
    "auditor's default, no reference": "auditor, exchangeable (default)",
    "auditor's default with the base model as reference (`--control-run`)": "auditor, paired with base (default)",
}


SAVED = {1: "detection-full-seed1.json", 0: "detection-full-seed0.json"}


def saved(seed: int, rule: str) -> tuple[str, str]:
    data = json.loads((ROOT / "bench" / "results" / SAVED[seed]).read_text())
    a = next(r for r in data["rows"] if r["model"] == "epoch-3")["rules"][rule]["a"]
    return f"{a['recall']:.2f}", f"{a['fpr']:.3f}"


def test_the_readme_detection_table_is_the_saved_measurement() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ROWS:
            found[cells[0]] = cells[1:]
    assert set(found) == set(ROWS), "the README's detection table lost a row"
    for row, rule in ROWS.items():
        assert found[row] == [*saved(1, rule), *saved(0, rule)], row
    b = {seed: [shuffled_named(seed, rule) for rule in list(ROWS.values())[1:]] for seed in SAVED}
    assert (f"{b[1][0]} of them without a reference\nand {b[1][1]} with the base on seed 1, {b[0][0]} and {b[0][1]} on"
            " seed 0, with no clean item flagged under b") in readme  # fmt: skip
    counts = {seed: counted(seed) for seed in SAVED}
    assert re.search(rf"{counts[1][0]} leaked in their published order and\s+{counts[1][1]} clean", readme)
    assert re.search(rf"seed 0: {counts[0][0]} and {counts[0][1]}\)", readme)


def counted(seed: int) -> tuple[int, int]:
    """(published-order leaks, clean items) scored on the canary's epoch 3, as the README states them."""
    data = json.loads((ROOT / "bench" / "results" / SAVED[seed]).read_text())
    a = next(r for r in data["rows"] if r["model"] == "epoch-3")["rules"][ROWS["auditor's default, no reference"]]["a"]
    return a["n_positive"], a["n_clean"]


def shuffled_named(seed: int, rule: str) -> str:
    """The share of shuffled leaks flagged under b with their trained order named (no clean item flagged under b)."""
    data = json.loads((ROOT / "bench" / "results" / SAVED[seed]).read_text())
    b = next(r for r in data["rows"] if r["model"] == "epoch-3")["rules"][rule]["b"]
    assert b["fpr"] == 0.0, "the README says no clean item is flagged under b"
    return f"{b['recall']:.2f}"
