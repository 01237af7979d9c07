"""Issue 15: hostile and broken endpoints, each reproduced against a real server on 127.0.0.1 (tests/support/
hostile.py and the fault server) with the real CLI in a subprocess (tests/support/cases.py measures wall time,
the client's peak RSS, exit code and where a key leaked). `python -m tests.support.cases --code OLD` prints
the same cases for another checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cases import CASES, Ctx, Outcome

pytestmark = pytest.mark.reliability

STARTUP = 8.0  # seconds a CLI may spend starting (imports) on busy shared CPUs before its clock starts
RSS_MB = 500


def case(name: str, tmp_path: Path) -> Outcome:
    tmp_path.mkdir(parents=True, exist_ok=True)
    outcome = CASES[name](Ctx(tmp_path, time_cap=240))
    print(f"{name}: {outcome.run.describe()} {outcome.facts}")
    return outcome


def test_a_trickle_or_a_hang_is_cut_off_by_the_deadlines_probe_included(tmp_path: Path) -> None:
    for name in ("trickle_probe", "hang_all"):  # every route: the probe never completes
        o = case(name, tmp_path / name)
        assert o.run.rc == 5 and "--max-time 8 s reached while probing" in o.run.stderr, o.run.stderr
        assert o.run.seconds < o.facts["limit_s"] + STARTUP
    o = case("trickle_scoring", tmp_path / "ts")  # a byte every 2 s, --timeout 4: each request cut at 4 s
    assert o.run.rc == 6 and o.facts["scoring_requests"] == 2 and o.run.seconds < 30


def test_retries_do_not_amplify(tmp_path: Path) -> None:
    hang = case("hang_amplification", tmp_path / "h")
    assert hang.facts["requests_per_item"] == 6 and hang.run.rc == 6  # --attempts 6, never split
    garbled = case("garbled", tmp_path / "g")
    assert garbled.facts["requests_per_item"] <= 8  # the batch twice, 3 prompts alone twice


@pytest.mark.parametrize("name", ["huge_body", "endless_body", "gzip_bomb", "memory_under_concurrency"])
def test_memory_stays_bounded_against_any_body(name: str, tmp_path: Path) -> None:
    o = case(name, tmp_path)
    assert o.run.killed is None and o.run.rss_mb < RSS_MB
    assert o.run.rc in (4, 6)  # the probe refused (4), or every scoring answer refused: nothing scored (6)


def test_impossible_logprobs_never_reach_the_cache(tmp_path: Path) -> None:
    inf = case("infinite_logprobs", tmp_path / "inf")
    assert inf.run.rc == 6 and inf.facts["second_rc"] == 0  # refused, not cached: the fixed server is then fine
    pos = case("positive_logprobs", tmp_path / "pos")
    assert pos.run.rc == 6 and pos.facts["verdict"] == "nothing_scored"
    poisoned = case("poisoned_row", tmp_path / "poison")
    assert poisoned.run.rc == 0 and poisoned.facts["scoring_requests_after_poison"] == 3  # one per item


@pytest.mark.parametrize("name", ["key_echo", "key_in_url", "key_as_flag_value"])
def test_no_key_in_any_written_byte(name: str, tmp_path: Path) -> None:
    o = case(name, tmp_path)
    assert o.facts["leaks"] == []
    assert o.run.rc in ((2,) if name == "key_as_flag_value" else (0, 6)), o.run.stderr  # 6: items refused, too few


def test_verdicts_on_nothing_and_uncalibrated_corners(tmp_path: Path) -> None:
    failed = case("all_failed", tmp_path / "f")
    assert failed.run.rc == 6 and failed.facts["verdict"] == "nothing_scored"
    two = case("two_options_noise", tmp_path / "n2")
    assert two.facts["items"] == 60 and two.facts["flagged"] == 0 and two.run.rc == 0
    four = case("four_options_noise", tmp_path / "n4")
    assert four.facts["flagged"] <= 9  # 5% of 60 = 3 expected; 9 or more has probability < 0.1%
    ties = case("all_ties", tmp_path / "t")
    assert ties.run.rc == 6 and ties.facts["n_degenerate"] == 20 and ties.facts["n_top1"] == 0
    assert ties.facts["verdict"] == "too_few_scored"


def test_outputs_are_checked_before_the_first_request(tmp_path: Path) -> None:
    o = case("unusable_outputs", tmp_path / "u")
    assert o.facts == {"out is a file": "exit 2, 0 requests", "out under a file": "exit 2, 0 requests",
                       "out read-only": "exit 2, 0 requests", "cache read-only": "exit 3, 0 requests"}  # fmt: skip
    other = case("other_audit_in_out", tmp_path / "o")
    assert other.run.rc == 2 and other.facts["report_model_after"] == "model-a"
    assert other.facts["same_audit_rerun_rc"] == 0 and other.facts["forced_rc"] == 0


def test_smaller_defects(tmp_path: Path) -> None:
    assert case("redirect_307", tmp_path / "r").run.rc == 4
    two = case("two_processes", tmp_path / "2")
    assert two.facts["rcs"] == [0, 0] and two.facts["prompts_scored_twice"] == 0
    term = case("sigterm", tmp_path / "s")
    assert term.run.rc == 143 and term.facts["partial"] is True and term.facts["n_items"] > 0
    flags = case("bad_flag_values", tmp_path / "b")
    assert all(v.startswith("exit 2 (0 requests)") for v in flags.facts.values()), flags.facts
    tls = case("insecure_identity", tmp_path / "i")
    assert tls.facts["scoring_requests_verified_run"] == 2
