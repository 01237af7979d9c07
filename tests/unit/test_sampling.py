from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from auditor.input.catalog import bundled
from auditor.input.items import Item, load_items
from auditor.input.sampling import per_subject_sample, stratified_sample


def check_proportional(items: list[Item], n: int) -> None:
    a = stratified_sample(items, n, seed=0)
    assert len(a) == n and len({it.id for it in a}) == n
    assert a == stratified_sample(items, n, seed=0) and a != stratified_sample(items, n, seed=1)
    per = Counter(it.subject for it in a)
    total = Counter(it.subject for it in items)
    for subject, k in total.items():  # every subject gets its proportional share, give or take one
        assert abs(per.get(subject, 0) - n * k / len(items)) < 1.0
    order = {it.id: k for k, it in enumerate(items)}
    assert [order[it.id] for it in a] == sorted(order[it.id] for it in a)  # load order kept


def test_stratified_sample_of_the_bundled_mmlu_and_mmlu_pro() -> None:
    check_proportional(load_items(bundled("mmlu-pro").path).items, 50)
    check_proportional(load_items(bundled("mmlu").path).items, 100)


@pytest.mark.shared_data
def test_stratified_sample_of_real_mmlu(shared_data: Path) -> None:
    check_proportional(load_items(shared_data / "mmlu" / "test", skip_invalid=True).items, 200)


def test_per_subject_sample_takes_k_of_each_and_all_of_small_subjects() -> None:
    items = load_items(bundled("mmlu-pro").path).items  # 10 per category
    two = per_subject_sample(items, 2, seed=0)
    assert Counter(it.subject for it in two) == dict.fromkeys({it.subject for it in items}, 2)
    assert two == per_subject_sample(items, 2, seed=0) and two != per_subject_sample(items, 2, seed=1)
    assert per_subject_sample(items, 50, seed=0) == items


def test_sample_larger_than_dataset_is_everything(tmp_path: Path) -> None:
    (tmp_path / "x_test.csv").write_text("Q1?,a,b,c,d,A\nQ2?,a,b,c,d,B\n")
    items = load_items(tmp_path).items
    assert stratified_sample(items, 5, seed=0) == items
