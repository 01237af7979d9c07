"""Benchmarks by name: the bundled samples (complete, licensed, stratified), name resolution, and the report
header that says exactly which items were audited (bundled, --items, --limit)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.errors import DatasetError, UsageError
from auditor.input.catalog import bundled, bundled_names, resolve
from auditor.input.items import load_items
from auditor.prompts.orderings import PAPER
from auditor.run.plan import AuditConfig, plan_audit
from tests.support.fakeserver import FakeServer
from tests.unit.test_cli import BASE, serve

FIXTURE_MMLU = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "mmlu" / "test"


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_sample_is_complete_and_licensed(name: str) -> None:
    b = bundled(name)
    for f in ("items.jsonl", "meta.json", "LICENSE", "SOURCE.md"):
        assert (b.folder / f).is_file(), f
    data = b.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == b.meta["items_sha256"]
    items = load_items(b.path).items  # every item valid as shipped
    assert len(items) == b.items == b.meta["items"] and len({it.id for it in items}) == len(items)
    assert b.items <= b.meta["drawn_from"] <= b.population
    assert b.description.startswith((f"{b.items:,} of {b.population:,} ", f"all {b.items:,} "))
    assert b.licence in (b.folder / "SOURCE.md").read_text(encoding="utf-8")


def test_bundled_mmlu_has_five_items_of_every_subject() -> None:
    b = bundled("mmlu")
    items = load_items(b.path).items
    assert Counter(it.subject for it in items) == dict.fromkeys(Counter(it.subject for it in items), 5)
    assert len({it.subject for it in items}) == 57 and len(items) == 285
    assert b.description == "285 of 14,042 MMLU test items, 5 per subject (57 subjects), seed 0"
    # not a prefix: the items of a subject come from across its file
    rows = [int(it.id.split(":")[1]) for it in items if it.subject == "high_school_psychology"]
    assert max(rows) > 100


def test_a_path_wins_over_a_name_and_unknown_names_say_what_exists(tmp_path: Path) -> None:
    assert resolve(Path("mmlu"))[1] is not None
    (tmp_path / "mmlu").mkdir()  # tests run in tmp_path: ./mmlu now exists and is a path
    assert resolve(Path("mmlu")) == (Path("mmlu"), None)
    with pytest.raises(DatasetError, match="mmlu-pro"):
        resolve(Path("mmlux"))


def _cfg(dataset: Path, **kw: object) -> AuditConfig:
    from auditor.endpoint.config import EndpointConfig

    return AuditConfig(EndpointConfig(base_url=BASE, model="m"), dataset, Path("out"), Path("c.sqlite"), **kw)  # type: ignore[arg-type]


def test_descriptions_say_exactly_what_is_audited() -> None:
    assert plan_audit(_cfg(Path("mmlu"))).description == (
        "285 of 14,042 MMLU test items, 5 per subject (57 subjects), seed 0 (bundled `mmlu`)"
    )
    sub = plan_audit(_cfg(Path("mmlu"), sample=57)).description
    assert sub.startswith("57 of the bundled `mmlu` sample, stratified by subject (seed 0)")
    with pytest.raises(UsageError, match="--items"):
        plan_audit(_cfg(Path("mmlu"), limit=10))
    first = plan_audit(_cfg(FIXTURE_MMLU, limit=20)).description
    n_files = len(list(FIXTURE_MMLU.glob("*.csv")))
    assert first.startswith(f"the first 20 items of `{FIXTURE_MMLU}`, read from 1 of its {n_files} files")
    assert "abstract_algebra_test.csv" in first and "not a sample" in first
    strat = plan_audit(_cfg(FIXTURE_MMLU, sample=16, skip_invalid=True)).description
    assert strat.startswith("16 of the ") and f"({n_files} files, 1 skipped as invalid)" in strat
    assert strat.endswith(f"stratified by subject ({n_files} subjects), seed 0")


def test_run_on_a_bundled_name_writes_the_description(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = load_items(bundled("mmlu").path).items
    server = FakeServer(preferred={PAPER.render(it, (0, 1, 2, 3)).text for it in items[::2]})
    out = tmp_path / "run"
    args = ["run", "--base-url", BASE, "--model", "fake-model", "--dataset", "mmlu", "--items", "19",
            "--orderings", "cyclic", "--out", str(out), "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    with serve(server):
        assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    ds = report["provenance"]["dataset"]
    assert ds["bundled"]["name"] == "mmlu" and ds["bundled"]["licence"] == "MIT"
    assert ds["description"].startswith("19 of the bundled `mmlu` sample")
    assert any(ln.split(None, 1) == ["audited", ds["description"]] for ln in printed.splitlines())
    assert f"Audited: {ds['description']}." in (out / "report.md").read_text(encoding="utf-8")
    shared = report.get("set_aside", {}).get("shared_option_list", {}).get("count", 0)  # scored once per list
    assert report["summary"]["n_items"] + shared == 19


def test_datasets_command_lists_names_sizes_and_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in bundled_names():
        b = bundled(name)
        assert f"{name}: {b.source}" in out and b.description in out


@pytest.mark.shared_data
def test_bundled_samples_rebuild_byte_for_byte(shared_data: Path) -> None:
    from scripts.bundle_datasets import main as bundle

    assert bundle(["--check", "--data", str(shared_data)]) == 0


@pytest.mark.shared_data
def test_fixture_slices_rebuild_byte_for_byte(shared_data: Path) -> None:
    from tests.fixtures.build_data_slices import main as cut

    assert cut(["--check", "--data", str(shared_data)]) == 0
