"""The test-side speed patch for llama-cpp-python's server (tests/support/llama_server_launch.py) must give the
stock code's pairs: `list(sorted(zip(row, range(len(row))), reverse=True))[:k]`, same order, same types.
Pure numpy, no llama_cpp needed; the real comparison with the stock server path is in
tests/integration/test_llamacpp.py."""

from __future__ import annotations

import builtins
import sys
import types

import numpy as np
import pytest

from tests.support import llama_server_launch as launch


def stock(row: np.ndarray, k: int) -> list[tuple[object, int]]:
    return builtins.list(builtins.sorted(builtins.zip(row, builtins.range(len(row)), strict=True), reverse=True))[:k]


def patched(row: np.ndarray, k: int) -> list[tuple[object, int]]:
    pairs = launch._List(launch._sorted(launch._zip(row, builtins.range(len(row))), reverse=True))
    assert isinstance(pairs, launch.DescendingPairs)
    out: list[tuple[object, int]] = pairs[:k]
    return out


@pytest.mark.parametrize("k", [0, 1, 5, 37, 400])
def test_top_k_equals_stock_sort_with_ties_and_infinities(k: int) -> None:
    rng = np.random.default_rng(k)
    row = np.round(rng.normal(size=400), 1).astype(np.float32)  # many ties
    row[rng.choice(400, 30, replace=False)] = -np.inf
    want, got = stock(row, k), patched(row, k)
    assert got == want
    assert [type(v) for v, _ in got] == [type(v) for v, _ in want]
    assert all(type(i) is int for _, i in got)


def test_other_slices_iteration_and_indexing_equal_stock() -> None:
    row = np.array([0.5, -1.0, 0.5, 2.0, -np.inf, 0.5], dtype=np.float32)
    full = stock(row, len(row))
    pairs = launch._sorted(launch._zip(row, builtins.range(len(row))), reverse=True)
    assert builtins.list(pairs) == full and len(pairs) == len(full)
    assert pairs[2:5] == full[2:5] and pairs[::-1] == full[::-1]
    assert pairs[0] == full[0] and pairs[-1] == full[-1]
    with pytest.raises(IndexError):
        pairs[6]


def test_everything_else_falls_through_to_builtins() -> None:
    assert launch._List([3, 1]) == [3, 1] and launch._List() == []
    assert isinstance([1], launch._List) and not isinstance((1,), launch._List)
    assert isinstance(launch._zip([1, 2], "ab"), zip)
    assert launch._sorted([3, 1, 2]) == [1, 2, 3] and launch._sorted([3, 1], reverse=True) == [3, 1]
    row = np.zeros(3, dtype=np.float32)
    assert isinstance(launch._zip(row, range(2)), zip)  # not the (row, range(len(row))) pattern
    assert launch._sorted(launch._zip(row, range(3)), key=lambda p: p[1]) == [(0.0, 0), (0.0, 1), (0.0, 2)]


def test_install_shadows_only_the_named_module(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType(launch.PATCHED_MODULE)
    monkeypatch.setitem(sys.modules, launch.PATCHED_MODULE, fake)
    launch.install_speed_patch()
    assert fake.sorted is launch._sorted and fake.zip is launch._zip and fake.list is launch._List
    launch.remove_speed_patch()
    assert not hasattr(fake, "sorted") and builtins.sorted is not launch._sorted
