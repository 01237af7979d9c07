"""What an audit will score, decided without the network: the items (loaded, validated, sampled, and
for `--sequential` put in a seeded order with some set aside), their orderings and rendered prompts.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auditor.analysis.assess import load_control
from auditor.errors import UsageError
from auditor.input.catalog import Bundled, Selection, describe, resolve
from auditor.input.export import check_export_target
from auditor.input.items import Item, LoadResult, load_items
from auditor.input.sampling import stratified_sample
from auditor.input.sensitivity import option_set_key, order_sensitivity, representative
from auditor.prompts.designs import Design, parse_design
from auditor.prompts.harness import HarnessPrompts, harness_prompts
from auditor.prompts.orderings import Ordering, Rendered, Template, load_template
from auditor.run.config import AuditConfig


@dataclass
class Plan:
    load: LoadResult
    items: list[Item]  # what will be scored, in scoring order
    template: Template
    orderings: list[list[Ordering]]
    rendered: list[list[Rendered]]
    design: Design
    candidates: list[Item]  # the selection before --sequential set items aside
    set_aside: dict[str, list[str]] = field(default_factory=dict)  # reason -> item ids (--sequential)
    path: Path = Path()  # what was loaded: the --dataset path, or a bundled sample's items.jsonl
    bundled: Bundled | None = None
    description: str = ""  # exactly which items: e.g. "285 of 14,042 MMLU test items, 5 per subject, seed 0"
    harness: list[HarnessPrompts] = field(default_factory=list)  # per item with --accuracy, else empty

    @property
    def n_prompts(self) -> int:
        return sum(len(r) for r in self.scored())

    def scored(self) -> list[list[Rendered]]:
        """Every item's prompts in scoring order: its orderings, then its harness prompts (--accuracy)."""
        if not self.harness:
            return self.rendered
        return [[*rows, *h.all()] for rows, h in zip(self.rendered, self.harness, strict=True)]

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
    rendered = [template.render_all(it, perms) for it, perms in zip(items, orderings, strict=True)]
    harness = [harness_prompts(it) for it in items] if cfg.accuracy else []
    return Plan(loaded, items, template, orderings, rendered, design, candidates, set_aside, path, bundled,
                describe(cfg.dataset, bundled, selection), harness)  # fmt: skip


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
