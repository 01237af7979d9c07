"""Synthetic benchmarks and a fake endpoint with planted leakage, for the score-impact, export, results
database and Python API tests (no ../shared needed).

A "leaked" item's published-order prompt is favoured by the fake server, and so are its harness prompts
for the correct answer (auditor/prompts/harness.py): the model "knows" leaked items, as a model trained
on them would. The bonus is large enough to beat the fake server's spread of per-token logprobs (-1 to -5)
on the one or few tokens of a harness continuation.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from pathlib import Path

import respx

from auditor.input.items import LABELS, Item, load_items
from auditor.prompts.harness import harness_prompts
from auditor.prompts.orderings import PAPER
from tests.support.fakeserver import FakeServer

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "river", "stone", "cloud", "apple"]


def rows(n: int, seed: int = 7, options: int = 4) -> list[dict[str, object]]:
    """`n` items over three subjects; answers spread over the options."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        opts = [f"option {i}-{k} {rng.choice(WORDS)} {rng.choice(WORDS)}" for k in range(options)]
        out.append({"id": f"q{i}", "subject": ["alpha", "beta", "gamma"][i % 3],
                    "question": f"Question number {i}: which {rng.choice(WORDS)} is it?", "choices": opts,
                    "answer": LABELS[(i * 7) % options]})  # fmt: skip
    return out


def write_jsonl(path: Path, items: Sequence[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return path


def write_mmlu_dir(path: Path, items: Sequence[dict[str, object]]) -> Path:
    """MMLU's layout: one headerless CSV per subject, `<subject>_test.csv` (question, options..., letter)."""
    path.mkdir(parents=True, exist_ok=True)
    by_subject: dict[str, list[list[str]]] = {}
    for r in items:
        choices = [str(c) for c in r["choices"]]  # type: ignore[attr-defined]
        by_subject.setdefault(str(r["subject"]), []).append([str(r["question"]), *choices, str(r["answer"])])
    for subject, lines in by_subject.items():
        with open(path / f"{subject}_test.csv", "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows(lines)
    return path


def preferred(items: Sequence[Item], leaked: Sequence[Item]) -> set[str]:
    texts = set()
    for it in leaked:
        texts.add(PAPER.render(it, tuple(range(len(it.options)))).text)
        if it.answer is not None:
            h = harness_prompts(it)
            texts |= {h.letter[it.answer].text, h.cloze[it.answer].text}
    return texts


def planted_server(dataset: Path, every: int = 3, model: str = "fake-model") -> tuple[FakeServer, list[Item]]:
    """A fake endpoint that has 'seen' every `every`-th item of `dataset` (none for 0); returns it and those."""
    items = load_items(dataset).items
    leaked = items[::every] if every else []
    return FakeServer(model=model, preferred=preferred(items, leaked), bonus=400.0), leaked


def route(server: FakeServer, host: str = "fake.test") -> respx.MockRouter:
    router = respx.mock(assert_all_called=False)
    router.route(host=host).mock(side_effect=server.handler)
    return router
