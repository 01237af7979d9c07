"""Browser tier: report.html and the compare page opened in real headless Chromium (Debian's package).

Checked: no console error or warning, no uncaught exception, no dialog (the hostile item text stays
text), no request but the file itself (data: URLs that plotly draws heatmaps with are not network),
every plot drawn (plotly's SVG elements present, the plot areas not blank in the screenshot, in the
plots' own colours), tooltips, search and sort working. Screenshots are kept in $AUDITOR_SCREENSHOTS
(default: the test's temp dir) for a person to look at.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.chromium import Chromium, Observed, available
from tests.unit.test_report_html import HOSTILE, audit, write_dataset

pytestmark = pytest.mark.browser

PLOT_BLUE, LEAK_RED = (0x09, 0x69, 0xDA), (0xB4, 0x23, 0x18)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A clean and a leaky run (hostile text in both), the leaky one again with the clean one as its control,
    and the leaderboard of the three."""
    from auditor.cli import main

    work = tmp_path_factory.mktemp("browser")
    cwd = Path.cwd()
    os.chdir(work)  # the run's default cache stays in the temp dir
    try:
        ds = write_dataset(work / "bench" / "colours.jsonl", hostile=True, n=24)
        clean = audit(work, ds, leak_every=0, model="clean-model", out="runs/clean")
        audit(work, ds, leak_every=2, model="leaky-model", out="runs/leaky")
        control = ["--control-run", str(clean)]  # a null of its own: listed on the board, not ranked
        leaky = audit(work, ds, leak_every=2, model="leaky-model", out="runs/leaky-vs-control", extra=control)
        assert main(["compare", str(work / "runs" / "*"), "--out", str(work / "board")]) == 0
    finally:
        os.chdir(cwd)
    return leaky, clean, work / "board"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    if not available():
        pytest.fail("chromium is missing: apt-get install -y chromium (.ci/run does)")
    with Chromium(tmp_path / "profile", width=1280, height=900) as b:
        yield b


def shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("AUDITOR_SCREENSHOTS", str(tmp_path)))
    d.mkdir(parents=True, exist_ok=True)
    return d


def load(browser: Chromium, page: Path, plots: int) -> Observed:
    seen = Observed()
    browser.open(page.resolve().as_uri(), seen)
    browser.wait_for(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {plots}")
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return seen


def box(browser: Chromium, selector: str) -> tuple[int, int, int, int]:
    js = f"document.querySelector({json.dumps(selector)}).getBoundingClientRect()"
    r = browser.evaluate(f"(b => [b.left, b.top + scrollY, b.right, b.bottom + scrollY])({js})")
    return int(r[0]), int(r[1]), int(r[2]), int(r[3])


def pixels(png: Path, area: tuple[int, int, int, int]) -> np.ndarray[Any, Any]:
    from PIL import Image

    with Image.open(png) as im:
        return np.asarray(im.convert("RGB").crop(area), dtype=int).reshape(-1, 3)


def region_stats(png: Path, area: tuple[int, int, int, int], colour: tuple[int, int, int]) -> tuple[float, int]:
    """Share of non-white pixels in the area, and how many pixels are close to the plot's colour."""
    px = pixels(png, area)
    inked = float((px.min(axis=1) < 235).mean())
    return inked, int((np.abs(px - np.array(colour)).sum(axis=1) < 60).sum())


def reddish(png: Path, area: tuple[int, int, int, int]) -> int:
    px = pixels(png, area)
    return int((px[:, 0] - px[:, 1] > 60).sum())


def assert_quiet(browser: Chromium, seen: Observed, page: Path) -> None:
    browser.drain(seen)
    assert seen.console == []
    assert [u for u in seen.requests if not u.startswith("data:")] == [page.resolve().as_uri()]


def test_report_html_in_chromium(runs: tuple[Path, Path, Path], browser: Chromium, tmp_path: Path) -> None:
    leaky = runs[0]
    page = leaky / "report.html"
    report = json.loads((leaky / "report.json").read_text(encoding="utf-8"))
    seen = load(browser, page, plots=3)
    assert browser.evaluate("document.querySelector('#verdict').dataset.verdict") == report["summary"]["verdict"]
    bars = browser.evaluate("document.querySelectorAll('#fig-ranks .bars .point').length")
    assert bars == max(it["n_orderings"] for it in report["items"])  # one bar per rank (empty ones flat)
    points = browser.evaluate("document.querySelectorAll('#fig-subjects .scatterlayer .point').length")
    assert points == len(report["summary"]["subjects"])
    assert browser.evaluate("document.querySelectorAll('#fig-statistic .barlayer .trace').length") == 2  # + control
    n_flagged = report["summary"]["n_flagged"]
    assert browser.evaluate("document.querySelectorAll('#flagged tbody tr').length") == n_flagged > 0
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    hostile_cells = browser.evaluate(
        f"[...document.querySelectorAll('#flagged td')].filter(td => td.textContent === {json.dumps(HOSTILE)}).length"
    )
    assert hostile_cells >= 1  # the hostile question is shown as text

    # search and sort, as a person would use them
    browser.evaluate("(() => { const b = document.querySelector('input.filter'); b.value = 'colour number 3';"
                     " b.dispatchEvent(new Event('input')); })()")  # fmt: skip
    shown = browser.evaluate("[...document.querySelectorAll('#flagged tbody tr')].filter(r => !r.hidden).length")
    want = sum(1 for it in report["items"] if it["flagged"] and "colour number 3" in it["question"].lower())
    assert shown == want and browser.evaluate("document.querySelector('#flagged-count').textContent").startswith(
        f"{want} of {n_flagged}"
    )
    browser.evaluate("(() => { const b = document.querySelector('input.filter'); b.value = '';"
                     " b.dispatchEvent(new Event('input')); })()")  # fmt: skip
    col = browser.evaluate("[...document.querySelectorAll('#flagged th')].findIndex(t => t.textContent === 'margin')")
    read = f"[...document.querySelectorAll('#flagged tbody tr')].map(r => parseFloat(r.cells[{col}].dataset.v))"
    browser.evaluate(f"document.querySelectorAll('#flagged th')[{col}].click()")
    ascending = browser.evaluate(read)
    assert ascending == sorted(ascending)
    browser.evaluate(f"document.querySelectorAll('#flagged th')[{col}].click()")
    assert browser.evaluate(read) == sorted(ascending, reverse=True)

    shot = browser.screenshot(shots_dir(tmp_path) / "report.png")
    inked, blue = region_stats(shot, box(browser, "#fig-ranks"), PLOT_BLUE)
    assert inked > 0.03 and blue > 500  # the rank bars are drawn
    inked, red = region_stats(shot, box(browser, "#fig-subjects"), LEAK_RED)
    assert inked > 0.01 and red > 20  # the significant subject's diamond and interval
    print(f"\nscreenshot: {shot} ({page.stat().st_size} bytes of HTML)")
    assert_quiet(browser, seen, page)


def test_compare_page_in_chromium(runs: tuple[Path, Path, Path], browser: Chromium, tmp_path: Path) -> None:
    page = runs[2] / "compare.html"
    board = json.loads((runs[2] / "compare.json").read_text(encoding="utf-8"))
    seen = load(browser, page, plots=1)
    assert browser.evaluate("document.querySelectorAll('#fig-heatmap .hm').length") == 1
    rows = browser.evaluate("[...document.querySelectorAll('#board tbody tr')].map(r => r.cells[2].textContent)")
    assert rows == [r["model"] for r in board["rows"]] == ["leaky-model", "clean-model", "leaky-model"]
    assert [r["rank"] for r in board["rows"]] == [1, 2, None]
    # the mouse over the top-left cell (the leaky model on the benchmark), as a person would point at it
    left, top, right, bottom = browser.evaluate(
        "(b => [b.left, b.top, b.right, b.bottom])(document.querySelector('#fig-heatmap .nsewdrag')"
        ".getBoundingClientRect())"
    )
    n_models = len({r["model"] for r in board["rows"]})
    x, y = left + (right - left) / 2, top + (bottom - top) / (2 * n_models)
    browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
    tip = browser.wait_for("document.querySelector('#fig-heatmap .hoverlayer').textContent")
    top = board["rows"][0]
    assert "leaky-model" in tip and f"95% CI {top['ci_low']:.1%} to {top['ci_high']:.1%}" in tip
    shot = browser.screenshot(shots_dir(tmp_path) / "compare.png")
    inked, _ = region_stats(shot, box(browser, "#fig-heatmap"), LEAK_RED)
    assert inked > 0.05 and reddish(shot, box(browser, "#fig-heatmap")) > 1000  # the leaky model's cell
    print(f"\nscreenshot: {shot} ({page.stat().st_size} bytes of HTML)")
    assert_quiet(browser, seen, page)
