from __future__ import annotations

from collections import Counter
from pathlib import Path

from auditor.input.items import load_items
from auditor.input.sampling import stratified_sample
from tests.conftest import SHARED_DATA


def test_stratified_sample_of_real_mmlu() -> None:
    items = load_items(SHARED_DATA / "mmlu" / "test", skip_invalid=True).items
    a = stratified_sample(items, 200, seed=0)
    assert len(a) == 200 and len({it.id for it in a}) == 200
    assert a == stratified_sample(items, 200, seed=0) and a != stratified_sample(items, 200, seed=1)
    per = Counter(it.subject for it in a)
    total = Counter(it.subject for it in items)
    for subject, n in total.items():  # every subject gets its proportional share, give or take one
        assert abs(per.get(subject, 0) - 200 * n / len(items)) < 1.0
    order = {it.id: k for k, it in enumerate(items)}
    assert [order[it.id] for it in a] == sorted(order[it.id] for it in a)  # load order kept


def test_sample_larger_than_dataset_is_everything(tmp_path: Path) -> None:
    (tmp_path / "x_test.csv").write_text("Q1?,a,b,c,d,A\nQ2?,a,b,c,d,B\n")
    items = load_items(tmp_path).items
    assert stratified_sample(items, 5, seed=0) == items
