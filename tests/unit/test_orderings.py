from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from auditor.endpoint.config import EndpointConfig
from auditor.errors import TemplateError, UsageError
from auditor.input.items import Item
from auditor.prompts.orderings import MMLU, PAPER, load_template, orderings_for
from auditor.run.config import AuditConfig

ITEM = Item("x:0", "What is 2+2?", ("3", "4", "5", "6"), 1, "math", "x.csv", 0)


def test_paper_template_is_the_reference_string() -> None:
    r = PAPER.render(ITEM, (0, 1, 2, 3))
    assert r.text == "\nWhat is 2+2?:\nA:3\nB:4\nC:5 \nD:6\n"
    assert r.text[r.span_start :] == "A:3\nB:4\nC:5 \nD:6\n"
    assert r.span_end == len(r.text)


def test_labels_stay_contents_move() -> None:
    r = PAPER.render(ITEM, (3, 2, 1, 0))
    assert r.text.endswith("A:6\nB:5\nC:4 \nD:3\n")


def test_mmlu_template_span_excludes_answer_cue() -> None:
    r = MMLU.render(ITEM, (0, 1, 2, 3))
    assert r.text == "What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    assert r.text[r.span_start : r.span_end] == "A. 3\nB. 4\nC. 5\nD. 6\n"


def test_span_prefix_identical_across_orderings() -> None:
    prefixes = set()
    for p in orderings_for(4, max_orderings=120, seed=0, item_id="x"):
        r = PAPER.render(ITEM, p)
        prefixes.add(r.text[: r.span_start])
    assert len(prefixes) == 1


def test_all_orderings_when_they_fit() -> None:
    perms = orderings_for(4, max_orderings=120, seed=0, item_id="a")
    assert len(perms) == 24 and len(set(perms)) == 24
    assert perms[0] == (0, 1, 2, 3)


def test_sampled_orderings_seeded_and_distinct() -> None:
    a = orderings_for(10, max_orderings=50, seed=1, item_id="q")
    b = orderings_for(10, max_orderings=50, seed=1, item_id="q")
    c = orderings_for(10, max_orderings=50, seed=2, item_id="q")
    assert a == b and a != c
    assert a[0] == tuple(range(10)) and len(set(a)) == 50
    assert math.factorial(5) == len(orderings_for(5, max_orderings=120, seed=0, item_id="q"))


def test_max_orderings_too_small() -> None:
    # the flag is refused where every flag is checked (auditor/run/config.py), before anything runs
    with pytest.raises(UsageError, match="--max-orderings must be at least 2"):
        AuditConfig(EndpointConfig("http://x.test/v1"), Path("d"), Path("o"), Path("c"), max_orderings=1)
    with pytest.raises(ValueError):
        orderings_for(4, max_orderings=1, seed=0, item_id="q")


def test_user_template_file(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"prompt": "Q: {question}\n{options}A:", "option": "({label}) {text}\n"}))
    t = load_template(str(f))
    r = t.render(ITEM, (1, 0, 2, 3))
    assert r.text == "Q: What is 2+2?\n(A) 4\n(B) 3\n(C) 5\n(D) 6\nA:"
    assert r.text[r.span_start : r.span_end].startswith("(A) 4")


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "{options}", "option": "{label} {text}"},
        {"prompt": "{options}{question}", "option": "{label} {text}"},
        {"prompt": "{question}{options}", "option": "{text}"},
        {"prompt": "{question}{options}", "option": "{label}{text}", "extra": 1},
    ],
)
def test_bad_user_templates(tmp_path: Path, body: dict[str, object]) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps(body))
    with pytest.raises(TemplateError):
        load_template(str(f))


def test_unknown_template_name() -> None:
    with pytest.raises(TemplateError, match="unknown template"):
        load_template("nope")
