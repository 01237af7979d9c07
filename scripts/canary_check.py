"""Measure, in-process with torch, whether a canary's leak is visible to the permutation test.

Run with the server venv's interpreter, on a folder written by scripts/build_canary.py:

    .venv-server/bin/python -m scripts.canary_check CANARY_DIR [--per-class 40] [--shuffled 20]
        [--template paper] [--models base 1 3 5] [--out RESULT.json]

Takes a seeded subset of the ground truth (`--per-class` leaked-published and clean items, `--shuffled`
leaked-shuffled items), renders all 24 orderings of each with an auditor template (default `paper`),
and scores each ordering as the auditor does: the sum of prompt-token log-probabilities (fp32 logits,
sums in float64) of the tokens from the first option label to the end of the options block,
chosen with auditor.prompts.align.span_token_range on the fast tokenizer's character offsets. The question
prefix is run once per item and its KV cache is shared by the 24 orderings (checked against plain
full-sequence scoring on the first item).

Reports per model (the base model and each checkpoint): how often the published order is the maximum
(ties count) for leaked-published and clean items, and for shuffled items how often the trained order
and the published order are the maximum; mean rank of the published (trained) order (1 = best of 24).
Chance is 1/24 = 4.2%.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Idle OpenMP threads sleep instead of spinning. On 2 shared cores, spinning threads that wait for a descheduled
# sibling made a training step ~2.5x slower whenever another process was busy (measured: 40 vs 105 tokens/s).
# Must be set before torch loads; it does not change any result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from auditor.input.items import Item, load_items
from auditor.prompts.align import span_token_range
from auditor.prompts.orderings import BUILTIN, Ordering, Template, orderings_for
from scripts.build_canary import general_texts, render_doc

GROUND_TRUTH = "ground_truth.json"


def pick(truth: dict[str, Any], status: str, count: int, rng: np.random.Generator) -> list[str]:
    ids = sorted(i for i, v in truth["items"].items() if v["status"] == status)
    if count >= len(ids):
        return ids
    return sorted(ids[int(k)] for k in rng.choice(len(ids), size=count, replace=False))


class Scorer:
    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def _encode(self, text: str, start: int, end: int) -> tuple[list[int], int, int]:
        enc = self.tokenizer(text, return_offsets_mapping=True)
        ids: list[int] = enc.input_ids
        first, last = span_token_range([a for a, _ in enc.offset_mapping], len(text), start, end)
        return ids, first, last

    def mean_nll(self, texts: Sequence[str]) -> float:
        """Mean next-token negative log-likelihood (nats) over the tokens of `texts`, each scored alone."""
        torch = self.torch
        total, count = 0.0, 0
        for text in texts:
            ids = torch.tensor([self.tokenizer(text).input_ids])
            with torch.no_grad():
                logits = self.model(input_ids=ids).logits[0]
            lp = self._token_logprobs(logits[:-1], ids[0, 1:])
            total -= float(lp.sum().item())
            count += ids.shape[1] - 1
        return total / count

    def _token_logprobs(self, logits: Any, targets: Any) -> Any:
        """log p(target) from fp32 logits: logsumexp in fp32 (no float64 copy of the whole vocabulary row),
        returned in float64 for the sums."""
        torch = self.torch
        picked = logits.gather(-1, targets[..., None])[..., 0]
        return picked.double() - torch.logsumexp(logits, dim=-1).double()

    def score_plain(self, template: Template, item: Item, perms: Sequence[Ordering]) -> list[float]:
        """One full forward pass per ordering (the reference the shared-prefix path is checked against)."""
        torch = self.torch
        out = []
        for perm in perms:
            r = template.render(item, perm)
            ids, first, last = self._encode(r.text, r.span_start, r.span_end)
            with torch.no_grad():
                logits = self.model(input_ids=torch.tensor([ids])).logits[0]
            lp = self._token_logprobs(logits[first - 1 : last - 1], torch.tensor(ids[first:last]))
            out.append(float(lp.sum().item()))
        return out

    def score(self, template: Template, item: Item, perms: Sequence[Ordering]) -> list[float]:
        """The question prefix once, then all orderings as one batch on its KV cache."""
        torch = self.torch
        encoded = []
        for perm in perms:
            r = template.render(item, perm)
            encoded.append(self._encode(r.text, r.span_start, r.span_end))
        first = encoded[0][1]
        prefix = encoded[0][0][:first]
        if first < 1 or any(f != first or ids[:first] != prefix for ids, f, _ in encoded):
            return self.score_plain(template, item, perms)
        suffixes = [ids[first:last] for ids, _, last in encoded]
        width = max(len(s) for s in suffixes)
        batch = torch.zeros((len(perms), width), dtype=torch.long)
        for k, s in enumerate(suffixes):
            batch[k, : len(s)] = torch.tensor(s)  # right padding: causal attention never looks at it
        with torch.no_grad():
            pre = self.model(input_ids=torch.tensor([prefix]), use_cache=True)
            cache = pre.past_key_values
            cache.batch_repeat_interleave(len(perms))
            pos = torch.arange(first, first + width).unsqueeze(0).expand(len(perms), -1)
            logits = self.model(input_ids=batch, past_key_values=cache, position_ids=pos, use_cache=True).logits
        head = pre.logits[0, -1].expand(len(perms), -1)
        lp_first = self._token_logprobs(head, batch[:, 0])
        lp_rest = self._token_logprobs(logits[:, :-1], batch[:, 1:])
        scores = []
        for k, s in enumerate(suffixes):
            scores.append(float(lp_first[k].item() + lp_rest[k, : len(s) - 1].sum().item()))
        return scores


def rank_of(scores: Sequence[float], k: int) -> int:
    """1 + the number of orderings scoring strictly higher than ordering k (ties count as the maximum)."""
    return 1 + sum(1 for j, s in enumerate(scores) if j != k and s > scores[k])


def evaluate(
    model_dir: Path, template: Template, items: dict[str, Item], truth: dict[str, Any], heldout: Sequence[str]
) -> dict[str, Any]:
    t0 = time.monotonic()
    scorer = Scorer(model_dir)
    nll: dict[str, float] = {"heldout_general_text": scorer.mean_nll(heldout)}
    for status in ("leaked-published-order", "clean"):
        truths = truth["items"]
        docs = [render_doc(it, truths[i]["order"]) for i, it in items.items() if truths[i]["status"] == status]
        nll[f"{status}_documents"] = scorer.mean_nll(docs)
    per_item: dict[str, Any] = {}
    verified = None
    for item_id, item in items.items():
        perms = orderings_for(len(item.options), max_orderings=24, seed=0, item_id=item_id)
        scores = scorer.score(template, item, perms)
        if verified is None:
            plain = scorer.score_plain(template, item, perms)
            verified = max(abs(a - b) for a, b in zip(scores, plain, strict=True))
            if verified > 1e-3:
                raise SystemExit(f"shared-prefix scores differ from plain scoring by {verified}")
        trained = perms.index(tuple(truth["items"][item_id]["order"]))
        per_item[item_id] = {
            "status": truth["items"][item_id]["status"],
            "published_rank": rank_of(scores, 0),
            "trained_rank": rank_of(scores, trained),
        }
    summary: dict[str, Any] = {}
    for status in ("leaked-published-order", "clean", "leaked-shuffled"):
        rows = [v for v in per_item.values() if v["status"] == status]
        if not rows:
            continue
        entry = {
            "n": len(rows),
            "published_top1": sum(r["published_rank"] == 1 for r in rows) / len(rows),
            "published_mean_rank": float(np.mean([r["published_rank"] for r in rows])),
        }
        if status == "leaked-shuffled":
            entry["trained_top1"] = sum(r["trained_rank"] == 1 for r in rows) / len(rows)
            entry["trained_mean_rank"] = float(np.mean([r["trained_rank"] for r in rows]))
        summary[status] = entry
    return {
        "model_dir": str(model_dir),
        "summary": summary,
        "mean_nll": nll,
        "items": per_item,
        "shared_prefix_vs_plain_max_abs_diff": verified,
        "seconds": round(time.monotonic() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("canary_dir", type=Path)
    parser.add_argument("--per-class", type=int, default=40, help="leaked-published items, and as many clean ones")
    parser.add_argument("--shuffled", type=int, default=20, help="leaked-shuffled items")
    parser.add_argument("--template", default="paper", choices=sorted(BUILTIN))
    parser.add_argument("--models", nargs="+", default=None, help="'base' and/or checkpoint epochs (default: all)")
    parser.add_argument("--heldout", type=int, default=100, help="general-text passages never trained on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the full result as JSON here")
    args = parser.parse_args(argv)

    truth = json.loads((args.canary_dir / GROUND_TRUTH).read_text(encoding="utf-8"))
    rng = np.random.default_rng(args.seed)
    chosen = [
        *pick(truth, "leaked-published-order", args.per_class, rng),
        *pick(truth, "clean", args.per_class, rng),
        *pick(truth, "leaked-shuffled", args.shuffled, rng),
    ]
    loaded = {it.id: it for it in load_items(Path(truth["mmlu"]["path"]), skip_invalid=True).items}
    items = {i: loaded[i] for i in chosen}
    models = args.models or ["base", *[str(e) for e in truth["epochs"]]]
    template = BUILTIN[args.template]
    pool = general_texts(truth["seed"])
    if truth["token_counts"]["general_documents"] + args.heldout > len(pool):
        raise SystemExit("not enough unused general text for --heldout")
    heldout = pool[len(pool) - args.heldout :]

    results: dict[str, Any] = {"canary_dir": str(args.canary_dir), "template": template.identity(), "models": {}}
    print(
        f"{'model':>6} {'leaked-pub top1':>16} {'clean top1':>11} {'shuf trained':>13} {'shuf pub':>9}"
        "  mean ranks (pub/clean/shuf-trained)  NLL (held-out text / leaked docs / clean docs)"
    )
    for name in models:
        model_dir = Path(truth["base_model"]["path"]) if name == "base" else args.canary_dir / f"epoch-{name}"
        res = evaluate(model_dir, template, items, truth, heldout)
        results["models"][name] = res
        s, nll = res["summary"], res["mean_nll"]
        lp, cl, sh = s.get("leaked-published-order", {}), s.get("clean", {}), s.get("leaked-shuffled", {})
        print(
            f"{name:>6} {lp.get('published_top1', float('nan')):>16.3f} {cl.get('published_top1', float('nan')):>11.3f}"
            f" {sh.get('trained_top1', float('nan')):>13.3f} {sh.get('published_top1', float('nan')):>9.3f}"
            f"  {lp.get('published_mean_rank', float('nan')):.1f} / {cl.get('published_mean_rank', float('nan')):.1f}"
            f" / {sh.get('trained_mean_rank', float('nan')):.1f}"
            f"  {nll['heldout_general_text']:.3f} / {nll['leaked-published-order_documents']:.3f}"
            f" / {nll['clean_documents']:.3f}  ({res['seconds']} s)",
            flush=True,
        )
        if args.out is not None:  # after every model, so a long run keeps what it has measured
            args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
