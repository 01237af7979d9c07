"""An audit's configuration, and every check of a flag's value: the one place where bad input is refused.

The CLI turns flags into `AuditConfig` (and `EndpointConfig`, `Limits`); each validates on
construction and raises UsageError naming the flag and the fix. Nothing downstream re-checks a flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from auditor.analysis.assess import METHODS, Method
from auditor.endpoint.config import EndpointConfig
from auditor.errors import UsageError
from auditor.prompts.designs import parse_design
from auditor.scoring.budget import Limits


@dataclass(frozen=True)
class AuditConfig:
    endpoint: EndpointConfig
    dataset: Path
    out: Path | None  # where report.json/.md/.html go; None: not written (the Python API may want only the object)
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
    method: Method = Method.AUDITOR  # from the --method flag: parse_method
    control_run: tuple[Path, ...] = ()  # clean reference runs on the same items (--control-run, repeatable)
    exclude_order_sensitive: bool = False
    alpha: float = 0.05
    orderings: str = "all"  # an ordering design (auditor.prompts.designs)
    limits: Limits = field(default_factory=Limits)
    sequential: bool = False
    tolerance: float = 0.10
    keep_order_sensitive: bool = False  # --sequential leaves order-sensitive items out unless this is set
    force: bool = False  # replace another audit's report in --out
    accuracy: bool = False  # also score the harness prompts (auditor/prompts/harness.py): 2n per item
    export_clean: Path | None = None  # write the unflagged items here (auditor/input/export.py)
    results_db: Path | None = None  # the SQLite results database; None: results.sqlite beside the cache

    @property
    def results_path(self) -> Path:
        return self.results_db if self.results_db is not None else self.cache_path.parent / "results.sqlite"

    def __post_init__(self) -> None:
        check_audit(self)


def at_least(flag: str, value: int | None, minimum: int) -> None:
    if value is not None and value < minimum:
        raise UsageError(f"{flag} must be at least {minimum} (got {value})")


def fraction(flag: str, value: float, hint: str = "") -> None:
    if not (math.isfinite(value) and 0 < value < 1):
        raise UsageError(f"{flag} must be between 0 and 1{hint} (got {value})")


def parse_method(name: str) -> Method:
    try:
        return Method(name)
    except ValueError:
        raise UsageError(f"unknown --method {name!r}; choose one of {', '.join(METHODS)}") from None


def check_audit(cfg: AuditConfig) -> None:
    at_least("--limit", cfg.limit, 1)
    at_least("--items", cfg.sample, 1)
    at_least("--max-orderings", cfg.max_orderings, 2)
    at_least("--seed", cfg.seed, 0)
    at_least("--batch-size", cfg.batch_size, 1)
    at_least("--concurrency", cfg.concurrency, 1)
    at_least("--attempts", cfg.attempts, 1)
    if cfg.limit is not None and cfg.sample is not None:
        raise UsageError("give --limit (the first N items) or --items (a stratified sample of N), not both")
    if cfg.method.is_paper and cfg.template != "paper":
        raise UsageError(f"--method {cfg.method} reproduces the reference code, template included: drop --template")
    fraction("--alpha", cfg.alpha)
    fraction("--tolerance", cfg.tolerance, " (a leaked fraction, e.g. 0.1)")
    if cfg.keep_order_sensitive and not cfg.sequential:
        raise UsageError("--keep-order-sensitive only applies to --sequential (full runs keep them unless excluded)")
    parse_design(cfg.orderings)  # raises UsageError naming the choices
