"""Option text normalised for the order-sensitivity rules, and whether a sequence of keys runs one way.

Shared by auditor/sensitivity.py (the rules) and auditor/option_values.py (numbers, dates, ranges).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

CACHE_SIZE = 1 << 12  # per-string caches: an option list is checked by several rules, one item after another
# (1 << 16 held ~50 MB after checking MMLU's 14k items: the caches only need to span a few items)
_CIRCLED = {chr(0x2460 + k): f"({k + 1})" for k in range(20)}  # ① .. ⑳ (NFKC would merge "①②" into "12")
TRAILING_PUNCT = " \t.;:,!?。\uff1b\uff1a\uff0c\uff01\uff1f"


@lru_cache(maxsize=CACHE_SIZE)
def clean(text: str) -> str:
    """NFKC (no-break spaces, full-width forms, Ⅲ -> III), circled digits as "(k)", stripped."""
    text = "".join(_CIRCLED.get(ch, ch) for ch in text)
    return unicodedata.normalize("NFKC", text).strip()


@lru_cache(maxsize=CACHE_SIZE)
def fold(text: str) -> str:
    """Casefolded, single-spaced, without trailing punctuation."""
    return " ".join(text.split()).casefold().rstrip(TRAILING_PUNCT)


def strictly_monotonic(keys: Sequence[tuple[float, ...]]) -> str | None:
    """Return "ascending" / "descending" when every step goes the same way, else None."""
    pairs = list(itertools.pairwise(keys))
    if all(a < b for a, b in pairs):
        return "ascending"
    if all(a > b for a, b in pairs):
        return "descending"
    return None


def direction(values: Sequence[float]) -> str | None:
    return strictly_monotonic([(v,) for v in values])


# ---------------------------------------------------------------- options about the other options

_OTHERS = (
    r"(?:the\s+)?(?:above|below|these|those|them|preceding|previous|options?|answers?|choices?|statements?|listed)"
)

_ALL_EN = re.compile(
    r"\ball\s+(?:of\s+)?the\s+(?:above|\w+\s+(?:listed|mentioned|given)\s+above)\b|"
    rf"^(?:all|any)(?:\s+of)?\s+{_OTHERS}\b|^all\s+(?:three|four|five|(?:are|is)\s+(?:correct|true|right))\b|^all$"
)

_NONE_EN = re.compile(
    rf"^(?:none|not\s+any)(?:\s+of)?\s+(?:{_OTHERS}|(?:the\s+)?other\s+(?:options?|answers?|choices?))\b"
    r"|^none$|^no\s+(?:correct\s+)?answer\b"
)

_ALL_ZH = re.compile(
    r"^(?:以上|上述|前述)?(?:各项|各选项|说法|选项|答案|三者|四者|三项|四项)?(?:都|均|皆|全部|全都|全)(?:对|是|正确|符合)$"
)

_NONE_ZH = re.compile(
    r"^(?:以上|上述|前述)?(?:各项|各选项|说法|选项|答案|三者|四者|三项|四项)?(?:都|均|皆|全)(?:不|非|错)(?:对|是|正确|符合)?$"
)

_CATCH_ALL_EN = re.compile(
    r"\bthe\s+above\b|\b(?:listed|mentioned|given|stated)\s+above\b"  # "any one or combinations of the above"
    r"|^(?:both|either|neither|nither)(?:\s+of\s+(?:the\s+)?(?:above|these|those|them|two|options?|answers?|choices?))?"
    r"(?:\s+(?:is|are)\s+(?:correct|true|right|possible|valid))?$"
    r"|^(?:other|others|something\s+else|unknown|undetermined|indeterminate|uncertain|unclear|not\s+determinable)$"
    r"|^(?:it\s+)?(?:depends|dependent|depending)\b"
    r"|^(?:it\s+|the\s+answer\s+|this\s+)?(?:cannot|can\s+not|can't|could\s+not|is\s+impossible\s+to|impossible\s+to)"
    r"\s+(?:be\s+)?(?:determined?|tell|told|say|said|known?|decided?|calculated?|answered)\b"
    r"|^(?:there\s+is\s+)?(?:not\s+enough|insufficient)\s+(?:information|info|data|evidence)\b"
    r"|^(?:we\s+)?(?:need|needs|require|requires)\s+more\s+(?:information|info|data)\b"
    r"|^more\s+(?:information|info|data)\s+(?:is\s+)?(?:needed|required)\b"
)

_CATCH_ALL_ZH = re.compile(
    r"^(?:以上)?(?:都有可能|均有可能|无法确定|不能确定|无法判断|不能判断|难以确定|难以判断|不确定|不一定|视情况而定|"
    r"两者都是|两者均是|二者都是|二者均是|两者都不是|二者都不是|两者皆是|两者皆非|其他|其它)"
)


@lru_cache(maxsize=CACHE_SIZE)
def is_all(option: str) -> bool:
    text = fold(option)
    return bool(_ALL_EN.search(text) or _ALL_ZH.search(text))


@lru_cache(maxsize=CACHE_SIZE)
def is_none(option: str) -> bool:
    text = fold(option)
    return bool(_NONE_EN.search(text) or _NONE_ZH.search(text))


@lru_cache(maxsize=CACHE_SIZE)
def is_catch_all(option: str) -> bool:
    text = fold(option)
    return bool(_CATCH_ALL_EN.search(text) or _CATCH_ALL_ZH.search(text))


@lru_cache(maxsize=CACHE_SIZE)
def is_meta(option: str) -> bool:
    """An option about the other options rather than an answer in its own right."""
    return is_all(option) or is_none(option) or is_catch_all(option)
