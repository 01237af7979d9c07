"""Stage 2, prompts: which orderings of an item are scored (designs), how each is rendered (templates),
and which characters of a prompt are scored (the span, aligned to the returned tokens)."""
