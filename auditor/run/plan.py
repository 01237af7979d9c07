"""What an audit will score, decided without the network: the items (loaded, validated, sampled, and
for `--sequential` put in a seeded order with some set aside), their orderings and rendered prompts.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, overload

import numpy as np

from auditor.analysis.assess import load_control
from auditor.errors import UsageError
from auditor.input.catalog import Bundled, Selection, describe, resolve
from auditor.input.export import check_export_target
from auditor.input.items import Item, LoadResult, load_items
from auditor.input.sampling import stratified_sample
from auditor.input.sensitivity import option_set_key, order_sensitivity, representative
from auditor.prompts.designs import Design, parse_design
from auditor.prompts.harness import HarnessPrompts, harness_count, harness_prompts
from auditor.prompts.orderings import Ordering, Rendered, Template, load_template
from auditor.run.config import AuditConfig

T = TypeVar("T")
WINDOW = 512  # items whose rendered prompts are kept (the scheduler works on a few dozen at a time)


class Lazy(Sequence[T]):
    """A sequence whose element i is made when asked for and kept for the last WINDOW ones used only: an
    audit never holds all its prompts' text (MMLU's first 12,500 items, 267k prompts, held 217 MB of it)."""

    def __init__(self, make: Callable[[int], T], n: int) -> None:
        self._make, self._n = make, n
        self._recent: OrderedDict[int, T] = OrderedDict()

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        j = i + self._n if i < 0 else i
        if not 0 <= j < self._n:
            raise IndexError(i)
        value = self._recent.get(j)
        if value is None:
            value = self._recent[j] = self._make(j)
            if len(self._recent) > WINDOW:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(j)
        return value


@dataclass
class Plan:
    load: LoadResult
    items: list[Item]  # what will be scored, in scoring order
    template: Template
    orderings: list[list[Ordering]]
    design: Design
    candidates: list[Item]  # the selection before --sequential set items aside
    set_aside: dict[str, list[str]] = field(default_factory=dict)  # reason -> item ids (--sequential)
    path: Path = Path()  # what was loaded: the --dataset path, or a bundled sample's items.jsonl
    bundled: Bundled | None = None
    description: str = ""  # exactly which items: e.g. "285 of 14,042 MMLU test items, 5 per subject, seed 0"
    accuracy: bool = False  # each item's harness prompts follow its orderings (--accuracy)
    rendered: Lazy[list[Rendered]] = field(init=False, repr=False)  # item i's orderings' prompts, made when asked for
    _scored: Lazy[list[Rendered]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        items, orderings, template = self.items, self.orderings, self.template
        self.rendered = Lazy(lambda i: template.render_all(items[i], orderings[i]), len(items))
        self._scored = (
            Lazy(lambda i: [*self.rendered[i], *harness_prompts(items[i]).all()], len(items))
            if self.accuracy
            else self.rendered
        )

    @property
    def n_prompts(self) -> int:
        extra = sum(harness_count(it) for it in self.items) if self.accuracy else 0
        return sum(len(o) for o in self.orderings) + extra

    def harness(self, i: int) -> HarnessPrompts:
        """Item i's harness prompts (--accuracy): they follow its orderings in `scored()[i]`."""
        return harness_prompts(self.items[i])

    def scored(self) -> Sequence[list[Rendered]]:
        """Every item's prompts in scoring order: its orderings, then its harness prompts (--accuracy)."""
        return self._scored

    def full_protocol_prompts(self, max_orderings: int) -> int:
        """Prompts of the full protocol (every ordering, up to --max-orderings) on the candidate items."""
        return sum(min(math.factorial(len(it.options)), max_orderings) for it in self.candidates)


def plan_audit(cfg: AuditConfig) -> Plan:
    """Everything that needs no network: load, validate items, pick orderings, render prompts.

    The flags were validated when `cfg` was built (auditor/run/config.py); a control run is read and the
    export directory checked here, before any request, so a bad one fails first."""
    for control in cfg.control_run:
        load_control(control)
    design = parse_design(cfg.orderings)
    path, bundled = resolve(cfg.dataset)
    if cfg.export_clean is not None:
        check_export_target(cfg.export_clean, path)
    if bundled is not None and cfg.limit is not None:
        raise UsageError(f"--limit takes the first N rows; on the bundled `{bundled.name}` use --items N (stratified)")
    loaded = load_items(path, skip_invalid=cfg.skip_invalid, limit=cfg.limit)
    items = loaded.items if cfg.sample is None else stratified_sample(loaded.items, cfg.sample, cfg.seed)
    candidates = list(items)
    selection = Selection(
        n_items=len(items),
        n_loaded=len(loaded.items),
        n_skipped=len(loaded.skipped),
        files=loaded.files,
        files_read=list(dict.fromkeys(it.source for it in items)),
        limit=cfg.limit,
        sample=cfg.sample,
        seed=cfg.seed,
        n_subjects=len({it.subject for it in items}),
    )
    set_aside: dict[str, list[str]] = {}
    if cfg.sequential:
        items, set_aside = sequential_order(items, cfg.seed, keep_order_sensitive=cfg.keep_order_sensitive)
    else:
        items, shared = one_per_option_list(items, cfg.seed)
        set_aside = {"shared_option_list": shared} if shared else {}
    template = load_template(cfg.template)
    orderings = [
        design.prompts(len(it.options), seed=cfg.seed, item_id=it.id, max_orderings=cfg.max_orderings) for it in items
    ]
    return Plan(loaded, items, template, orderings, design, candidates, set_aside, path, bundled,
                describe(cfg.dataset, bundled, selection), cfg.accuracy)  # fmt: skip


def one_per_option_list(items: Sequence[Item], seed: int) -> tuple[list[Item], list[str]]:
    """Items sharing one option list are scored once: their seeded representative (the one the dataset
    tests count, `sensitivity.representative`) is kept, in input order; the others' ids are set aside
    (report.json `set_aside.shared_option_list` lists them; every ordering of the list costs once)."""
    groups: dict[str, list[Item]] = {}
    for it in items:
        groups.setdefault(option_set_key(it), []).append(it)
    keep = {id(members[representative(key, len(members), seed)]) for key, members in groups.items()}
    return [it for it in items if id(it) in keep], [it.id for it in items if id(it) not in keep]


def sequential_order(
    items: Sequence[Item], seed: int, *, keep_order_sensitive: bool
) -> tuple[list[Item], dict[str, list[str]]]:
    """Items in a seeded random order, one per option list (items sharing one are not independent), and
    without order-sensitive items unless kept (their published order is natural, not leaked)."""
    digest = hashlib.sha256(f"{seed}\x00sequential".encode()).digest()
    order = np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(len(items))
    kept: list[Item] = []
    aside: dict[str, list[str]] = {"order_sensitive": [], "shared_option_list": []}
    seen: set[str] = set()
    for i in order:
        it = items[int(i)]
        if not keep_order_sensitive and order_sensitivity(it):
            aside["order_sensitive"].append(it.id)
            continue
        key = option_set_key(it)
        if key in seen:
            aside["shared_option_list"].append(it.id)
            continue
        seen.add(key)
        kept.append(it)
    return kept, {k: v for k, v in aside.items() if v}


def dataset_sha256(files: list[Path], root: Path) -> str:
    """sha256 over (relative path, contents) of every loaded file, in load order."""
    h = hashlib.sha256()
    for f in files:
        rel = f.name if root.is_file() else f.relative_to(root).as_posix()
        h.update(rel.encode() + b"\x00")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()
