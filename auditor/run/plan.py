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

from auditor.analysis.assess import METHODS, load_control
from auditor.endpoint.config import EndpointConfig
from auditor.errors import UsageError
from auditor.input.items import Item, LoadResult, load_items
from auditor.input.sampling import stratified_sample
from auditor.input.sensitivity import option_set_key, order_sensitivity
from auditor.prompts.designs import Design, parse_design
from auditor.prompts.orderings import Ordering, Rendered, Template, load_template
from auditor.scoring.budget import Limits


@dataclass(frozen=True)
class AuditConfig:
    endpoint: EndpointConfig
    dataset: Path
    out: Path
    cache_path: Path
    limit: int | None = None
    sample: int | None = None  # --items N: a seeded subject-stratified sample
    template: str = "paper"
    max_orderings: int = 120
    seed: int = 0
    batch_size: int = 24
    concurrency: int = 8
    skip_invalid: bool = False
    attempts: int = 6
    retry_failed: bool = False
    method: str = "auditor"
    control_run: Path | None = None
    exclude_order_sensitive: bool = False
    alpha: float = 0.05
    orderings: str = "all"  # an ordering design (auditor.prompts.designs)
    limits: Limits = field(default_factory=Limits)
    sequential: bool = False
    tolerance: float = 0.10
    keep_order_sensitive: bool = False  # --sequential leaves order-sensitive items out unless this is set


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

    @property
    def n_prompts(self) -> int:
        return sum(len(r) for r in self.rendered)

    def full_protocol_prompts(self, max_orderings: int) -> int:
        """Prompts of the full protocol (every ordering, up to --max-orderings) on the candidate items."""
        return sum(min(math.factorial(len(it.options)), max_orderings) for it in self.candidates)


def plan_audit(cfg: AuditConfig) -> Plan:
    """Everything that needs no network: load, validate, pick orderings, render prompts."""
    if cfg.limit is not None and cfg.limit < 1:
        raise UsageError("--limit must be at least 1")
    if cfg.method not in METHODS:
        raise UsageError(f"unknown --method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    if cfg.method.startswith("paper") and cfg.template != "paper":
        raise UsageError(f"--method {cfg.method} reproduces the reference code, template included: drop --template")
    if not 0 < cfg.alpha < 1:
        raise UsageError("--alpha must be between 0 and 1")
    if cfg.control_run is not None:
        load_control(cfg.control_run)  # fail before any request, not after the audit
    if cfg.limit is not None and cfg.sample is not None:
        raise UsageError("give --limit (the first N items) or --items (a stratified sample of N), not both")
    if cfg.sample is not None and cfg.sample < 1:
        raise UsageError("--items must be at least 1")
    if not 0 < cfg.tolerance < 1:
        raise UsageError("--tolerance must be between 0 and 1 (a leaked fraction, e.g. 0.1)")
    if cfg.keep_order_sensitive and not cfg.sequential:
        raise UsageError("--keep-order-sensitive only applies to --sequential (full runs keep them unless excluded)")
    design = parse_design(cfg.orderings)
    loaded = load_items(cfg.dataset, skip_invalid=cfg.skip_invalid, limit=cfg.limit)
    items = loaded.items if cfg.sample is None else stratified_sample(loaded.items, cfg.sample, cfg.seed)
    candidates = list(items)
    set_aside: dict[str, list[str]] = {}
    if cfg.sequential:
        items, set_aside = sequential_order(items, cfg.seed, keep_order_sensitive=cfg.keep_order_sensitive)
    template = load_template(cfg.template)
    orderings = [
        design.prompts(len(it.options), seed=cfg.seed, item_id=it.id, max_orderings=cfg.max_orderings) for it in items
    ]
    rendered = [[template.render(it, p) for p in perms] for it, perms in zip(items, orderings, strict=True)]
    return Plan(loaded, items, template, orderings, rendered, design, candidates, set_aside)


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
