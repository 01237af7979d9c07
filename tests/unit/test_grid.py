"""`auditor grid`: the plan file's checks, the budget split, cache shards merged back, and a 2 x 2 grid run here
against real loopback servers (the Ray tier runs the same grid as Ray tasks: tests/integration/test_ray.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.errors import UsageError
from auditor.run.codes import ExitCode
from auditor.run.gridplan import load_plan, split_budget
from auditor.scoring.cache import ScoreCache
from auditor.scoring.merge import merge_into, seed_shard
from providers.base import LogprobRecord
from tests.support.faultserver import FaultServer

PLAN = """
[run]
items = 6
orderings = "cyclic"
batch_size = 4

[[models]]
name = "a"
base_url = "{a}"
provider = "openai-completions"

[[models]]
name = "b"
base_url = "{b}"
provider = "openai-completions"

[[benchmarks]]
name = "mmlu"

[[benchmarks]]
name = "arc"
dataset = "arc-challenge"
"""


def write_plan(tmp: Path, text: str) -> Path:
    path = tmp / "grid.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[models]]\nname='a'\nbase_url='http://x/v1'\n", "needs at least one [[benchmarks]]"),
        ("[[models]]\nname='a'\nbaseurl='http://x/v1'\n[[benchmarks]]\nname='mmlu'\n",
         "models[0]: unknown field 'baseurl'"),
        ("[[models]]\nname='a b'\nbase_url='http://x/v1'\n[[benchmarks]]\nname='mmlu'\n", "needs a name of letters"),
        ("[[models]]\nname='a'\nbase_url='http://x/v1'\n[[models]]\nname='a'\nbase_url='http://y/v1'\n"
         "[[benchmarks]]\nname='mmlu'\n", "models name 'a' used twice"),
        ("[[models]]\nname='a'\n[[benchmarks]]\nname='mmlu'\n", "needs base_url"),
        ("[run]\nmax_tokens=5\n[[models]]\nname='a'\nbase_url='http://x/v1'\n[[benchmarks]]\nname='mmlu'\n",
         "[run]: unknown field 'max_tokens'"),
        ("[budget]\nmax_tokens=-5\n[[models]]\nname='a'\nbase_url='http://x/v1'\n[[benchmarks]]\nname='mmlu'\n",
         "max_tokens must be a positive number"),
        ("[[models]\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_plan_errors_name_the_entry_and_the_field(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(UsageError) as err:
        load_plan(write_plan(tmp_path, text))
    assert says in str(err.value)


def test_budget_split_never_adds_up_to_more_than_the_total() -> None:
    caps = split_budget({"max_tokens": 1000, "max_cost": 1.0}, [1, 2, 3, 7])
    assert sum(int(c["max_tokens"]) for c in caps) <= 1000 and sum(c["max_cost"] for c in caps) <= 1.0
    assert [c["max_tokens"] for c in caps] == [76, 153, 230, 538]  # in proportion to the prompts


def record(n: int) -> LogprobRecord:
    return LogprobRecord(("a", "b"), (None, -float(n + 1)), (0, 1))


def test_shards_start_from_the_main_cache_and_merge_back_once(tmp_path: Path) -> None:
    main_cache, start, shard = tmp_path / "main.sqlite", tmp_path / "start.sqlite", tmp_path / "shard.sqlite"
    with ScoreCache(main_cache) as c:
        c.put_many([("k1", record(1)), ("k2", record(2))], endpoint="http://a/v1", model="m")
        c.put_many([("k9", record(9))], endpoint="http://other/v1", model="m")
    assert seed_shard(main_cache, start, ["http://a/v1"]) == 2  # only this endpoint's rows travel
    shard.write_bytes(start.read_bytes())
    with ScoreCache(shard) as c:
        assert c.get("k1") is not None and c.get("k9") is None
        c.put_many([("k3", record(3))], endpoint="http://a/v1", model="m")
    assert merge_into(main_cache, [shard])["scores"] == 1  # k3 is new; k1, k2 were there
    assert merge_into(main_cache, [shard])["scores"] == 0  # idempotent
    with sqlite3.connect(main_cache) as db:
        assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == 4


def test_a_two_by_two_grid_runs_here_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    with FaultServer(model="model-a") as a, FaultServer(model="model-b") as b:
        plan = write_plan(tmp_path, PLAN.replace("{a}", a.base_url).replace("{b}", b.base_url))
        out, cache = tmp_path / "board", tmp_path / "c.sqlite"
        args = ["grid", str(plan), "--out", str(out), "--cache", str(cache), "--json"]
        assert main(args) == ExitCode.OK
        for m in ("a", "b"):
            for bench in ("mmlu", "arc"):
                report = json.loads((out / m / bench / "report.json").read_text())
                assert report["summary"]["n_items"] == 6 and report["provenance"]["endpoint"]["model"] == f"model-{m}"
        board = json.loads((out / "compare.json").read_text())
        assert len(board["rows"]) == 4
        sent = a.stats().requests + b.stats().requests
        assert main(args) == ExitCode.OK
        assert a.stats().requests + b.stats().requests == sent  # all from the cache (probes cached too)


def test_a_grid_budget_holds_over_all_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FaultServer(model="model-a") as a, FaultServer(model="model-b") as b:
        text = PLAN.replace("{a}", a.base_url).replace("{b}", b.base_url) + "\n[budget]\nmax_tokens = 6000\n"
        plan = write_plan(tmp_path, text)
        code = main(["grid", str(plan), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c.sqlite"), "--json"])
    cells = json.loads(capsys.readouterr().out)["cells"]
    assert code == ExitCode.PARTIAL and any(c["exit_code"] == ExitCode.PARTIAL for c in cells)
    assert sum(c["tokens"] for c in cells) <= 6000


def test_a_ray_cells_folder_is_claimed_before_it_runs_and_its_files_replaced_whole(tmp_path: Path) -> None:
    """A Ray task writes its report in a folder of its own; the driver checks the cell's real folder as
    `auditor run` would (before paying: another audit's report refuses; after the probe: another model's),
    and replaces the files atomically."""
    from auditor.run.grid import cell_config, claim_folder, place_reports

    plan = load_plan(write_plan(tmp_path, PLAN.replace("{a}", "http://a.test/v1").replace("{b}", "http://b.test/v1")))
    m, b = next(iter(plan.cells()))
    cfg = cell_config(plan, m, b, tmp_path / "board", tmp_path / "c.sqlite")
    assert cfg.out is not None and claim_folder(cfg) is None  # nothing there yet
    prov = {"endpoint": {"base_url": cfg.endpoint.base_url, "model": "model-a"}, "dataset": {"path": str(cfg.dataset)}}
    place_reports(cfg.out, {"report.json": json.dumps({"provenance": prov}).encode(), "report.md": b"# a"}, None)
    existing = claim_folder(cfg)  # the same audit again: allowed
    assert existing == prov and (cfg.out / "report.md").read_bytes() == b"# a"
    other = {"provenance": {**prov, "endpoint": {**prov["endpoint"], "model": "model-z"}}}
    with pytest.raises(UsageError, match="this run audits 'model-z'"):
        place_reports(cfg.out, {"report.json": json.dumps(other).encode(), "report.md": b"# z"}, existing)
    assert (cfg.out / "report.md").read_bytes() == b"# a"  # nothing written
    foreign = {"provenance": {**prov, "endpoint": {"base_url": "http://else.test/v1", "model": "m"}}}
    (cfg.out / "report.json").write_text(json.dumps(foreign))
    with pytest.raises(UsageError, match="another audit"):
        claim_folder(cfg)
    assert sorted(p.name for p in cfg.out.iterdir()) == ["report.json", "report.md"]  # no temporary file left
