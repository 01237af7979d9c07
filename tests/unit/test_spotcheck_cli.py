"""Spot checks through the CLI against the in-process fake server: designs, --sequential, hard budgets."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from auditor.cli import main
from auditor.endpoint.probe import PROBE_PROMPT
from auditor.input.items import Item, load_items
from auditor.input.sensitivity import order_sensitivity
from auditor.prompts.orderings import PAPER
from tests.conftest import DATA_SLICES
from tests.support.fakeserver import FakeServer, tokenize
from tests.unit.test_cli import BASE, serve

SUBJECTS = ("abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
            "college_biology", "college_chemistry", "computer_security")  # fmt: skip


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~240 real MMLU items (up to 30 per subject) without duplicate options, and no two sharing an option
    list (such items are scored once: tests/unit/test_shared_lists.py), so every item here is scored."""
    d = tmp_path_factory.mktemp("mmlu")
    seen: set[frozenset[str]] = set()
    for subject in SUBJECTS:
        text = (DATA_SLICES / "mmlu" / "test" / f"{subject}_test.csv").read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO("".join(text.splitlines(keepends=True)[:30]), newline="")))
        kept = [r for r in rows if frozenset(r[1:-1]) not in seen and not seen.add(frozenset(r[1:-1]))]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(kept)
        (d / f"{subject}_test.csv").write_text(out.getvalue(), encoding="utf-8")
    return d


def published(items: list[Item]) -> set[str]:
    return {PAPER.render(it, tuple(range(len(it.options)))).text for it in items}


def run(dataset: Path, tmp_path: Path, out: str, *extra: str, code: int = 0) -> dict[str, Any]:
    """`auditor run`; a run stopped by a budget exits 5 (partial), a complete one 0 (6: too few to decide)."""
    args = ["run", "--base-url", BASE, "--model", "fake-model", "--dataset", str(dataset), "--out",
            str(tmp_path / out), "--cache", str(tmp_path / "c.sqlite"), "--skip-invalid", *extra]  # fmt: skip
    assert main(args) == code
    data: dict[str, Any] = json.loads((tmp_path / out / "report.json").read_text())
    return data


def test_sequential_stops_early_on_a_leaky_model_and_reruns_identically(big_dataset: Path, tmp_path: Path) -> None:
    items = load_items(big_dataset, skip_invalid=True).items
    leaked = [it for i, it in enumerate(items) if i % 2 == 0]
    server = FakeServer(preferred=published(leaked))
    with serve(server):
        full = run(big_dataset, tmp_path, "full")
    full_tokens = server.tokens_billed
    with serve(server):
        seq = run(big_dataset, tmp_path / "s", "seq", "--sequential")
    assert seq["summary"]["verdict"] == full["summary"]["verdict"] == "leakage"
    s = seq["sequential"]
    assert s["decision"] == "leakage" and s["items_used"] < 20 and s["items_available"] > 150
    assert seq["summary"]["n_items"] + seq["summary"]["n_failed"] == s["items_used"]
    assert seq["spend"]["share_of_full_protocol"] < 0.10
    assert server.tokens_billed - full_tokens < 0.15 * full_tokens  # spent, in-flight items included
    assert seq["set_aside"]["order_sensitive"]["count"] > 0
    ids = [it["id"] for it in seq["items"]]
    sensitive = {it.id for it in items if order_sensitivity(it)}
    assert not set(ids) & sensitive
    js = (tmp_path / "s" / "seq" / "report.json").read_bytes()
    before = server.completion_requests
    with serve(server):
        run(big_dataset, tmp_path / "s", "seq", "--sequential")
    assert server.completion_requests == before  # the same decision, from the cache
    assert (tmp_path / "s" / "seq" / "report.json").read_bytes() == js


def test_sequential_on_a_clean_model_says_no_evidence_above_tolerance(big_dataset: Path, tmp_path: Path) -> None:
    server = FakeServer()
    with serve(server):
        seq = run(big_dataset, tmp_path, "seq", "--sequential", "--tolerance", "0.15")
    s = seq["sequential"]
    assert s["decision"] == "no_evidence", s
    assert s["leaked_fraction_interval"]["high"] <= 0.15
    assert seq["summary"]["verdict"] == "no_evidence"
    assert "no evidence" in seq["summary"]["verdict_text"]


def test_token_budget_is_never_exceeded_and_the_rest_is_resumable(big_dataset: Path, tmp_path: Path) -> None:
    server = FakeServer()
    with serve(server):
        part = run(big_dataset, tmp_path, "part", "--limit", "20", "--max-tokens", "12000", code=5)
    assert server.tokens_billed <= 12000
    assert part["summary"]["partial"] and part["budget"]["stopped_by"] == "tokens"
    left = part["budget"]["to_finish"]["items"]
    assert 0 < left < 20 and part["summary"]["n_not_scored"] == left
    assert part["summary"]["n_items"] + left == 20
    unspent = part["budget"]["left"]
    assert unspent["tokens"] == 12000 - part["budget"]["tokens_total"] and unspent["items_it_would_buy"] == 0
    assert 0 < part["budget"]["to_finish"]["tokens_estimate"] < part["budget"]["to_finish"]["tokens_upper_bound"]
    assert "would have bought" in (tmp_path / "part" / "report.md").read_text()
    billed = server.tokens_billed
    with serve(server):
        whole = run(big_dataset, tmp_path, "whole", "--limit", "20", "--max-tokens", "10000000")
    assert not whole["summary"]["partial"] and whole["summary"]["n_items"] == 20
    assert whole["budget"]["tokens_total"] == server.tokens_billed - billed  # only the rest was paid for


def test_request_budget_counts_requests(big_dataset: Path, tmp_path: Path) -> None:
    server = FakeServer()
    with serve(server):
        part = run(big_dataset, tmp_path, "part", "--limit", "10", "--max-requests", "4", "--concurrency", "3", code=5)
    assert server.completion_requests - 1 <= 4  # the probe's request is not a scoring request
    assert part["budget"]["stopped_by"] == "requests" and part["summary"]["n_items"] == 4


def test_cyclic_design_scores_n_orderings(big_dataset: Path, tmp_path: Path) -> None:
    server = FakeServer()
    with serve(server):
        rep = run(big_dataset, tmp_path, "cyc", "--limit", "5", "--orderings", "cyclic")
    assert server.prompts_scored - 1 <= 5 * 4 + 1
    assert all(it["n_orderings"] == 4 for it in rep["items"])
    assert rep["summary"]["chance_rate"] == pytest.approx(0.25)
    assert rep["provenance"]["orderings"] == "cyclic"


def test_pairs_design_finds_a_planted_pair_preference(big_dataset: Path, tmp_path: Path) -> None:
    items = load_items(big_dataset, skip_invalid=True).items[:6]
    pairs = {PAPER.render(it, (a, b)).text for it in items for a in range(4) for b in range(4) if a < b}
    server = FakeServer(preferred=pairs, bonus=1000.0)
    with serve(server):
        rep = run(big_dataset, tmp_path, "pairs", "--limit", "6", "--orderings", "pairs")
    assert all(it["rank"] == 1 and it["n_orderings"] == 24 for it in rep["items"])


def test_bad_budget_flags_are_one_line(big_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", "--base-url", BASE, "--dataset", str(big_dataset), "--out", str(tmp_path / "o"),
            "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    assert main([*base, "--max-cost", "5"]) == 2
    assert "price" in capsys.readouterr().err
    assert main([*base, "--max-tokens", "0"]) == 2
    assert main([*base, "--orderings", "sample:1"]) == 2
    assert main([*base, "--orderings", "bogus"]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_time_budget_cancels_in_flight_work_and_writes_a_partial_report(big_dataset: Path, tmp_path: Path) -> None:
    import asyncio
    import time

    import httpx
    import respx

    server = FakeServer()

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/completions") and isinstance(json.loads(request.content)["prompt"], list):
            await asyncio.sleep(1.0)  # scoring requests (prompt lists) are slow; the probe's single prompt is not
        return server.handler(request)

    t0 = time.monotonic()
    with respx.mock(assert_all_called=False) as router:
        router.route(host="fake.test").mock(side_effect=slow)
        rep = run(big_dataset, tmp_path, "t", "--limit", "40", "--max-time", "3.0", "--concurrency", "2", code=5)
    assert time.monotonic() - t0 < 12.0  # without the limit: 40 items / 2 in flight x 1 s = 20 s
    assert rep["summary"]["partial"] and rep["budget"]["stopped_by"] == "time"
    assert 0 < rep["summary"]["n_items"] < 40 and rep["summary"]["n_not_scored"] == 40 - rep["summary"]["n_items"]
    assert "--max-time" in rep["not_scored"]["items"][0]["reason"]


def estimate_json(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    args = ["estimate", "--base-url", BASE, "--dataset", str(dataset), "--cache", str(tmp_path / "c.sqlite"),
            "--skip-invalid", "--json", *extra]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_estimate_is_exact_with_tokenize_and_sends_no_scoring_request(
    big_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeServer()
    with serve(server):
        est = estimate_json(big_dataset, tmp_path, capsys, "--limit", "12", "--max-tokens", "5000")
    assert server.completion_requests == 0 and server.tokenize_requests > 0
    assert est["token_source"] == "server:/tokenize" and est["error_bound"] == 0
    assert est["prompts"] == est["prompts_to_score"] == 12 * 24 and est["requests"] == 12
    assert est["budget"]["fits"] is False and 0 < est["budget"]["items_covered"] < 12
    with serve(server):
        run(big_dataset, tmp_path, "r", "--limit", "12", "--max-tokens", "10000000")
    assert est["tokens"] == server.tokens_billed - 1 - len(tokenize_probe(server))  # the probe is not estimated
    with serve(server):
        again = estimate_json(big_dataset, tmp_path, capsys, "--limit", "12")
    assert again["prompts_cached"] == 12 * 24 and again["tokens"] == 0 and again["requests"] == 0


def tokenize_probe(server: FakeServer) -> list[str]:
    """The probe's one scoring request: its prompt tokens (it also generates 1)."""
    return tokenize(PROBE_PROMPT)


def test_estimate_without_tokenize_is_approximate_with_a_bound_and_prices_known_models(
    big_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeServer(tokenize=False)
    with serve(server):
        est = estimate_json(big_dataset, tmp_path, capsys, "--limit", "5", "--price-per-mtok", "2")
    assert est["token_source"] == "approx" and est["error_bound"] > 0 and est["warning"]
    assert est["cost"] == pytest.approx(est["tokens"] * 2 / 1e6)
    lo, hi = est["tokens_range"]  # (the fake's word-level tokenizer is not what the bound was measured on)
    assert lo < est["tokens"] < hi and hi - lo > 0.25 * est["tokens"]
    assert server.completion_requests == 0
    with serve(server):
        assert main(["estimate", "--base-url", BASE, "--dataset", str(big_dataset), "--cache",
                     str(tmp_path / "c2.sqlite"), "--limit", "5", "--skip-invalid"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "counted by" in text and "approx" in text and "cost" in text
