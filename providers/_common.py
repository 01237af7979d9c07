"""Checks shared by the dialect adapters: one validated LogprobRecord from parallel lists, model lists,
bounded fan-out for tokenize routes.

Every adapter ends the same way: it has, per prompt, a list of token strings, a list of logprobs
(and sometimes token ids). `build_record` turns them into a record or refuses:

- the lists must have the same length, tokens must be strings, ids integers;
- only position 0 may be null; everything else must be a finite number at most 0 (`LOGPROB_ROUNDING`
  above it allowed: half-precision rounding), never a zero for a null: checked before anything is cached;
- the token strings are placed on the prompt text with `auditor.prompts.align.place_tokens`; tokens past the
  end of the prompt (a generated token) are dropped only where the dialect echoes one.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar

import httpx

from auditor.errors import AlignmentError, EndpointError, ModelNotServed, ResponseFormatError
from auditor.prompts.align import place_tokens
from providers.base import LOGPROB_ROUNDING, EndpointInfo, LogprobRecord, Provider, logprob_problem, request_json

Bad = Callable[[str], ResponseFormatError]
T = TypeVar("T")
R = TypeVar("R")


def bad_for(endpoint: str | None) -> Bad:
    def bad(msg: str) -> ResponseFormatError:
        return ResponseFormatError(msg, endpoint=endpoint)

    return bad


def root_url(base_url: str) -> str:
    """The server root for native routes (`/generate`, `/version`, `/info`), whether or not `/v1` was given."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def as_logprob(value: Any, k: int, where: str, bad: Bad) -> float | None:
    """One logprob: None only at position 0; otherwise a finite number at most 0 (rounding allowed)."""
    problem = logprob_problem(value, k)
    if problem is not None:
        raise bad(f"{where}: {problem}")
    return None if value is None else float(value)


def build_record(
    tokens: Sequence[Any],
    values: Sequence[Any],
    prompt: str,
    *,
    where: str,
    endpoint: str | None,
    token_ids: Sequence[Any] | None = None,
    generated_tail: bool = False,
) -> LogprobRecord:
    """Validate and place one prompt's tokens. `generated_tail`: the dialect echoes generated tokens after it."""
    fast = _exact_record(tokens, values, prompt, token_ids)
    if fast is not None:
        return fast
    bad = bad_for(endpoint)
    if len(tokens) != len(values):
        raise bad(f"{where}: {len(tokens)} tokens but {len(values)} logprobs")
    if not tokens:
        raise bad(f"{where}: no prompt tokens scored")
    if not all(isinstance(t, str) for t in tokens):
        raise bad(f"{where}: token strings missing (got {next(t for t in tokens if not isinstance(t, str))!r})")
    if token_ids is not None:
        if len(token_ids) != len(tokens):
            raise bad(f"{where}: {len(token_ids)} token ids for {len(tokens)} tokens")
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in token_ids):
            raise bad(f"{where}: token ids must be integers")
    try:
        placed = place_tokens(tokens, prompt)
    except AlignmentError as err:
        raise AlignmentError(f"{where}: {err}", endpoint=endpoint) from None
    n = placed.n_prompt_tokens
    if n != len(tokens) and not generated_tail:
        raise AlignmentError(
            f"{where}: {len(tokens) - n} token(s) left over after the prompt text ({tokens[n]!r})",
            endpoint=endpoint,
        )
    logprobs = tuple(as_logprob(v, k, where, bad) for k, v in enumerate(values[:n]))
    return LogprobRecord(
        tokens=tuple(tokens[:n]),
        logprobs=logprobs,
        offsets=tuple(placed.offsets),
        token_ids=None if token_ids is None else tuple(int(t) for t in token_ids[:n]),
        prompt_tokens=n,
    )


def _exact_record(
    tokens: Sequence[Any], values: Sequence[Any], prompt: str, token_ids: Sequence[Any] | None
) -> LogprobRecord | None:
    """The common case, checked with C-level passes (`map`, `set`, `join`): token strings that spell
    the prompt exactly (none empty after the first, no U+FFFD), finite float logprobs (the first may be
    null; none above `LOGPROB_ROUNDING`), integer ids. The record is then the one `place_tokens` would
    build; None when any check fails, and the careful path decides (and says why it refuses)."""
    n = len(tokens)
    if n == 0 or len(values) != n or (token_ids is not None and len(token_ids) != n):
        return None
    if set(map(type, tokens)) != {str} or not all(tokens[1:]) or "\ufffd" in prompt or "".join(tokens) != prompt:
        return None
    rest = values[1:]
    if not set(map(type, rest)) <= {float} or not all(map(math.isfinite, rest)):
        return None
    if rest and max(rest) > LOGPROB_ROUNDING:
        return None
    first = values[0]
    if first is not None and (type(first) is not float or not math.isfinite(first) or first > LOGPROB_ROUNDING):
        return None
    if token_ids is not None and set(map(type, token_ids)) != {int}:
        return None
    offsets = tuple(itertools.accumulate(map(len, tokens[:-1]), initial=0))
    ids = None if token_ids is None else tuple(token_ids)
    return LogprobRecord(tuple(tokens), tuple(values), offsets, ids, n)


def check_usage(data: Any, counted: int, bad: Bad) -> None:
    """`usage.prompt_tokens`, when the server reports it, must equal the tokens we scored."""
    usage = data.get("usage") if isinstance(data, dict) else None
    reported = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(reported, int) and reported != counted:
        raise bad(f"server counted {reported} prompt tokens but returned logprobs for {counted}")


def pick_model(models: Any, model: str, bad: Bad, route: str) -> dict[str, Any]:
    """The entry of a model list (`{"data": [...]}` or a bare list) whose id is `model`.

    With no model given and exactly one served, that one.
    """
    entries = models.get("data") if isinstance(models, dict) else models
    if not isinstance(entries, list) or not entries:
        raise bad(f"GET {route} returned no models")
    found = next((m for m in entries if isinstance(m, dict) and m.get("id") == model), None)
    if found is None and not model and len(entries) == 1 and isinstance(entries[0], dict):
        found = entries[0]
    if found is None:
        names = ", ".join(str(m.get("id")) for m in entries[:20] if isinstance(m, dict))
        more = ", ..." if len(entries) > 20 else ""
        raise ModelNotServed(f"model {model!r} is not served here (served: {names}{more}); give --model one of them")
    return found


async def best_effort_version(client: httpx.AsyncClient, url: str, key: str = "version") -> str | None:
    """A server version from a JSON route, or None: describing an endpoint never fails on it."""
    try:
        data = await request_json(client, "GET", url, endpoint=url)
    except EndpointError:
        return None
    version = data.get(key) if isinstance(data, dict) else None
    return str(version)[:200] if version else None


class ListsModels(Provider):
    """`describe` for endpoints that list their models (OpenAI-style `GET .../models`): the served entry
    for `model` (or the only one served), a best-effort version, the context length and one extra field.
    Subclasses set the routes and field names; `describe_entry` also returns the entry itself."""

    server_name: ClassVar[str | None] = None
    models_route: ClassVar[str] = "/models"  # below base_url
    version_route: ClassVar[str | None] = "/version"  # below the server root
    context_key: ClassVar[str] = "max_model_len"
    extra_key: ClassVar[str | None] = "root"

    def models_url(self) -> str:
        return f"{self.base_url}{self.models_route}"

    async def describe(self) -> EndpointInfo:
        info, _ = await self.describe_entry()
        return info

    async def describe_entry(self) -> tuple[EndpointInfo, dict[str, Any]]:
        data = await request_json(self._client, "GET", self.models_url(), endpoint=self.base_url)
        entry = pick_model(data, self.model, bad_for(self.base_url), self.models_route)
        context = entry.get(self.context_key)
        version_url = f"{root_url(self.base_url)}{self.version_route}" if self.version_route else None
        extra = self.extra_key
        info = EndpointInfo(
            base_url=self.base_url,
            model=str(entry["id"]),
            server=self.server_name,
            server_version=await best_effort_version(self._client, version_url) if version_url else None,
            max_model_len=context if isinstance(context, int) else None,
            extra={extra: entry[extra]} if extra and entry.get(extra) else {},
        )
        return info, entry


def ordered_choices(data: Any, n: int, bad: Bad) -> list[dict[str, Any]]:
    """`choices` of a completions response in prompt order (by `index`), exactly one per prompt."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise bad(f"expected {n} choices, got {got}")
    by_index: dict[int, dict[str, Any]] = {}
    for pos, choice in enumerate(choices):
        idx = choice.get("index", pos) if isinstance(choice, dict) else None
        if not isinstance(idx, int) or idx in by_index or not 0 <= idx < n:
            raise bad(f"choice {pos} has a bad or repeated index {idx!r}")
        by_index[idx] = choice
    return [by_index[i] for i in range(n)]


async def map_bounded(items: Sequence[T], one: Callable[[T], Awaitable[R]], concurrency: int) -> list[R]:
    """`one(item)` for every item, at most `concurrency` awaiting at once, results in input order.

    A fixed set of workers pulls the next index (memory stays flat for hundreds of thousands of
    prompts); the first error cancels the other workers and is raised as is.
    """
    out: dict[int, R] = {}
    indices = iter(range(len(items)))

    async def worker() -> None:
        for i in indices:
            out[i] = await one(items[i])

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(max(1, concurrency), len(items)))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [out[i] for i in range(len(items))]


def token_count(value: Any, where: str, bad: Bad) -> int:
    """A token count from a tokenize response: a non-negative integer (bools refused)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise bad(f"{where}: token count is not a non-negative integer ({value!r})")
