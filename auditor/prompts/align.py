"""Put echoed tokens back onto the prompt's characters, and pick the tokens of a scored span.

Servers disagree about `text_offset`: vLLM counts a BOS string (`<s>`) that the echoed text does not
contain, SGLang sends -1, and tokens that split a multi-byte character decode to '' or U+FFFD so
offsets computed from their lengths drift. We therefore compute offsets ourselves by walking the
token strings along the prompt:

- a token whose text appears at the current position covers those characters;
- leading special tokens absent from the text (BOS) are zero-width at 0;
- tokens that decode to '' or contain U+FFFD (pieces of one character) are zero-width until the
  next readable token, which is searched a few characters ahead;
- once the whole prompt is covered, the remaining tokens were generated (max_tokens=1) and dropped.

Anything else is an AlignmentError: a score is never computed over tokens we cannot place.
"""

from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from auditor.errors import AlignmentError

REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class Placed:
    offsets: list[int]  # one per prompt token
    n_prompt_tokens: int  # tokens before the generated ones


def place_tokens(tokens: Sequence[str], prompt: str) -> Placed:
    offsets: list[int] = []
    pos = 0
    pending = 0  # unreadable tokens waiting for the next readable one
    covered = False  # whether a pending token stood for characters (U+FFFD) rather than nothing ('')
    for i, tok in enumerate(tokens):
        if pos >= len(prompt) and pending == 0 and (tok or i > 0):
            return Placed(offsets, i)
        if tok and REPLACEMENT not in tok:
            if pending:
                nxt = _find_after_pieces(prompt, tok, pos + int(covered), pending)
                if nxt is None:
                    raise AlignmentError(f"token {i} ({tok!r}) not found after {pending} partial token(s) at {pos}")
                pos = nxt
                pending = 0
                covered = False
            if prompt.startswith(tok, pos):
                offsets.append(pos)
                pos += len(tok)
                continue
            if pos == 0:
                offsets.append(0)  # a leading special token (BOS) that the text does not contain
                continue
            raise AlignmentError(
                f"token {i} ({tok!r}) does not match the prompt at character {pos} ({prompt[pos : pos + 20]!r})"
            )
        offsets.append(pos)
        pending += 1
        covered = covered or REPLACEMENT in tok
    if pending:
        pos = len(prompt)  # trailing pieces complete the last character(s)
    if pos < len(prompt):
        raise AlignmentError(f"tokens cover {pos} of {len(prompt)} prompt characters (truncated echo?)")
    return Placed(offsets, len(tokens))


def _find_after_pieces(prompt: str, tok: str, pos: int, pending: int) -> int | None:
    """Pieces of multi-byte characters cover up to `pending` characters; find where `tok` resumes."""
    for start in range(pos, min(len(prompt), pos + pending) + 1):
        if prompt.startswith(tok, start):
            return start
    return None


def span_token_range(offsets: Sequence[int], text_len: int, start: int, end: int) -> tuple[int, int]:
    """Token indices [i, j) of the tokens that cover characters [start, end).

    A token belongs to the span when it starts inside it. A token that straddles the span start
    (begins before `start`, ends after it) is included too: it carries span characters. Because the
    text before the span is identical in every ordering of an item, the same rule picks the same
    boundary token in each of them. Zero-width tokens (BOS) never start inside a span.
    """
    n = len(offsets)
    if all(map(operator.le, offsets, offsets[1:])):  # the usual case: bisect instead of a scan in Python
        first = bisect_left(offsets, start)  # the first token starting at or after `start`...
        after = bisect_right(offsets, start)  # ...or one before it, when the next token starts past `start`
        if after < n:
            first = min(first, after - 1) if after else first
        elif n and text_len > start:
            first = min(first, n - 1)
        last = max(first, bisect_left(offsets, end))
    else:
        ends = [*offsets[1:], text_len]
        first = next((k for k in range(n) if offsets[k] >= start or ends[k] > start), n)
        last = next((k for k in range(first, n) if offsets[k] >= end), n)
    if first >= last:
        raise AlignmentError(f"no tokens cover the scored span [{start}, {end})")
    return first, last
