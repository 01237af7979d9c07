"""report.json's writer: one item per line (C encoder) and still the same JSON document."""

from __future__ import annotations

import json

from auditor.report.build import dumps_report


def test_items_one_per_line_same_document() -> None:
    data = {"summary": {"n": 2, "note": '"items": [] inside a string'}, "items": [{"id": "a", "scores": [-1.5, -2.0]},
            {"id": "b\u00e9", "scores": []}], "provenance": {"x": None}}  # fmt: skip
    text = dumps_report(data)
    assert json.loads(text) == data and text.endswith("\n")
    assert '  {"id": "a", "scores": [-1.5, -2.0]},\n' in text
    assert dumps_report({**data, "items": []}) == json.dumps({**data, "items": []}, indent=1, ensure_ascii=False) + "\n"
