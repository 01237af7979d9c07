from __future__ import annotations

import pytest

from auditor.errors import AlignmentError
from auditor.prompts.align import place_tokens, span_token_range


def test_bos_is_zero_width_and_offsets_follow_text() -> None:
    placed = place_tokens(["<s>", "The", " cat", "."], "The cat.")
    assert placed.offsets == [0, 0, 3, 7]
    assert placed.n_prompt_tokens == 4


def test_generated_token_dropped() -> None:
    placed = place_tokens(["<s>", "Hi", ".", " the"], "Hi.")
    assert placed.n_prompt_tokens == 3


def test_split_multibyte_characters() -> None:
    # byte-level BPE: one CJK character split over two tokens decoding to U+FFFD
    placed = place_tokens(["<s>", "A", "\ufffd", "\ufffd", "B"], "A\u571fB")
    assert placed.offsets == [0, 0, 1, 1, 2]
    placed = place_tokens(["A", "", "\u571f", "B"], "A\u571fB")
    assert placed.n_prompt_tokens == 4


def test_mismatch_raises() -> None:
    with pytest.raises(AlignmentError, match="does not match"):
        place_tokens(["The", " dog"], "The cat")


def test_truncated_echo_raises() -> None:
    with pytest.raises(AlignmentError, match="cover"):
        place_tokens(["The"], "The cat")


def test_span_range_clean_boundary() -> None:
    text = "Q:\nA:x\nB:y\n"
    tokens = ["<s>", "Q", ":\n", "A", ":", "x", "\n", "B", ":", "y", "\n"]
    placed = place_tokens(tokens, text)
    first, last = span_token_range(placed.offsets, len(text), 3, len(text))
    assert tokens[first] == "A" and last == len(tokens)


def test_span_range_straddling_token_is_included() -> None:
    text = "Q:\nA:x\n"
    tokens = ["Q", ":\nA", ":x", "\n"]  # ':\nA' straddles the span start (index 3)
    placed = place_tokens(tokens, text)
    first, last = span_token_range(placed.offsets, len(text), 3, len(text))
    assert (first, last) == (1, 4)


def test_span_range_end_excludes_answer_cue() -> None:
    text = "Q\nA. x\nAnswer:"
    tokens = ["Q", "\n", "A", ".", " x", "\n", "Answer", ":"]
    placed = place_tokens(tokens, text)
    first, last = span_token_range(placed.offsets, len(text), 2, 7)
    assert tokens[first:last] == ["A", ".", " x", "\n"]


def _scanned_range(offsets: list[int], text_len: int, start: int, end: int) -> tuple[int, int] | None:
    """The rule as span_token_range's docstring states it, one token at a time."""
    n = len(offsets)
    ends = [*offsets[1:], text_len]
    first = next((k for k in range(n) if offsets[k] >= start or ends[k] > start), n)
    last = next((k for k in range(first, n) if offsets[k] >= end), n)
    return (first, last) if first < last else None


def test_span_token_range_agrees_with_the_stated_rule_on_random_offsets() -> None:
    """The bisecting fast path (sorted offsets) and the scan (any offsets) pick the tokens the rule names,
    including zero-width tokens, repeated offsets, spans past the text and empty token lists."""
    import random

    from auditor.errors import AlignmentError

    rng = random.Random(7)
    for _ in range(20_000):
        n = rng.randrange(0, 8)
        offsets = [rng.randrange(0, 12) for _ in range(n)]
        if rng.random() < 0.8:
            offsets.sort()
        text_len = rng.randrange(0, 14)
        start = rng.randrange(0, 14)
        end = rng.randrange(start, 15)
        want = _scanned_range(offsets, text_len, start, end)
        if want is None:
            with pytest.raises(AlignmentError):
                span_token_range(offsets, text_len, start, end)
        else:
            assert span_token_range(offsets, text_len, start, end) == want, (offsets, text_len, start, end)
