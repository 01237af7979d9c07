"""Which orderings of an item's options are scored, and how each is rendered into a prompt.

An ordering is a tuple `perm` of published option indices: position j shows option `perm[j]`.
Ordering 0 is always the published order (0, 1, ..., n-1). Labels (A, B, ...) stay in place;
only the option contents move.

A rendered prompt carries the character span to score: from the first option label to the end
of the options block (each option line includes its line break).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auditor.errors import TemplateError
from auditor.input.items import LABELS, Item

Ordering = tuple[int, ...]


def orderings_for(n_options: int, *, max_orderings: int, seed: int, item_id: str) -> list[Ordering]:
    """All n! orderings when they fit in `max_orderings`, else a seeded sample of that many.

    The published order is always first. The sample depends only on (seed, item id, n), so adding
    or removing other items never changes an item's orderings.
    """
    if max_orderings < 2:
        raise ValueError("max_orderings must be at least 2 (the published order and one other)")
    identity = tuple(range(n_options))
    if math.factorial(n_options) <= max_orderings:
        return list(_all_orderings(n_options))
    digest = hashlib.sha256(f"{seed}\x00{item_id}\x00{n_options}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    chosen: list[Ordering] = [identity]
    seen = {identity}
    while len(chosen) < max_orderings:
        p = tuple(int(x) for x in rng.permutation(n_options))
        if p not in seen:
            seen.add(p)
            chosen.append(p)
    return chosen


@functools.cache
def _all_orderings(n_options: int) -> tuple[Ordering, ...]:
    """Every ordering, published first (one shared copy per n: items hold references, not tuples)."""
    identity = tuple(range(n_options))
    return (identity, *(p for p in itertools.permutations(identity) if p != identity))


@dataclass(frozen=True)
class Rendered:
    text: str
    span_start: int
    span_end: int


@dataclass(frozen=True)
class Template:
    """`prompt` holds `{question}` and `{options}`; `option` renders one option line."""

    name: str
    prompt: str
    option: str
    overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("{question}", "{options}"):
            if self.prompt.count(key) != 1:
                raise TemplateError(f"template {self.name!r}: 'prompt' must contain {key} exactly once")
        if self.prompt.index("{question}") > self.prompt.index("{options}"):
            raise TemplateError(f"template {self.name!r}: {{question}} must come before {{options}}")
        for pattern in (self.option, *self.overrides.values()):
            if "{text}" not in pattern or "{label}" not in pattern:
                raise TemplateError(f"template {self.name!r}: 'option' must contain {{label}} and {{text}}")

    def render(self, item: Item, perm: Ordering) -> Rendered:
        lines = []
        for pos, idx in enumerate(perm):
            label = LABELS[pos]
            pattern = self.overrides.get(label, self.option)
            lines.append(pattern.replace("{label}", label).replace("{text}", item.options[idx]))
        block = "".join(lines)
        head, rest = self.prompt.split("{question}")
        mid, tail = rest.split("{options}")
        prefix = head + item.question + mid
        return Rendered(prefix + block + tail, len(prefix), len(prefix) + len(block))

    def render_all(self, item: Item, perms: Sequence[Ordering]) -> list[Rendered]:
        """`render` for each ordering, with each option line built once (not once per ordering)."""
        n = len(item.options)
        lines = [[(self.overrides.get(LABELS[pos], self.option)).replace("{label}", LABELS[pos]).replace("{text}", text)
                  for text in item.options] for pos in range(n)]  # fmt: skip
        head, rest = self.prompt.split("{question}")
        mid, tail = rest.split("{options}")
        prefix = head + item.question + mid
        start = len(prefix)
        out = []
        for perm in perms:
            block = "".join([lines[pos][idx] for pos, idx in enumerate(perm)])
            out.append(Rendered(prefix + block + tail, start, start + len(block)))
        return out

    def identity(self) -> dict[str, object]:
        return {"name": self.name, "prompt": self.prompt, "option": self.option, "overrides": self.overrides}


# The reference implementation's template, quirks included: a colon after the question, "A:x"
# option lines, and a stray space after option C's text.
PAPER = Template(
    name="paper", prompt="\n{question}:\n{options}", option="{label}:{text}\n", overrides={"C": "{label}:{text} \n"}
)
MMLU = Template(name="mmlu", prompt="{question}\n{options}Answer:", option="{label}. {text}\n")
BUILTIN = {"paper": PAPER, "mmlu": MMLU}


def load_template(spec: str) -> Template:
    """A built-in name (`paper`, `mmlu`) or a JSON file `{"prompt": ..., "option": ...}`."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    path = Path(spec)
    if not path.is_file():
        raise TemplateError(f"unknown template {spec!r}: use paper, mmlu, or a JSON template file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TemplateError(f"{path}: cannot read template: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str) or not isinstance(data.get("option"), str):
        raise TemplateError(f'{path}: expected {{"prompt": "...{{question}}...{{options}}...", "option": "..."}}')
    unknown = set(data) - {"prompt", "option"}
    if unknown:
        raise TemplateError(f"{path}: unknown template keys {sorted(unknown)}")
    return Template(name=f"file:{path.name}", prompt=data["prompt"], option=data["option"])
