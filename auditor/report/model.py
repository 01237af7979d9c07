"""The report as typed, frozen objects, and the one place where they become JSON (`to_json`).

report.json is this object tree serialised field by field: a field's name here is its name in the
file (docs/report-schema.json describes it, docs/report.md explains it). Readers of a report in
this process (the terminal summary, report.md) use the objects, never the JSON's string keys.

Version history of report.json (`schema_version`):
- 1 (no `schema_version` field): the first reports; `leaked` / `n_leaked` / `leak_rate` meant "the
  published order ranked first", `p_value` was a top-1 test over all items beside the verdict's.
- 2: `top1` / `n_top1` / `top1_rate`; the verdict's own test and p-value (`verdict_test`,
  `p_verdict`); flagged items split by scenario; every headline count over the items kept.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from auditor.analysis.accuracy import AccuracySection
from auditor.analysis.assess import Method
from auditor.analysis.verdicts import Interval, Null, SubjectRow, Verdict, VerdictTest
from auditor.input.items import Skipped

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Summary:
    """The dataset decision and the numbers a reader needs to trust it (report.json `summary`)."""

    verdict: Verdict
    verdict_text: str
    verdict_test: VerdictTest
    p_verdict: float  # the p-value of `verdict_test` (1 / e-value for the sequential test)
    method: Method
    partial: bool
    stopped_by: str | None  # tokens | requests | cost | time | interrupted; None when complete
    n_items: int  # items scored and counted (order-sensitive ones left out when excluded)
    n_top1: int  # of those, items whose published order ranked first (ties count as first)
    top1_rate: float
    chance_rate: float  # mean of 1/K over those items
    n_units: int  # items sharing one option list count once
    units_top1: int
    p_top1: float  # top-1 count over units against 1/K (exact Poisson-binomial, one-sided)
    p_rank_sum: float
    p_vs_control: float | None
    leaked_fraction: Interval
    null: Null
    n_flagged: int
    n_flagged_a: int  # published order wins by a clear margin
    n_flagged_b: int  # another ordering stands out (leaked in a shuffled order)
    n_order_sensitive: int  # among the scored items, excluded ones included
    order_sensitive_share: float
    n_excluded_order_sensitive: int
    n_failed: int
    n_skipped_invalid: int
    n_not_scored: int
    n_degenerate: int  # scored, but the scores cannot show a preference for any order: left out of everything
    subjects: tuple[SubjectRow, ...]
    sequential_decision: str | None = None  # leakage | no_evidence | undecided, with --sequential
    p_values_descriptive_only: bool = False  # True after a sequential stop

    @property
    def has_control(self) -> bool:
        return self.null.kind == "control"


@dataclass(frozen=True)
class ItemEntry:
    """One scored item (report.json `items[]`)."""

    id: str
    subject: str
    question: str | None  # the item as published (None when the report was built without the items)
    options: tuple[str, ...] | None
    answer: int | None
    n_orderings: int
    rank: int
    top1: bool
    p_value: float
    margin: float
    rank_random: int
    z_published: float
    outlier_score: float
    best_ordering: tuple[int, ...]
    min_k: float | None
    flagged: bool
    scenario: str | None  # "a" | "b" | None
    order_sensitive: bool
    order_reasons: tuple[str, ...]
    option_group_size: int
    excluded: bool
    scores: tuple[float, ...]
    orderings: tuple[tuple[int, ...], ...]
    paper_b: Mapping[str, bool] | None = None
    p: Mapping[str, Any] | None = None  # the default method's per-item p-values (analysis/itemtests.py)


@dataclass(frozen=True)
class Failure:
    id: str
    subject: str
    reason: str


@dataclass(frozen=True)
class FullProtocol:
    items: int
    orderings: str
    prompts: int
    prompt_tokens_estimate: int | None


@dataclass(frozen=True)
class Spend:
    """What the prompts behind the verdicts cost, against the full protocol (report.json `spend`)."""

    prompts_used: int
    prompt_tokens_used: int
    full_protocol: FullProtocol
    share_of_full_protocol: float | None
    note: str


@dataclass(frozen=True)
class NotScoredItem:
    id: str
    reason: str


@dataclass(frozen=True)
class NotScoredSection:
    count: int
    items: tuple[NotScoredItem, ...]


@dataclass(frozen=True)
class Degenerate:
    """An item scored, but whose scores say nothing about order (`detector.degenerate_reason`)."""

    id: str
    subject: str
    reason: str


@dataclass(frozen=True)
class DegenerateSection:
    """Items scored but left out of every statistic, with the reason (report.json `degenerate`)."""

    count: int
    items: tuple[Degenerate, ...]


@dataclass(frozen=True)
class ControlSection:
    """With --control-run: the control's z of the published order per item (report.html plots it)."""

    source: str
    n_items: int
    top1: int
    z_published: Mapping[str, float]


@dataclass(frozen=True)
class Report:
    summary: Summary
    items: tuple[ItemEntry, ...]
    failures: tuple[Failure, ...]
    skipped_invalid: tuple[Skipped, ...]
    spend: Spend
    not_scored: NotScoredSection
    provenance: Mapping[str, Any]
    # sections whose shape their producers own (scoring/budget.py, analysis/sequential.py)
    set_aside: Mapping[str, Any] | None = None
    sequential: Mapping[str, Any] | None = None
    budget: Mapping[str, Any] | None = None
    control: ControlSection | None = None
    degenerate: DegenerateSection | None = None
    accuracy: AccuracySection | None = None  # with --accuracy (auditor/analysis/accuracy.py)
    schema_version: int = SCHEMA_VERSION

    def flagged(self) -> list[ItemEntry]:
        return [it for it in self.items if it.flagged]


def to_json(value: Any) -> Any:
    """The JSON form of a report object (or any part of one): dataclasses field by field, enums as
    their values, tuples as lists, NaN as null. Sections absent (None) at the top level are left out.

    Each type's rule is chosen once and kept (`_ENCODERS`); str, int, bool, None and float, by far the most
    values, are answered inline."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return None if value != value else value  # NaN is the only float not equal to itself
    encode = _ENCODERS.get(t)
    if encode is None:
        encode = _ENCODERS[t] = _encoder_for(t)
    return encode(value)


def _encoder_for(t: type) -> Callable[[Any], Any]:
    """The rule for every value of type `t`, in the order they are asked: a Null's own JSON, a dataclass field by
    field, an enum's value, a mapping with str keys, a list or tuple as a list, NaN as None, anything else
    (a class object included, even a dataclass's) as it is."""
    if issubclass(t, Null):
        return _own_json
    if dataclasses.is_dataclass(t):
        return _dataclass_encoder(t)
    if issubclass(t, Enum):
        return _enum_value
    if issubclass(t, Mapping):
        return _mapping
    if issubclass(t, list | tuple):
        return _sequence
    if issubclass(t, float):
        return _float
    return _same


def _dataclass_encoder(t: type) -> Callable[[Any], Any]:
    names = tuple(f.name for f in dataclasses.fields(t))
    drop_none = issubclass(t, Report)

    def encode(value: Any) -> dict[str, Any]:
        out = {}
        for name in names:
            v = getattr(value, name)
            if v is None and drop_none:
                continue
            out[name] = to_json(v)
        return out

    return encode


def _sequence(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    out = []
    for v in value:
        t = type(v)
        if t is float:
            out.append(None if v != v else v)
        elif t is int or t is str or t is bool or v is None:
            out.append(v)
        else:
            out.append(to_json(v))
    return out


def _mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): to_json(v) for k, v in value.items()}


_own_json = operator.methodcaller("to_json")


def _enum_value(value: Enum) -> Any:
    return value.value


def _float(value: float) -> float | None:
    return None if math.isnan(value) else value


def _same(value: Any) -> Any:
    return value


_ENCODERS: dict[type, Callable[[Any], Any]] = {}
