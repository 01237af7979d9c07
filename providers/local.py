"""The in-process provider: `--provider local --model PATH|smollm2` scores prompts with a model loaded
in this process (transformers + torch; CUDA when present, else CPU), behind the same seam as the HTTP
adapters, so the scheduler, cache, budgets and reports do not know the difference.

- The constructor does no I/O. `describe` finds the model files and fingerprints them (sha256 of
  weights, config and tokenizer; a GGUF is dequantized into the model cache the first time, see
  `providers.local_model`). `start` loads tokenizer and weights; `score` and `count_tokens` call it, so
  a run whose prompts are all cached never loads the weights at all. Blocking work runs in a worker
  thread (`asyncio.to_thread`): the event loop stays free.
- Identity: the answers are cached under the weights' digest (`identity`), not under the path, so a
  moved model keeps its cache and a retrained one at the same path does not reuse it.
- A batch is one forward pass, with the prefix common to its prompts (an item's question stem, shared
  by all its orderings) computed once (`providers.local_scoring`). Batches run one at a time: torch
  already uses every core for one.
- Records are exact: token ids and character offsets from the tokenizer itself, `prompt_tokens` is
  the number of tokens scored, the first token's logprob is None (no context), and `count_tokens` is
  the tokenizer's count, special tokens included, as scored.

The loaded model is kept for the process (one at a time, keyed by digest, device and dtype): the probe
and the audit that follows it share it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, cast

import httpx

from auditor.errors import AlignmentError, EndpointError
from providers import local_model as lm
from providers._common import as_logprob, bad_for
from providers.base import EndpointInfo, LogprobRecord, Provider
from providers.local_scoring import encode, prompt_logprobs

LOCAL_ENDPOINT = "in-process"  # the base URL of every in-process model (its identity is its digest)


@dataclass
class Loaded:
    digest: str
    device: str
    dtype: str
    tokenizer: Any
    model: Any
    max_model_len: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward pass at a time


_LOADED: dict[tuple[str, str, str], Loaded] = {}
_LOAD_LOCK = threading.Lock()


class Local(Provider):
    name: ClassVar[str] = "local"
    tokenize_route: ClassVar[str | None] = "tokenizer"  # no route: the model's own tokenizer, in this process

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        base_url: str = LOCAL_ENDPOINT,
        model: str,
        max_tokens: int = 0,
        batch_size: int = 24,
        device: str = "auto",
        dtype: str = "float32",
        model_root: str | None = None,
    ) -> None:
        if max_tokens != 0:
            raise ValueError("an in-process model generates nothing: max_tokens must be 0")
        # No client: nothing goes over the network (the parameter keeps the seam's constructor).
        super().__init__(cast(httpx.AsyncClient, client), base_url=base_url or LOCAL_ENDPOINT, model=model,
                         max_tokens=max_tokens, batch_size=batch_size)  # fmt: skip
        self.device = device
        self.dtype = dtype
        self._model_root = model_root
        self._loaded: Loaded | None = None
        self._tokenizer: Any = None
        self._source: lm.ModelSource | None = None
        self._digest: str | None = None

    def scoring_params(self) -> dict[str, Any]:
        return {"dialect": self.name, "dtype": self.dtype}

    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        """What one forward pass scores (there is no wire format): the prompts and the parameters."""
        return {"model": self.model, "prompts": list(prompts), **self.scoring_params()}

    def identity(self, info: EndpointInfo) -> tuple[str, str]:
        return self.base_url, str(info.extra.get("root") or info.model)

    async def describe(self) -> EndpointInfo:
        source, digest, hf = await asyncio.to_thread(self._prepare)
        summary = await asyncio.to_thread(lm.config_summary, hf)
        return EndpointInfo(
            base_url=self.base_url,
            model=self.model,
            server="transformers",
            server_version=f"transformers {_version('transformers')}, torch {_version('torch')}",
            max_model_len=summary.get("max_model_len"),
            extra={
                "root": f"sha256:{digest}",
                "path": str(source.path),
                "format": source.kind,
                "architecture": summary.get("architecture"),
                "dtype": self.dtype,
            },
        )

    async def start(self) -> Loaded:
        """Load tokenizer and weights (once per process for the same model, device and dtype)."""
        if self._loaded is None:
            self._loaded = await asyncio.to_thread(self._load)
        return self._loaded

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        loaded = await self.start()
        return await asyncio.to_thread(self._score, loaded, list(prompts))

    async def count_tokens(self, prompts: Sequence[str], *, concurrency: int = 8) -> list[int] | None:
        """The tokenizer's exact count of every prompt, special tokens included (the weights are not loaded)."""
        tokenizer = await asyncio.to_thread(self._get_tokenizer)
        enc = tokenizer(list(prompts), add_special_tokens=True)
        return [len(ids) for ids in enc["input_ids"]]

    # blocking parts, run in a worker thread

    def _prepare(self) -> tuple[lm.ModelSource, str, lm.ModelSource]:
        """The model's files, their digest, and the Hugging Face directory to load (a GGUF converted once)."""
        lm.require_libraries()
        if self._source is None or self._digest is None:
            source = lm.resolve(self.model)
            self._digest = lm.fingerprint(source)
            self._source = source
        root = None if self._model_root is None else Path(self._model_root)
        return self._source, self._digest, lm.converted_dir(self._source, self._digest, root)

    def _get_tokenizer(self) -> Any:
        if self._loaded is not None:
            return self._loaded.tokenizer
        if self._tokenizer is None:
            _, _, hf = self._prepare()
            self._tokenizer = lm.load_tokenizer(hf)
        return self._tokenizer

    def _load(self) -> Loaded:
        _, digest, hf = self._prepare()
        device = _device(self.device)
        key = (digest, device, self.dtype)
        with _LOAD_LOCK:
            if key in _LOADED:
                return _LOADED[key]
            _LOADED.clear()  # one model at a time: drop the previous one before loading the next
            tokenizer = self._tokenizer if self._tokenizer is not None else lm.load_tokenizer(hf)
            model = lm.load_model(hf, device=device, dtype=self.dtype)
            ctx = lm.config_summary(hf).get("max_model_len")
            loaded = Loaded(digest, device, self.dtype, tokenizer, model, ctx)
            _LOADED[key] = loaded
            return loaded

    def _score(self, loaded: Loaded, prompts: list[str]) -> list[LogprobRecord]:
        encoded = encode(loaded.tokenizer, prompts)
        for k, enc in enumerate(encoded):
            if not enc.ids:
                raise EndpointError(f"prompt {k}: no tokens to score", endpoint=self.base_url)
            if loaded.max_model_len is not None and len(enc.ids) > loaded.max_model_len:
                raise EndpointError(f"prompt {k}: {len(enc.ids)} tokens exceed the model's context of "
                                    f"{loaded.max_model_len}", endpoint=self.base_url)  # fmt: skip
        with loaded.lock:
            try:
                values = prompt_logprobs(loaded.model, [e.ids for e in encoded])
            except RuntimeError as err:  # out of memory, a shape the model refuses...
                raise EndpointError(f"scoring failed: {err}", endpoint=self.base_url) from err
        return [_record(p, e, v, f"prompt {k}", self.base_url)
                for k, (p, e, v) in enumerate(zip(prompts, encoded, values, strict=True))]  # fmt: skip


def _record(prompt: str, enc: Any, values: list[float | None], where: str, endpoint: str) -> LogprobRecord:
    if "".join(enc.texts) != prompt:
        raise AlignmentError(f"{where}: the tokenizer's offsets do not cover the prompt", endpoint=endpoint)
    bad = bad_for(endpoint)
    return LogprobRecord(
        tokens=enc.texts,
        logprobs=tuple(as_logprob(v, k, where, bad) for k, v in enumerate(values)),
        offsets=enc.offsets,
        token_ids=enc.ids,
        prompt_tokens=len(enc.ids),
    )


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"
