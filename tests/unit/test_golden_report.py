"""report.json and report.md on a fixed synthetic dataset and the fake endpoint, against a golden copy.

The golden files were written by the code before the stage-subpackage move (issue 12) and guard
behaviour across refactors: a deliberate change of the report regenerates them
(`python -m tests.unit.test_golden_report`) and says why in the commit.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import respx

from auditor.cli import main
from tests.support.fakeserver import FakeServer

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"


def write_dataset(path: Path) -> None:
    """18 items over three subjects, 3 and 4 options, three planted in the published order."""
    rng = random.Random(7)
    rows = []
    for i in range(18):
        n = 4 if i % 5 else 3
        opts = [f"option {i}-{k} {rng.choice(['red', 'blue', 'green', 'cat', 'dog', 'sun'])}" for k in range(n)]
        rows.append(
            {
                "id": f"q{i}",
                "subject": ["alpha", "beta", "gamma"][i % 3],
                "question": f"Question number {i}: which one?",
                "choices": opts,
                "answer": i % n,
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def run_fixed_audit(work: Path) -> Path:
    ds = work / "ds.jsonl"
    write_dataset(ds)
    # plant three items: the fake server favours their published-order prompts
    from auditor.input.items import load_items
    from auditor.prompts.orderings import PAPER

    items = load_items(ds).items
    preferred = {PAPER.render(it, tuple(range(len(it.options)))).text for it in items[:9:3]}
    server = FakeServer(preferred=preferred)
    router = respx.mock(assert_all_called=False)
    router.route(host="fake.test").mock(side_effect=server.handler)
    out = work / "run"
    args = ["run", "--base-url", "http://fake.test/v1", "--model", "fake-model", "--dataset", str(ds)]
    with router:
        rc = main([*args, "--out", str(out), "--cache", str(work / "c.sqlite")])
    assert rc == 0
    return out


def normalised(report: dict[str, Any]) -> dict[str, Any]:
    """Drop what differs between two identical audits: where the files were, and when they ran."""
    ds = report["provenance"]["dataset"]
    ds["description"] = ds["description"].replace(ds["path"], "DATASET")
    ds["path"] = None
    report["provenance"]["time"] = None
    return report


def normalised_md(text: str, work: Path) -> str:
    lines = [ln for ln in text.replace(str(work), "WORK").splitlines() if "scored between" not in ln]
    return "\n".join(lines)


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Where two report.json trees differ: same keys, same lengths, same strings and integers; floats equal to
    12 significant digits (the last digits of a sum move with numpy's build and the CPU's vector width)."""
    if isinstance(got, dict) and isinstance(want, dict):
        if got.keys() != want.keys():
            return [f"{path or '/'}: keys {sorted(got.keys() ^ want.keys())} in one only"]
        return [d for k in want for d in differences(got[k], want[k], f"{path}/{k}")]
    if isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} entries, golden has {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True)) for d in differences(g, w, f"{path}[{i}]")]
    if isinstance(got, float) and isinstance(want, float) and math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300):
        return []
    return [] if type(got) is type(want) and got == want else [f"{path}: {got!r} != golden {want!r}"]


def test_differences_tolerates_only_the_last_digits() -> None:
    want = {"p": 0.016322588471094183, "n": 3, "s": "a", "xs": [1.0, 2.5]}
    assert differences({**want, "p": 0.016322588471094177}, want) == []
    assert differences({**want, "p": 0.01632258847}, want) == ["/p: 0.01632258847 != golden 0.016322588471094183"]
    assert differences({**want, "n": 3.0}, want) == ["/n: 3.0 != golden 3"]
    assert differences({**want, "xs": [1.0]}, want) == ["/xs: 1 entries, golden has 2"]
    assert differences({"p": 1.0}, want) == ["/: keys ['n', 's', 'xs'] in one only"]


def test_report_matches_golden(tmp_path: Path, capsys: Any) -> None:
    out = run_fixed_audit(tmp_path)
    got = normalised(json.loads((out / "report.json").read_text(encoding="utf-8")))
    want = json.loads((GOLDEN / "report.json").read_text(encoding="utf-8"))
    assert differences(got, want) == []
    md = normalised_md((out / "report.md").read_text(encoding="utf-8"), tmp_path)
    assert md == (GOLDEN / "report.md").read_text(encoding="utf-8")


if __name__ == "__main__":  # regenerate the golden files
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        out = run_fixed_audit(work)
        rep = normalised(json.loads((out / "report.json").read_text(encoding="utf-8")))
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / "report.json").write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        md = normalised_md((out / "report.md").read_text(encoding="utf-8"), work)
        (GOLDEN / "report.md").write_text(md, encoding="utf-8")
    print("golden files written to", GOLDEN, file=sys.stderr)
