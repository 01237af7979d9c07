"""A grid plan: models x benchmarks, the run options every cell shares, and one budget for the whole grid.

    [run]                     # `auditor run`'s options, underscores for dashes (items, orderings, seed, ...)
    items = 40
    [budget]                  # the grid's total, split over the cells (below)
    max_tokens = 2_000_000
    [[models]]
    name = "smollm2"          # a label: letters, digits, '.', '_', '-'
    base_url = "http://gpu1:8000/v1"     # or a list: replicas of one model
    model = "smollm2"         # optional, as --model (with provider = "local": a path or smollm2)
    [[benchmarks]]
    name = "mmlu"             # a label; `dataset` defaults to it (a bundled name or a path)

Budget split: each cell's cap is the total times its share of the grid's planned prompts (rounded down),
so the caps never add up to more than the total whatever the cells do, wherever they run; a cell that
reaches its cap stops as a budget-stopped run does (exit 5, partial report). `max_time` is per cell and
goes in [run].
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.api import AuditOptions
from auditor.errors import UsageError

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MODEL_FIELDS = {"name": str, "base_url": (str, list), "model": str, "provider": str, "api_key_env": str,
                "timeout": (int, float)}  # fmt: skip
BENCHMARK_FIELDS = {"name": str, "dataset": str}
GRID_BUDGET = ("max_tokens", "max_requests", "max_cost")
CELL_ONLY = {"out", "cache", "force", "export_clean", "results_db", *GRID_BUDGET}  # not shared options


@dataclass(frozen=True)
class ModelSpec:
    name: str
    base_urls: tuple[str, ...] = ()
    model: str = ""
    provider: str = "auto"
    api_key_env: str | None = None
    timeout: float = 120.0


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    dataset: str


@dataclass(frozen=True)
class GridPlan:
    path: Path
    models: tuple[ModelSpec, ...]
    benchmarks: tuple[BenchmarkSpec, ...]
    run: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, float] = field(default_factory=dict)

    def cells(self) -> list[tuple[ModelSpec, BenchmarkSpec]]:
        return [(m, b) for m in self.models for b in self.benchmarks]


def load_plan(path: Path) -> GridPlan:
    """The plan at `path`, checked: every problem names the entry and the field, and says what to do."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"plan {path}: cannot read it ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"plan {path}: not valid TOML ({err})") from None
    where = f"plan {path}"
    _known(data, {"run", "budget", "models", "benchmarks"}, where)
    models = tuple(_model(m, f"{where}: models[{i}]") for i, m in enumerate(_tables(data, "models", where)))
    benchmarks = tuple(_benchmark(b, f"{where}: benchmarks[{i}]")
                       for i, b in enumerate(_tables(data, "benchmarks", where)))  # fmt: skip
    for kind, specs in (("models", models), ("benchmarks", benchmarks)):
        names = [s.name for s in specs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UsageError(f"{where}: {kind} name {twice[0]!r} used twice: each name once (it names the run folder)")
    run = dict(_table(data, "run", where))
    shared = set(AuditOptions.__annotations__) - CELL_ONLY
    _known(run, shared, f"{where}: [run]", hint=" (budgets go in [budget]; out and cache are flags of `auditor grid`)")
    budget = dict(_table(data, "budget", where))
    _known(budget, set(GRID_BUDGET), f"{where}: [budget]", hint=" (max_time is per cell: put it in [run])")
    for key, value in budget.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise UsageError(f"{where}: [budget] {key} must be a positive number (got {value!r})")
    return GridPlan(path, models, benchmarks, run, {k: float(v) for k, v in budget.items()})


def split_budget(total: Mapping[str, float], prompts: Sequence[int]) -> list[dict[str, float | int]]:
    """Each cell's caps: the total times the cell's share of the planned prompts, rounded down (tokens and
    requests to integers), so that the caps add up to at most the total."""
    n = sum(prompts)
    out: list[dict[str, float | int]] = [{} for _ in prompts]
    for key, value in total.items():
        for cap, p in zip(out, prompts, strict=True):
            share = value * p / n if n else 0.0
            cap[key] = int(share) if key != "max_cost" else int(share * 1e6) / 1e6
    return out


def _tables(data: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise UsageError(f"{where}: needs at least one [[{key}]] table")
    return value


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{where}: {key} must be a table ([{key}])")
    return value


def _known(data: Mapping[str, Any], allowed: set[str], where: str, hint: str = "") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r}; known: {', '.join(sorted(allowed))}{hint}")


def _checked(data: Mapping[str, Any], fields: Mapping[str, Any], where: str) -> None:
    _known(data, set(fields), where)
    for key, kind in fields.items():
        if key in data and not isinstance(data[key], kind):
            raise UsageError(f"{where}: {key} has the wrong type ({type(data[key]).__name__})")
    name = data.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise UsageError(f"{where}: needs a name of letters, digits, '.', '_' or '-' (got {name!r})")


def _model(data: Mapping[str, Any], where: str) -> ModelSpec:
    _checked(data, MODEL_FIELDS, where)
    urls = data.get("base_url", [])
    urls = [urls] if isinstance(urls, str) else urls
    if not all(isinstance(u, str) and u for u in urls):
        raise UsageError(f"{where}: base_url must be a URL or a list of URLs (replicas of one model)")
    provider = str(data.get("provider", "auto"))
    if not urls and provider not in ("auto", "local"):
        raise UsageError(f'{where}: needs base_url (or provider = "local" and model = a path or smollm2)')
    if not urls and not data.get("model"):
        raise UsageError(f"{where}: needs base_url, or model (a path or smollm2) to score in process")
    return ModelSpec(data["name"], tuple(urls), str(data.get("model", "")), provider, data.get("api_key_env"),
                     float(data.get("timeout", 120.0)))  # fmt: skip


def _benchmark(data: Mapping[str, Any], where: str) -> BenchmarkSpec:
    _checked(data, BENCHMARK_FIELDS, where)
    return BenchmarkSpec(data["name"], str(data.get("dataset", data["name"])))
