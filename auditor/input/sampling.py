"""A seeded, subject-stratified sample of items (`--items N`): every subject gets its share."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from auditor.input.items import Item


def stratified_sample(items: Sequence[Item], n: int, seed: int) -> list[Item]:
    """`n` items, allocated to subjects in proportion to their size (largest remainder), drawn at random
    within each subject with `seed`; returned in load order. All items when n >= len(items)."""
    if n >= len(items):
        return list(items)
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        by_subject[it.subject].append(i)
    subjects = sorted(by_subject)
    exact = [n * len(by_subject[s]) / len(items) for s in subjects]
    quota = [int(x) for x in exact]
    for k in sorted(range(len(subjects)), key=lambda k: (quota[k] - exact[k], subjects[k]))[: n - sum(quota)]:
        quota[k] += 1
    chosen: list[int] = []
    for s, q in zip(subjects, quota, strict=True):
        digest = hashlib.sha256(f"{seed}\x00{s}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        chosen += [int(x) for x in rng.choice(by_subject[s], size=q, replace=False)]
    return [items[i] for i in sorted(chosen)]


def per_subject_sample(items: Sequence[Item], k: int, seed: int) -> list[Item]:
    """`k` items of every subject (all of a subject with fewer), drawn at random within each subject with
    `seed` as `stratified_sample` draws them; returned in load order."""
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        by_subject[it.subject].append(i)
    chosen: list[int] = []
    for s in sorted(by_subject):
        digest = hashlib.sha256(f"{seed}\x00{s}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        pool = by_subject[s]
        chosen += [int(x) for x in rng.choice(pool, size=min(k, len(pool)), replace=False)]
    return [items[i] for i in sorted(chosen)]
