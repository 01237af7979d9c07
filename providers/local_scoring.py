"""Teacher-forced prompt log-probabilities from a causal LM in this process, a batch at a time.

`encode` tokenizes exactly as a server would for scoring (special tokens such as BOS added) and gives
each token the characters it covers, from the fast tokenizer's offsets: a gap before a token (a
leading space some tokenizers leave out of the offsets) goes to that token, a token whose characters
an earlier one already covered (a piece of a multi-byte character) and a special token the text does
not contain (BOS) cover nothing. The pieces concatenate to the prompt, so the offsets are exact.

`prompt_logprobs` runs the model once per batch. The orderings of one item share their question stem:
the tokens common to every prompt of the batch are run once (their keys and values are then shared
by all prompts, never copied), and only the rest of each prompt runs, right-padded, in sub-batches
sized so the logits stay within `LOGIT_BYTES`. Position i gets log p(token i | tokens before it) from
the float32 log-softmax over the whole vocabulary; position 0 has no context and gets None.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LOGIT_BYTES = 512 << 20  # logits (and their log-softmax) of one sub-batch, at most


@dataclass(frozen=True)
class Encoded:
    ids: tuple[int, ...]
    texts: tuple[str, ...]  # the characters each token covers; they concatenate to the prompt
    offsets: tuple[int, ...]  # character offset of each token


def token_texts(prompt: str, spans: Sequence[tuple[int, int]], special: Sequence[bool]) -> tuple[list[str], list[int]]:
    """Each token's characters and offset from its (start, end) span (see the module docstring)."""
    texts: list[str] = []
    offsets: list[int] = []
    cursor = 0
    for (start, end), is_special in zip(spans, special, strict=True):
        offsets.append(cursor)
        if (is_special and start == end) or end <= cursor:
            texts.append("")
            continue
        texts.append(prompt[cursor:end])
        cursor = end
    if texts and cursor < len(prompt):
        texts[-1] += prompt[cursor:]  # characters after the last token's span (trailing whitespace)
    return texts, offsets


def encode(tokenizer: Any, prompts: Sequence[str]) -> list[Encoded]:
    enc = tokenizer(list(prompts), add_special_tokens=True, return_offsets_mapping=True)
    special_ids = set(tokenizer.all_special_ids)
    out = []
    for prompt, ids, spans in zip(prompts, enc["input_ids"], enc["offset_mapping"], strict=True):
        texts, offsets = token_texts(prompt, [(int(s), int(e)) for s, e in spans], [i in special_ids for i in ids])
        out.append(Encoded(tuple(int(i) for i in ids), tuple(texts), tuple(offsets)))
    return out


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for k in range(n):
        t = first[k]
        if any(s[k] != t for s in seqs):
            return k
    return n


def prompt_logprobs(
    model: Any, batch: Sequence[Sequence[int]], *, share_prefix: bool = True, logit_bytes: int = LOGIT_BYTES
) -> list[list[float | None]]:
    """Per prompt, the logprob of each token given the tokens before it (None for the first)."""
    import torch

    if any(len(ids) == 0 for ids in batch):
        raise ValueError("a prompt with no tokens cannot be scored")
    vocab = int(model.get_output_embeddings().weight.shape[0])
    prefix = common_prefix_len(batch) if share_prefix and len(batch) > 1 else 0
    prefix = min(prefix, min(len(ids) for ids in batch) - 1)  # every prompt keeps a token to run
    out: list[list[float | None]] = [[None] for _ in batch]
    shared: list[tuple[Any, Any]] = []
    with torch.inference_mode():
        if prefix > 0:
            ids = torch.tensor([list(batch[0][:prefix])], device=model.device)
            res = model(input_ids=ids, use_cache=True)
            cache = getattr(res, "cache", None) or res.past_key_values  # renamed in transformers 5.2x
            logprobs = res.logits[0].float().log_softmax(-1)
            head = logprobs[torch.arange(prefix - 1), ids[0, 1:]].tolist()
            nxt = logprobs[prefix - 1, [ids_k[prefix] for ids_k in batch]].tolist()
            for k, row in enumerate(out):
                row.extend(head)
                row.append(nxt[k])
            shared = [(layer.keys, layer.values) for layer in cache.layers]
        order = sorted(range(len(batch)), key=lambda k: len(batch[k]))
        start = 0
        while start < len(order):
            longest = len(batch[order[min(len(order) - 1, start)]]) - prefix
            size = max(1, logit_bytes // (2 * 4 * vocab * longest))
            group = order[start : start + size]
            longest = max(len(batch[k]) for k in group) - prefix
            tails = _suffix_logprobs(model, [batch[k][prefix:] for k in group], longest, prefix, shared)
            for k, tail in zip(group, tails, strict=True):
                out[k].extend(tail)
            start += len(group)
    return out


def _suffix_logprobs(
    model: Any, suffixes: Sequence[Sequence[int]], width: int, prefix: int, shared: list[tuple[Any, Any]]
) -> list[list[float]]:
    """Run right-padded suffixes after the shared prefix; each suffix's logprobs of its tokens 1..n-1."""
    import torch
    from transformers import DynamicCache

    b = len(suffixes)
    ids = torch.zeros((b, width), dtype=torch.long, device=model.device)
    mask = torch.zeros((b, prefix + width), dtype=torch.long, device=model.device)
    mask[:, :prefix] = 1
    for k, suffix in enumerate(suffixes):
        ids[k, : len(suffix)] = torch.tensor(list(suffix), dtype=torch.long)
        mask[k, prefix : prefix + len(suffix)] = 1
    kwargs: dict[str, Any] = {}
    if shared:  # expanded views: DynamicCache concatenates new keys onto them, never writes into them
        data = [(key.expand(b, -1, -1, -1), value.expand(b, -1, -1, -1)) for key, value in shared]
        kwargs[_cache_argument(model)] = DynamicCache(ddp_cache_data=data, config=model.config)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=bool(shared), **kwargs).logits.float()
    logprobs = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    return [logprobs[k, : len(suffix) - 1].tolist() for k, suffix in enumerate(suffixes)]


def _cache_argument(model: Any) -> str:
    """The forward argument that takes a KV cache: `cache` in newer transformers, `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
