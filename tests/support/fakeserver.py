"""An in-process fake of an OpenAI-compatible completions server, for unit tests (httpx.MockTransport).

It tokenizes like a word-level tokenizer with a BOS, echoes the prompt with logprobs in vLLM's
shape (text_offset counts the BOS string, like vLLM), and gives a bonus to prompts listed in
`preferred` so a test can plant "leaked" items. Logprobs are a deterministic function of the text.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

TOKEN = re.compile(r"\s*\S+|\s+")


def tokenize(text: str) -> list[str]:
    return ["<s>", *TOKEN.findall(text)]


def _lp(context: str, tok: str) -> float:
    h = hashlib.sha256((context + "\x00" + tok).encode()).digest()
    return -1.0 - 4.0 * int.from_bytes(h[:4], "little") / 2**32


@dataclass
class FakeServer:
    model: str = "fake-model"
    preferred: set[str] = field(default_factory=set)
    bonus: float = 50.0
    familiar: set[str] = field(default_factory=set)  # prompts holding one of these read as seen: no token below -2.5
    max_tokens_zero_ok: bool = True
    completion_requests: int = 0
    prompts_scored: int = 0
    tokens_billed: int = 0  # usage as a hosted API would bill it: prompt tokens + generated tokens
    tokenize: bool = True  # answer vLLM's POST /tokenize
    tokenize_requests: int = 0
    hook: Callable[[dict[str, Any]], httpx.Response | None] | None = None
    root: str | None = None  # what vLLM reports as the loaded weights' path
    vllm_dialect: bool = True  # answer vLLM's prompt_logprobs requests too

    def vllm_choice(self, prompt: str, index: int) -> dict[str, Any]:
        """vLLM's `prompt_logprobs` + `prompt_token_ids` shape (return_token_ids, no echo)."""
        echo = self.choice(prompt, index, 0)
        toks, lps = echo["logprobs"]["tokens"], echo["logprobs"]["token_logprobs"]
        ids = [1] + [2 + int.from_bytes(hashlib.sha256(t.encode()).digest()[:3], "little") for t in toks[1:]]
        entries: list[dict[str, Any] | None] = [None]
        for t, i, lp in zip(toks[1:], ids[1:], lps[1:], strict=True):
            entries.append({str(i): {"logprob": lp, "rank": 1, "decoded_token": t}})
        return {"index": index, "text": " the", "prompt_token_ids": ids, "prompt_logprobs": entries,
                "logprobs": None, "finish_reason": "length"}  # fmt: skip

    def choice(self, prompt: str, index: int, max_tokens: int) -> dict[str, Any]:
        toks = tokenize(prompt)
        lps: list[float | None] = [None]
        ctx = ""
        floor = -2.5 if any(f in prompt for f in self.familiar) else -math.inf
        for t in toks[1:]:
            bonus = self.bonus / len(toks) if prompt in self.preferred else 0.0
            lps.append(min(max(_lp(ctx, t), floor) + bonus, -0.01))  # a log-probability is never above 0
            ctx += t
        offsets, pos = [], 0
        for t in toks:
            offsets.append(pos)
            pos += len(t)
        text = prompt
        if max_tokens:
            toks.append(" the")
            lps.append(-2.0)
            offsets.append(pos)
            text += " the"
        return {
            "index": index,
            "text": text,
            "logprobs": {"tokens": toks, "token_logprobs": lps, "text_offset": offsets, "top_logprobs": None},
            "finish_reason": "length",
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/models"):
            entry = {"id": self.model, "owned_by": "fake", "max_model_len": 512, "root": self.root}
            return httpx.Response(200, json={"object": "list", "data": [entry]})
        if path == "/version":
            return httpx.Response(200, json={"version": "0.0-fake"})
        if path == "/tokenize" and self.tokenize:  # vLLM's shape: the count includes the BOS
            toks = tokenize(json.loads(request.content)["prompt"])
            self.tokenize_requests += 1
            return httpx.Response(
                200, json={"count": len(toks), "max_model_len": 512, "tokens": list(range(len(toks)))}
            )
        if path.endswith("/completions"):
            body = json.loads(request.content)
            if self.hook is not None:
                resp = self.hook(body)
                if resp is not None:
                    return resp
            if body.get("model") != self.model:
                return httpx.Response(404, json={"error": {"message": "model not found"}})
            mt = body.get("max_tokens", 16)
            if mt == 0 and not self.max_tokens_zero_ok:
                return httpx.Response(400, json={"error": {"message": "max_tokens must be at least 1"}})
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            self.completion_requests += 1
            self.prompts_scored += len(prompts)
            if "prompt_logprobs" in body and self.vllm_dialect:
                choices = [self.vllm_choice(p, i) for i, p in enumerate(prompts)]
            else:
                choices = [self.choice(p, i, mt) for i, p in enumerate(prompts)]
            n = sum(len(tokenize(p)) for p in prompts)
            self.tokens_billed += n + (len(prompts) if mt or "prompt_logprobs" in body else 0)
            return httpx.Response(200, json={"choices": choices, "usage": {"prompt_tokens": n}})
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)
