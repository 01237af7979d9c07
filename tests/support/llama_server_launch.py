"""Start llama-cpp-python's server (`python -m llama_cpp.server`) with a test-side speed patch.

Run with the llama venv's interpreter (scripts/setup_llama_env.sh); the arguments are the server's:

    .venv-llama/bin/python tests/support/llama_server_launch.py --model M.gguf --logits_all true --port P ...

THE PATCH (test-side only, never part of the auditor): for echo with logprobs, llama-cpp-python 0.3.36
(`Llama._create_completion`, module `llama_cpp.llama`) ranks the whole vocabulary for every prompt
token as `list(sorted(zip(row, range(len(row))), reverse=True))`, in pure Python, only to keep the
first `logprobs` pairs of it. That takes ~6 s for an 89-token prompt with SmolLM2's 49k vocabulary and
~46 s with Gemma-3's 262k. `install_speed_patch()` shadows the names `zip`, `sorted` and `list` in
that one module's globals: `zip(ndarray_row, range(n))` becomes a `RowWithIndex`,
`sorted(<that>, reverse=True)` a `DescendingPairs` that computes only the slice it is asked for
with numpy, and `list(<that>)` returns it unchanged. Every other call falls through to the builtins.

The pairs are the same as the stock path's, in the same order, with the same types: `(np.float32
value, int index)`, descending by value and, among equal values, by index (what sorting the tuples
with reverse=True gives). No logprob is computed differently: `token_logprobs` does not go through
this code at all. `tests/support/llama_tools.py check-patch GGUF` runs one echo completion with `logprobs=5`
in-process with and without the patch and exits non-zero unless the two responses are equal (ids and
timestamps aside); tests/integration/test_llamacpp.py runs that check for SmolLM2 and Gemma-3.

OPTION `--fresh-kv` (ours, taken off the argument list before the server sees it; also test-side): every
completion starts from an empty KV cache (`Llama.reset()` first), where the stock server reuses the
prefix it shares with the previous prompt. With Gemma-3-270M that reuse changes the logprobs of the
last prompt tokens by up to ~0.07 nats depending on which prompt came before (measured here against a
fresh evaluation; SmolLM2 is unaffected, max 4e-7), i.e. inside the scored span of the paper template.
With `--fresh-kv` the served logprobs equal a fresh in-process evaluation, at the cost of the reuse's
speed-up.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

PATCHED_MODULE = "llama_cpp.llama"


class RowWithIndex:
    """What `zip(row, range(len(row)))` stands for: iterating it gives exactly that zip's pairs."""

    def __init__(self, row: npt.NDArray[Any]) -> None:
        self.row = row

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return builtins.zip(self.row, builtins.range(len(self.row)), strict=True)


class DescendingPairs(Sequence[tuple[Any, int]]):
    """`sorted(zip(row, range(len(row))), reverse=True)` as a lazy sequence; slices cost O(n + k log k)."""

    def __init__(self, row: npt.NDArray[Any]) -> None:
        self.row = row

    def __len__(self) -> int:
        return len(self.row)

    def _top(self, k: int) -> npt.NDArray[np.intp]:
        """Indices of the first k pairs in stock order: value descending, then index descending."""
        n = len(self.row)
        k = max(0, min(k, n))
        if k == 0:
            return np.empty(0, dtype=np.intp)
        values = self.row
        if k < n:
            # Every index whose value ties with or beats the k-th largest: the order inside is settled below.
            threshold = np.partition(values, n - k)[n - k]
            candidates = np.flatnonzero(values >= threshold)
        else:
            candidates = np.arange(n)
        # lexsort: last key primary. Ascending (value, index), reversed = stock's reverse=True order.
        order = np.lexsort((candidates, values[candidates]))[::-1]
        top: npt.NDArray[np.intp] = candidates[order][:k]
        return top

    def _pairs(self, indices: npt.NDArray[np.intp]) -> list[tuple[Any, int]]:
        return [(self.row[i], int(i)) for i in indices]

    @overload
    def __getitem__(self, index: int) -> tuple[Any, int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[Any, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Any, int] | list[tuple[Any, int]]:
        n = len(self.row)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1 and start == 0:
                return self._pairs(self._top(stop))
            return self._pairs(self._top(n))[index]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("DescendingPairs index out of range")
        return self._pairs(self._top(index + 1))[index]

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return iter(self._pairs(self._top(len(self.row))))


def _zip(*iterables: Any, **kwargs: Any) -> Any:
    if (
        len(iterables) == 2
        and not kwargs
        and isinstance(iterables[0], np.ndarray)
        and iterables[0].ndim == 1
        and isinstance(iterables[1], builtins.range)
        and iterables[1] == builtins.range(len(iterables[0]))
    ):
        return RowWithIndex(iterables[0])
    return builtins.zip(*iterables, **kwargs)  # noqa: B905 (the caller's own arguments, as given)


def _sorted(iterable: Iterable[Any], /, *, key: Any = None, reverse: bool = False) -> Any:
    if isinstance(iterable, RowWithIndex) and key is None and reverse:
        return DescendingPairs(iterable.row)
    return builtins.sorted(iterable, key=key, reverse=reverse)


class _ListMeta(type):
    """`list(x)` that hands a DescendingPairs back as is; `isinstance(y, list)` unchanged."""

    def __call__(cls, *args: Any) -> Any:
        if len(args) == 1 and isinstance(args[0], DescendingPairs):
            return args[0]
        return builtins.list(*args)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, builtins.list)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, builtins.list)


class _List(metaclass=_ListMeta):
    pass


def install_speed_patch() -> None:
    """Shadow zip/sorted/list in `llama_cpp.llama` (see the module docstring). Idempotent."""
    module = importlib.import_module(PATCHED_MODULE)
    module.zip = _zip  # type: ignore[attr-defined]
    module.sorted = _sorted  # type: ignore[attr-defined]
    module.list = _List  # type: ignore[attr-defined]


def remove_speed_patch() -> None:
    module = importlib.import_module(PATCHED_MODULE)
    for name in ("zip", "sorted", "list"):
        module.__dict__.pop(name, None)


def install_fresh_kv() -> None:
    """Every `Llama.create_completion` starts from an empty KV cache (no prefix reuse). Idempotent."""
    llama = importlib.import_module(PATCHED_MODULE).Llama
    stock = llama.create_completion
    if getattr(stock, "fresh_kv", False):
        return

    def create_completion(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.reset()
        return stock(self, *args, **kwargs)

    create_completion.fresh_kv = True  # type: ignore[attr-defined]
    llama.create_completion = create_completion


def main(argv: list[str]) -> int:
    install_speed_patch()
    if "--fresh-kv" in argv:
        argv = [a for a in argv if a != "--fresh-kv"]
        install_fresh_kv()
    from llama_cpp.server.__main__ import main as server_main

    sys.argv = ["llama_cpp.server", *argv]
    server_main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
