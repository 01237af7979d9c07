"""report.html: written by `auditor run`, the same verdict and numbers as report.json, self-contained,
hostile item text escaped (never markup, never able to end a script block)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import respx

from auditor.cli import main
from auditor.input.items import load_items
from auditor.prompts.orderings import BUILTIN
from tests.support.fakeserver import FakeServer

BASE = "http://fake.test/v1"
HOSTILE = "</script><img src=x onerror=alert(1)>"


class Page(HTMLParser):
    """Every tag with its attributes, the text of script blocks, and each table's cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.tables: dict[str, list[list[tuple[dict[str, str | None], str]]]] = {}
        self._script: dict[str, str | None] | None = None
        self._table: str | None = None
        self._cell: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self._script, self._text = a, []
        elif tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell, self._text = a, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append((self._cell, "".join(self._text)))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._script is not None or self._cell is not None:
            self._text.append(data)


def parse(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    return text, page


def figures(page: Page) -> dict[str, dict[str, Any]]:
    return {a["data-target"] or "": json.loads(body) for a, body in page.scripts if a.get("type") == "application/json"}


def write_dataset(path: Path, hostile: bool = False, n: int = 16) -> Path:
    rows = []
    for i in range(n):
        text = HOSTILE if hostile and i == 0 else f"Which colour is number {i}?"
        rows.append({
            "id": f"{HOSTILE}{i}" if hostile and i < 2 else f"q{i}",
            "subject": HOSTILE if hostile and i % 2 else ["colours", "numbers"][i % 2],
            "question": text,
            "choices": [f"{text} red", f"blue {i}", f"green {i}", HOSTILE if hostile else f"grey {i}"],
            "answer": i % 4,
        })  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def audit(
    tmp_path: Path, dataset: Path, *, leak_every: int = 2, model: str = "fake-model", out: str = "run",
    template: str = "paper", extra: Sequence[str] = (), expect_rc: int = 0,
) -> Path:  # fmt: skip
    items = load_items(dataset).items
    leaked = items[::leak_every] if leak_every else []
    preferred = {BUILTIN[template].render(it, tuple(range(len(it.options)))).text for it in leaked}
    server = FakeServer(model=model, preferred=preferred)
    with respx.mock(assert_all_called=False) as router:
        router.route(host="fake.test").mock(side_effect=server.handler)
        rc = main(["run", "--base-url", BASE, "--model", model, "--dataset", str(dataset), "--template", template,
                   "--out", str(tmp_path / out), "--cache", str(tmp_path / "c.sqlite"), *extra])  # fmt: skip
    assert rc == expect_rc
    return tmp_path / out


def test_run_writes_report_html_with_the_report_json_numbers(tmp_path: Path) -> None:
    out = audit(tmp_path, write_dataset(tmp_path / "ds.jsonl"))
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    s = report["summary"]
    text, page = parse(out / "report.html")
    verdicts = [a.get("data-verdict") for tag, a in page.tags if tag == "section" and a.get("id") == "verdict"]
    assert verdicts == [s["verdict"]] and s["verdict"] == "leakage"
    assert s["verdict_text"] in text.replace("&#x27;", "'")
    figs = figures(page)
    assert set(figs) == {"fig-ranks", "fig-subjects", "fig-statistic"}
    bars = figs["fig-ranks"]["data"][0]["y"]
    assert bars == [sum(it["rank_random"] == r for it in report["items"]) for r in range(1, 25)]
    expected = figs["fig-ranks"]["data"][1]["y"]
    assert abs(sum(expected) - len(report["items"])) < 1e-9 and bars[0] >= 8  # 8 planted
    subjects = {y: x for trace in figs["fig-subjects"]["data"] for y, x in zip(trace["y"], trace["x"], strict=True)}
    assert subjects == {row["subject"]: row["leaked_fraction"]["estimate"] for row in s["subjects"]}
    flagged = [row for row in page.tables["flagged"][1:]]
    assert len(flagged) == s["n_flagged"] > 0
    ids = {row[0][1] for row in flagged}
    assert ids == {it["id"] for it in report["items"] if it["flagged"]}
    assert all(it["question"] and len(it["options"]) == 4 for it in report["items"])


def test_report_html_is_self_contained(tmp_path: Path) -> None:
    out = audit(tmp_path, write_dataset(tmp_path / "ds.jsonl"))
    _, page = parse(out / "report.html")
    for tag, attrs in page.tags:
        for name in ("src", "href", "action", "data", "poster"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value or value.startswith("#"), (tag, name, value)  # nothing fetched, only in-page links
        assert tag not in ("link", "iframe", "object", "embed", "img")
    executable = [body for a, body in page.scripts if a.get("type") is None]
    assert len(executable) == 2 and "Plotly" in executable[1] and len(executable[0]) > 1_000_000
    csp = next(a["content"] or "" for tag, a in page.tags if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "unsafe-eval" not in csp
    for body in executable:  # the policy lets exactly our two scripts run
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp


def test_hostile_item_text_is_escaped_everywhere(tmp_path: Path) -> None:
    out = audit(tmp_path, write_dataset(tmp_path / "ds.jsonl", hostile=True), leak_every=1)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert any(it["question"] == HOSTILE and it["flagged"] for it in report["items"])
    text, page = parse(out / "report.html")
    assert "<img" not in text.lower() and HOSTILE not in text
    assert not [t for t, _ in page.tags if t == "img"]
    assert len([a for a, _ in page.scripts if a.get("type") is None]) == 2  # no script block was ended early
    for _, body in page.scripts:
        if body.startswith("{"):
            assert not re.search(r"</|<!--", body)
    cells = [cell for row in page.tables["flagged"] for _, cell in row]
    assert HOSTILE in cells  # shown as text, unharmed
    figs = figures(page)
    labels = [y for trace in figs["fig-subjects"]["data"] for y in trace["y"]]
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in labels  # plotly shows entities as text


def test_an_undecided_run_is_grey_and_reports_get_the_usual_file_mode(tmp_path: Path) -> None:
    """Two items cannot decide anything (too_few_scored): the verdict box must not wear the green of
    "no evidence". The reports are ordinary files (0644 under umask 022), not the 0600 of a temp file."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        out = audit(tmp_path, write_dataset(tmp_path / "ds.jsonl", n=2), leak_every=0, expect_rc=6)  # 6: no verdict
    finally:
        os.umask(old)
    s = json.loads((out / "report.json").read_text(encoding="utf-8"))["summary"]
    assert s["verdict"] == "too_few_scored"
    _, page = parse(out / "report.html")
    (cls,) = [a.get("class") for tag, a in page.tags if tag == "section" and a.get("id") == "verdict"]
    assert cls == "verdict undecided"
    for name in ("report.json", "report.md", "report.html"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
