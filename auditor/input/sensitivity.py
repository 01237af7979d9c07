"""Order sensitivity: why an item's options may read naturally in one order.

The permutation test assumes that an item's option contents are exchangeable: with no leakage, the
published order is no more likely than any other. Some items break that assumption, and a model may
prefer their published order without ever having seen them. `order_sensitivity(item)` lists the
reasons it can see; an empty list means none were found (not a proof of exchangeability). Report such
items separately, or calibrate them against a control.

Reason codes:
- all_of_the_above: an option such as "All of the above", "All of these", "以上都对", "都是", wherever
  it stands. It refers to the other options and reads naturally only after them.
- none_of_the_above: "None of the above", "None of these", "以上都不对", "都不是", or a bare "None"
  (except among counts: "None", "One", "Two", "Three" are numbers).
- label_reference: an option names other options by their label ("Both A and B", "(a) and (c)",
  "Neither A nor B", "B和C都对"), or every option starts with its own label ("(A) ..."). Labels stay in
  place when the contents move, so such an option means something else in any other order.
- ascending_numbers / descending_numbers: every option is a number (units, signs, decimals,
  fractions, percentages, currency and scientific notation are understood), all in the same unit, and
  the published order sorts them ("275", "380", "440", "550"). Needs three numbers or more; catch-all
  options such as "None of the above" are left out of the comparison.
- dates_in_order: every option names a date (a year, a decade, a century, "20,000 B.P.", "AD 400", or a
  year inside a sentence: "The Voting Rights Act of 1965") and the published order is chronological or
  reverse chronological.
- ranges: the options are intervals or bounds ("Less than 20", "20-40", "More than 40") listed in
  order.
- roman_combinations: the options combine numbered statements ("I only", "I and II only",
  "(i), (ii) and (iii)", "1,3,4", "①③"); such lists follow a conventional order.
- combinatorial_grid: every option is a tuple ("Wrong, Not wrong") whose parts are drawn from small
  sets, so the option list is a grid, conventionally listed in one order.
- catch_all_last: the list ends with a catch-all ("Need more information", "Cannot be determined",
  "It depends", "Both", "Neither of these", "Both of the above", "无法确定") or with a combination of two
  other options ("Stationary and unit root process" after "Stationary process" and "Unit root
  process"), possibly followed by options of the kinds above ("..., Both, None of the above").

`option_set_key` and `group_by_option_set` find items that share one option list (MMLU's
moral_scenarios: ~900 items with the same four options). Training on some of them raises the
published-order preference of all of them, so such a list should be judged once, not once per item.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from auditor.input.items import LABELS, Item
from auditor.input.option_text import CACHE_SIZE, clean, fold, is_all, is_catch_all, is_meta, is_none
from auditor.input.option_values import check_order, check_ranges, parse_number

REASON_CODES: tuple[str, ...] = (
    "all_of_the_above",
    "none_of_the_above",
    "label_reference",
    "ascending_numbers",
    "descending_numbers",
    "dates_in_order",
    "ranges",
    "roman_combinations",
    "combinatorial_grid",
    "catch_all_last",
)


def order_sensitivity(item: Item) -> list[str]:
    """The reason codes (in REASON_CODES order) why `item`'s options are not exchangeable."""
    options = [clean(o) for o in item.options]
    found: set[str] = set()
    for check in _CHECKS:
        found.update(check(item.question, options))
    return [code for code in REASON_CODES if code in found]


def option_set_key(item: Item) -> str:
    """A canonical key of the item's option multiset: sorted, whitespace-normalized, casefolded."""
    return json.dumps(sorted(" ".join(o.split()).casefold() for o in item.options), ensure_ascii=False)


def representative(key: str, n: int, seed: int) -> int:
    """Which of the `n` items sharing option list `key` stands for them all (a seeded pick, the same in
    planning, which scores only it, and in the dataset tests, which count each list once)."""
    h = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(h[:8], "little") % n


def group_by_option_set(items: Iterable[Item]) -> dict[str, list[str]]:
    """Item ids grouped by `option_set_key`, keeping only groups of two items or more."""
    groups: dict[str, list[str]] = {}
    for item in items:
        groups.setdefault(option_set_key(item), []).append(item.id)
    return {key: ids for key, ids in groups.items() if len(ids) >= 2}


# ---------------------------------------------------------------- text helpers


# ---------------------------------------------------------------- meta options (all / none / catch-all)


def _check_all_none(question: str, options: list[str]) -> list[str]:
    codes = []
    if any(is_all(o) for o in options):
        codes.append("all_of_the_above")
    if any(is_none(o) and not _is_zero_count(o, options) for o in options):
        codes.append("none_of_the_above")
    return codes


def _is_zero_count(option: str, options: list[str]) -> bool:
    """A bare "None" among counts ("None", "One", "Two", "Three") is the number zero, not a catch-all."""
    return fold(option) == "none" and all(parse_number(o) is not None for o in options if o != option)


# ---------------------------------------------------------------- label references

_NOT_WORD = r"A-Za-z0-9_'\u2019"
_LABEL_TOKEN = rf"(?:(?<![{_NOT_WORD}])\([A-Za-z]\)|(?<![{_NOT_WORD}(\-.])[A-Za-z][.)]?)(?![{_NOT_WORD}\-])"
_LABEL_SEP = r"(?:\s*[,、\uff0c]\s*(?:(?:and|or|nor|&)\s+)?|\s+(?:and|or|nor|&)\s+|\s*(?:[和与及或&]|以及)\s*)"
_LABEL_LIST = re.compile(
    rf"(?<![Tt]he\s){_LABEL_TOKEN}(?:{_LABEL_SEP}{_LABEL_TOKEN})+"
)  # not "the b and d coefficients"
_NUMBER_LIST = re.compile(
    r"\b(?:both|either|neither)\s+(?:(?:options?|answers?|choices?)\s+)?"
    r"(\(?[1-9]\)?(?:\s*(?:,|\band\b|\bor\b|\bnor\b|&)\s*\(?[1-9]\)?)+)(?![\d.,]\d)",
    re.IGNORECASE,
)  # "Both 2 and 3"
_LABEL_RUN_ZH = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2,5})(?=都|均|皆|全|两项|三项|项)")  # "AB都对"
_OWN_LABEL = re.compile(r"^\(?([A-Za-z])[.):\uff1a、]\s*\S")
_CONNECTIVES = re.compile(r"\b(?:and|or|nor|plus)\b")
_MARKER = re.compile(
    r"\b(?:both|either|neither|nether|only|above|options?|answers?|choices?|(?:are|is)\s+(?:correct|true|right))\b"
    r"|都|均|皆"
)


@lru_cache(maxsize=CACHE_SIZE)
def _letter_lists(option: str) -> tuple[frozenset[str], ...]:
    """The letter sets of the label-like lists in `option` ("both A and C" -> [{"A", "C"}]).

    A list counts in a short option ("A and C") or next to a marker ("both", "only", "are correct");
    "Given values a and b, find all ..." names variables.
    """
    spans = [m.group(0) for m in _LABEL_LIST.finditer(option)] + _LABEL_RUN_ZH.findall(option)
    marked = bool(_MARKER.search(option.casefold()))
    sets = []
    for span in spans:
        if not marked and len(option.replace(span, " ").split()) > 2:
            continue
        letters = frozenset(c.upper() for c in _CONNECTIVES.sub(" ", span) if c.isascii() and c.isalpha())
        if len(letters) >= 2:
            sets.append(letters)
    return tuple(sets)


def _number_lists(option: str, n_options: int) -> list[frozenset[str]]:
    """Option numbers used as labels ("Both 2 and 3" -> [{"B", "C"}]), when they are in range."""
    sets = []
    for m in _NUMBER_LIST.finditer(option):
        numbers = {int(d) for d in re.findall(r"\d", m.group(1))}
        if len(numbers) >= 2 and max(numbers) <= n_options:
            sets.append(frozenset(LABELS[k - 1] for k in numbers))
    return sets


def _named_in_question(question: str, letters: frozenset[str]) -> bool:
    """Whether the question uses some of these letters as names ("events A and B"): then they are no labels.

    "A" is left out: as a capital it is most often the article.
    """
    text = clean(question)
    return any(
        re.search(rf"(?<![{_NOT_WORD}]){letter}(?![{_NOT_WORD}])", text, re.IGNORECASE) for letter in letters - {"A"}
    )


def _is_label_reference(question: str, options: list[str], index: int) -> bool:
    """Whether option `index` names other options by their labels (letters, or "both 2 and 3")."""
    option = options[index]
    # Letter lists in most options are names ("the b and d coefficients"), not labels.
    letter_lists = _letter_lists(option) if 2 * sum(map(bool, map(_letter_lists, options))) <= len(options) else ()
    numbers = [s for s in _number_lists(option, len(options)) if not _digits_in(question, s)]
    labels = set(LABELS[: len(options)])
    for letters in [*letter_lists, *numbers]:
        # An option naming its own label is a typo ("both A and D" as option D) or a name ("A and C" vitamins).
        own_ok = LABELS[index] not in letters or bool(_MARKER.search(option.casefold()))
        if letters <= labels and own_ok and (letters in numbers or not _named_in_question(question, letters)):
            return True
    return False


def _digits_in(question: str, labels: frozenset[str]) -> bool:
    """Whether the question numbers statements with these digits ("1. ...", "(2)"): then they are no labels."""
    return any(re.search(rf"(?<![\d.,]){LABELS.index(x) + 1}(?![\d,]|\.\d)", question) for x in labels)


def _has_own_labels(options: list[str]) -> bool:
    """Every option starts with its own label: "(A) ...", "(B) ...", ..."""
    found = [_OWN_LABEL.match(o) for o in options]
    return all(m is not None and m.group(1).upper() == LABELS[i] for i, m in enumerate(found))


def _check_labels(question: str, options: list[str]) -> list[str]:
    if _has_own_labels(options) or any(_is_label_reference(question, options, i) for i in range(len(options))):
        return ["label_reference"]
    return []


# ---------------------------------------------------------------- numbers


# ---------------------------------------------------------------- numbered-statement combinations

_ROMAN = r"(?:viii|vii|vi|iv|ix|iii|ii|i|v|x)"
_STATEMENT = rf"(?<![a-z0-9])(?:\((?:{_ROMAN}|[1-9])\)|(?:{_ROMAN}|[1-9])(?![a-z0-9)]))"
_COMBO_SEP = r"(?:\s*(?:[,;、\uff0c]|\band\b|\bor\b|\bnor\b|&|\+|和|与|及)\s*(?:(?:and|or)\s+)?|(?<=\))\s*(?=\()|\s+)"
_COMBO = re.compile(
    r"^(?P<pre>(?:(?:only|both|neither|either|statements?|options?|choices?|items?|numbers?|只有|仅仅|仅有|仅|只)\s*)?)"
    rf"{_STATEMENT}(?:{_COMBO_SEP}{_STATEMENT})*"
    r"(?P<post>(?:\s*(?:only|are\s+(?:correct|true)|is\s+(?:correct|true)|都对|都正确|正确|对))?)$"
)
_STATEMENT_TOKEN = re.compile(_STATEMENT)
_ROMAN_NUMERALS = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x")
_STATEMENT_NUMBERS = {r: k for k, r in enumerate(_ROMAN_NUMERALS, start=1)} | {str(k): k for k in range(1, 10)}


@lru_cache(maxsize=CACHE_SIZE)
def _combination(option: str) -> tuple[int, bool] | None:
    """(number of statements, says "only") when the option is a set of numbered statements in increasing order.

    "②①③" (a sequence to put in order, not a set) is not a combination.
    """
    text = fold(option)
    m = _COMBO.match(text)
    if m is None:
        return None
    numbers = [_STATEMENT_NUMBERS[t.strip("()")] for t in _STATEMENT_TOKEN.findall(text)]
    if any(a >= b for a, b in itertools.pairwise(numbers)):
        return None
    only = bool(re.search(r"only|只有|仅", m["pre"] + m["post"]))
    return len(numbers), only


def _check_combinations(question: str, options: list[str]) -> list[str]:
    combos = [_combination(o) for o in options]
    found = [c for c in combos if c is not None]
    if len(found) < 2 or any(c is None and not is_meta(o) for c, o in zip(combos, options, strict=True)):
        return []
    return ["roman_combinations"] if any(count >= 2 or only for count, only in found) else []


# ---------------------------------------------------------------- grids

_GRID_SPLITTERS = (
    re.compile(r"\s*[;|]\s*"),
    re.compile(r"\s*(?:(?<!\d),|,(?!\d))\s*"),
    re.compile(r"\s{2,}|\t"),
)
_SPACE = re.compile(r"\s+")
_LABEL_PREFIX = re.compile(r"^\([A-Za-z]\)\s*")


def _split_all(options: list[str], splitter: re.Pattern[str]) -> list[tuple[str, ...]] | None:
    """Each option split into parts (casefolded), or None unless all have the same number (2 or more)."""
    rows = []
    for option in options:
        parts = [fold(p) for p in splitter.split(_LABEL_PREFIX.sub("", option))]
        rows.append(tuple(p for p in parts if p))
    widths = {len(r) for r in rows}
    return rows if len(widths) == 1 and widths.pop() >= 2 else None


def _is_grid(rows: list[tuple[str, ...]]) -> bool:
    """Two columns or more vary, each drawn from a small set (at most max(2, n/2) values), and unless all
    are binary the options fill at least half of the grid ("[1, 2]", "[0, 4]", ... among 10 options do not).
    """
    n = len(rows)
    if n < 3 or len(set(rows)) < n:
        return False
    distinct = [len(set(column)) for column in zip(*rows, strict=True)]
    small = all(d <= max(2, n // 2) for d in distinct) and sum(d >= 2 for d in distinct) >= 2
    return small and (max(distinct) <= 2 or math.prod(distinct) <= 2 * n)


def _check_grid(question: str, options: list[str]) -> list[str]:
    if all(_combination(o) for o in options):  # "I, II, and III" / "II, III, and IV": roman_combinations
        return []
    splitters = list(_GRID_SPLITTERS)
    if all(2 <= len(o.split()) <= 4 for o in options):
        splitters.append(_SPACE)
    for splitter in splitters:
        rows = _split_all(options, splitter)
        if rows is not None and _is_grid(rows):
            return ["combinatorial_grid"]
    return []


# ---------------------------------------------------------------- catch-all or combination last

_STOPWORDS = frozenset(
    {"the", "a", "an", "of", "only", "both", "and", "or", "nor", "neither", "either", "is", "are", "be", "to", "in"}
    | {"on", "for", "with", "by", "as", "well", "plus", "its", "their", "it"}
)
_CONJUNCTION = re.compile(r"\b(?:and|or|nor|both|neither|either|plus)\b|&|\bas well as\b")


def _content_words(text: str) -> frozenset[str]:
    words = re.findall(r"[^\W_]+", text.casefold())
    singular = (w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)
    return frozenset(singular) - _STOPWORDS


_JOINERS = re.compile(r"\b(?:and|or|nor|plus)\b|[&,]")


def _joiners(text: str) -> int:
    return len(_JOINERS.findall(text.casefold()))


def _combines_others(option: str, others: list[str]) -> bool:
    """The option joins two or more of the other options ("Stationary and unit root process").

    Words shared by every option (a sentence template) are set aside, and a joined option must have
    fewer joining words ("and", "or", commas) than the option: "Fox populations will increase and hare
    populations will decrease" does not join "Both fox and hare populations will decrease".
    """
    if not _CONJUNCTION.search(option.casefold()):
        return False
    answers = [o for o in others if not is_meta(o)]
    shared = frozenset.intersection(_content_words(option), *map(_content_words, answers))
    words = _content_words(option) - shared
    joiners = _joiners(option)
    covered = [o for o in answers if (w := _content_words(o) - shared) and w < words and _joiners(o) < joiners]
    return len(covered) >= 2


def _check_catch_all_last(question: str, options: list[str]) -> list[str]:
    """Walk back from the last option over meta options; flag when a catch-all or a combination is met."""
    found = False
    for i in range(len(options) - 1, 0, -1):
        option = options[i]
        if is_all(option) or is_none(option) or _combination(option) or _is_label_reference(question, options, i):
            continue
        if is_catch_all(option) or _combines_others(option, options[:i] + options[i + 1 :]):
            found = True
            continue
        break
    return ["catch_all_last"] if found else []


_CHECKS: tuple[Callable[[str, list[str]], list[str]], ...] = (
    _check_all_none,
    _check_labels,
    check_order,
    check_ranges,
    _check_combinations,
    _check_grid,
    _check_catch_all_last,
)
