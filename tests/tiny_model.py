"""A tiny randomly initialised causal LM, built on the spot (no download), for the in-process provider.

`build_tiny_model(dest, bos=True)` trains a byte-level BPE tokenizer (a few hundred tokens) on a small
text, initialises a 2-layer Llama with a fixed seed, and saves both as a Hugging Face directory
(safetensors + tokenizer.json). With `bos` the tokenizer adds `<s>` in front of every prompt (like
Llama); without, it adds nothing (like SmolLM2). Needs torch, transformers and tokenizers (`[local]`).
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The following are multiple choice questions (with answers) about astronomy.",
    "Which planet is known as the red planet? Venus Mars Jupiter Saturn Answer:",
    "Find the degree for the given field extension Q(sqrt(2), sqrt(3)) over Q. 0 4 2 6",
    "Café, naïve, résumé: accents and emoji 🙂 and 漢字 appear in real benchmarks too.",
    "A. B. C. D. 1 2 3 4 5 6 7 8 9 0 ( ) [ ] : ; , . ? ! - + * / = < > ' \"",
]


def build_tiny_model(dest: Path, *, bos: bool = True, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.3,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    fast.save_pretrained(dest)
    return dest
