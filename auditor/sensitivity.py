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

import itertools
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

from auditor.items import LABELS, Item

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
    options = [_clean(o) for o in item.options]
    found: set[str] = set()
    for check in _CHECKS:
        found.update(check(item.question, options))
    return [code for code in REASON_CODES if code in found]


def option_set_key(item: Item) -> str:
    """A canonical key of the item's option multiset: sorted, whitespace-normalized, casefolded."""
    return json.dumps(sorted(" ".join(o.split()).casefold() for o in item.options), ensure_ascii=False)


def group_by_option_set(items: Iterable[Item]) -> dict[str, list[str]]:
    """Item ids grouped by `option_set_key`, keeping only groups of two items or more."""
    groups: dict[str, list[str]] = {}
    for item in items:
        groups.setdefault(option_set_key(item), []).append(item.id)
    return {key: ids for key, ids in groups.items() if len(ids) >= 2}


# ---------------------------------------------------------------- text helpers

_CACHE = 1 << 16  # per-string caches: an option list is checked by several rules
_CIRCLED = {chr(0x2460 + k): f"({k + 1})" for k in range(20)}  # ① .. ⑳ (NFKC would merge "①②" into "12")
_TRAILING_PUNCT = " \t.;:,!?。\uff1b\uff1a\uff0c\uff01\uff1f"


@lru_cache(maxsize=_CACHE)
def _clean(text: str) -> str:
    """NFKC (no-break spaces, full-width forms, Ⅲ -> III), circled digits as "(k)", stripped."""
    text = "".join(_CIRCLED.get(ch, ch) for ch in text)
    return unicodedata.normalize("NFKC", text).strip()


@lru_cache(maxsize=_CACHE)
def _fold(text: str) -> str:
    """Casefolded, single-spaced, without trailing punctuation."""
    return " ".join(text.split()).casefold().rstrip(_TRAILING_PUNCT)


def _strictly_monotonic(keys: Sequence[tuple[float, ...]]) -> str | None:
    """Return "ascending" / "descending" when every step goes the same way, else None."""
    pairs = list(itertools.pairwise(keys))
    if all(a < b for a, b in pairs):
        return "ascending"
    if all(a > b for a, b in pairs):
        return "descending"
    return None


def _direction(values: Sequence[float]) -> str | None:
    return _strictly_monotonic([(v,) for v in values])


# ---------------------------------------------------------------- meta options (all / none / catch-all)

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


@lru_cache(maxsize=_CACHE)
def _is_all(option: str) -> bool:
    text = _fold(option)
    return bool(_ALL_EN.search(text) or _ALL_ZH.search(text))


@lru_cache(maxsize=_CACHE)
def _is_none(option: str) -> bool:
    text = _fold(option)
    return bool(_NONE_EN.search(text) or _NONE_ZH.search(text))


@lru_cache(maxsize=_CACHE)
def _is_catch_all(option: str) -> bool:
    text = _fold(option)
    return bool(_CATCH_ALL_EN.search(text) or _CATCH_ALL_ZH.search(text))


@lru_cache(maxsize=_CACHE)
def _is_meta(option: str) -> bool:
    """An option about the other options rather than an answer in its own right."""
    return _is_all(option) or _is_none(option) or _is_catch_all(option)


def _check_all_none(question: str, options: list[str]) -> list[str]:
    codes = []
    if any(_is_all(o) for o in options):
        codes.append("all_of_the_above")
    if any(_is_none(o) and not _is_zero_count(o, options) for o in options):
        codes.append("none_of_the_above")
    return codes


def _is_zero_count(option: str, options: list[str]) -> bool:
    """A bare "None" among counts ("None", "One", "Two", "Three") is the number zero, not a catch-all."""
    return _fold(option) == "none" and all(_parse_number(o) is not None for o in options if o != option)


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


@lru_cache(maxsize=_CACHE)
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
    text = _clean(question)
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

_APPROX = re.compile(
    r"^(?:(?:about|approximately|approx\.|roughly|around|nearly|almost|exactly|only|just|circa|ca\.|c\.)\s+|[~≈\u223c]\s*)",
    re.IGNORECASE,
)
_ASSIGN = re.compile(r"^[A-Za-z][A-Za-z0-9_']{0,3}\s*[=≈]\s*")
_NUMBER = re.compile(
    r"(?P<sign>[-\u2212\u2013+]?)\s*(?P<cur>[$€£¥₹]?)\s*(?P<sign2>[-\u2212\u2013]?)"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d,]\d)|\.\d+)"
)
_LATEX_FRAC = re.compile(r"(?P<sign>[-\u2212\u2013]?)\s*\\[dt]?frac\s*\{\s*(?P<a>\d+)\s*\}\s*\{\s*(?P<b>\d+)\s*\}")
_RATIO = re.compile(r"\s*(?:[/\u2044]|over\b|in\b|out\s+of\b)\s*(\d+(?:\.\d+)?)(?![\d.,]\d)", re.IGNORECASE)
_SCI = re.compile(
    r"\s*(?:[x\u00d7*·]|\\times|\\cdot)\s*10\s*(?:\^|\*\*)?\s*\{?\s*([-\u2212\u2013+]?)\s*(\d+)\s*\}?|[eE]([-+]?)(\d+)(?![A-Za-z])"
)
_POWER = re.compile(r"\s*(?:\^|\*\*)\s*\{?\s*([-\u2212\u2013]?)(\d+)\s*\}?")
_SCALE = re.compile(r"\s*(thousand|million|billion|trillion)\b", re.IGNORECASE)
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_WORD_NUMBERS = {
    w: float(i)
    for i, w in enumerate(
        [
            *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"),
            *("twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"),
        ]
    )
} | {"thirty": 30.0, "forty": 40.0, "fifty": 50.0, "sixty": 60.0, "hundred": 100.0}
_WORD_NUMBER = re.compile(r"(?P<w>[a-z]+)\b", re.IGNORECASE)
_BAD_UNIT_START = re.compile(
    r"^(?:[-\u2212\u2013—+=\u00d7*/^<>(,:;|]|\.\d|(?:to|and|or|of|out|in|over|times|x|plus|minus|than|from|less|more|by)\b)",
    re.IGNORECASE,
)
_LOOSE_DIGIT = re.compile(r"(?:^|[\s(=,;+\u00d7*\u2013—\-])\d")
_MINUS = "-\u2212\u2013"


def _lead_number(text: str) -> tuple[float, str, str] | None:
    """(value, currency, rest) for a number at the start of `text`, else None."""
    m = _LATEX_FRAC.match(text)
    if m:
        value = int(m["a"]) / int(m["b"]) if int(m["b"]) else math.nan
        return (-value if m["sign"] else value), "", text[m.end() :]
    m = _NUMBER.match(text)
    if m is None:
        return _lead_word_number(text)
    value = float(m["num"].replace(",", ""))
    negative = bool(m["sign"]) and m["sign"] in _MINUS
    if negative != bool(m["sign2"]):
        value = -value
    value, rest = _number_tail(value, text[m.end() :])
    return value, m["cur"], rest


def _lead_word_number(text: str) -> tuple[float, str, str] | None:
    m = _WORD_NUMBER.match(text)
    if m is None or m["w"].casefold() not in _WORD_NUMBERS:
        return None
    return _WORD_NUMBERS[m["w"].casefold()], "", text[m.end() :]


def _number_tail(value: float, rest: str) -> tuple[float, str]:
    """Apply a ratio ("/4", "in 4"), scientific notation, a power or a scale word that follows a number."""
    m = _RATIO.match(rest)
    if m:
        denominator = float(m.group(1))
        return (value / denominator if denominator else math.nan), rest[m.end() :]
    m = _SCI.match(rest)
    if m:
        sign, digits = (m.group(1), m.group(2)) if m.group(2) else (m.group(3), m.group(4))
        exponent = -int(digits) if sign and sign in _MINUS else int(digits)
        return value * _power(10.0, exponent), rest[m.end() :]
    m = _POWER.match(rest)
    if m:
        return _power(value, -int(m.group(2)) if m.group(1) else int(m.group(2))), rest[m.end() :]
    m = _SCALE.match(rest)
    if m:
        return value * _SCALES[m.group(1).casefold()], rest[m.end() :]
    return value, rest


def _power(base: float, exponent: int) -> float:
    try:
        return float(base**exponent)
    except (OverflowError, ZeroDivisionError):
        return math.nan


def _unit(rest: str, currency: str = "") -> str | None:
    """The normalized unit in what follows a number ("" for none), or None when it is not a unit."""
    rest = rest.strip().rstrip(_TRAILING_PUNCT).strip()
    if rest and (len(rest) > 30 or len(rest.split()) > 4 or _BAD_UNIT_START.match(rest) or _LOOSE_DIGIT.search(rest)):
        return None
    unit = re.sub(r"[\s.]", "", rest.casefold())
    if len(unit) > 2 and unit.endswith("s") and not unit.endswith("ss"):
        unit = unit[:-1]
    return currency + unit


def _strip_prefix(text: str) -> str:
    text = _APPROX.sub("", text.strip(), count=1)
    return _ASSIGN.sub("", text, count=1)


@lru_cache(maxsize=_CACHE)
def _parse_number(option: str) -> tuple[float, str] | None:
    """(value, unit) when the whole option is one number with an optional unit."""
    lead = _lead_number(_strip_prefix(option))
    if lead is None or math.isnan(lead[0]):
        return None
    value, currency, rest = lead
    unit = _unit(rest, currency)
    return None if unit is None else (value, unit)


def _answers(options: list[str]) -> list[str]:
    """The options that are answers in their own right (catch-alls left out)."""
    return [o for o in options if not _is_meta(o)]


def _number_sequence(options: list[str]) -> tuple[list[float], str] | None:
    """The values and the shared unit when every answer option is a number in one unit (three or more)."""
    answers = _answers(options)
    parsed = [_parse_number(o) for o in answers]
    if len(parsed) < 3 or any(p is None for p in parsed):
        return None
    units = {p[1] for p in parsed if p is not None} - {""}  # "0" goes with "10%", "25%"
    if len(units) > 1:
        return None
    return [p[0] for p in parsed if p is not None], units.pop() if units else ""


# ---------------------------------------------------------------- dates

_ORDINALS = [
    *("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh"),
    *("twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth"),
    *("twentieth", "twenty-first"),
]
_MONTHS = [
    *("january", "february", "march", "april", "may", "june", "july", "august", "september", "october"),
    *("november", "december"),
]
_INT = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_DATE = re.compile(
    rf"(?P<ago>{_INT})\s*(?P<agoscale>million\s+|thousand\s+)?(?:years?\s+ago|b\.?\s?p\.?(?![a-z])|k?ya\b)"
    rf"|(?P<bc>{_INT})\s*b\.?\s?c\.?(?:\s?e\.?)?(?![a-z])"
    r"|(?<![a-z])(?:a\.?d\.?|c\.?e\.?)\s*(?P<ad>\d+)(?!\d)"
    r"|(?<![\d,.])(?P<ad2>\d+)\s*(?:a\.?d\.?|c\.?e\.?)(?![a-z])"
    rf"|(?:(?P<cmod>early|mid|late)[\s-]+)?(?P<cent>\d{{1,2}}(?:st|nd|rd|th)|{'|'.join(reversed(_ORDINALS))})"
    r"\s+centur(?:y|ies)(?P<cbc>\s+b\.?\s?c\.?(?:\s?e\.?)?(?![a-z]))?"
    r"|(?:(?P<dmod>early|mid|late)[\s-]+)?(?:the\s+)?(?<!\d)(?P<dec>\d{3}0)['\u2019]?s(?![a-z])"
    rf"|\b(?P<mon>{'|'.join(_MONTHS)})(?:\s+(?P<day>\d{{1,2}}))?,?\s+(?P<my>\d{{4}})(?!\d)"
    r"|(?<![\d,.$£€¥])(?P<year>1\d{3}|20\d{2})(?![\d%]|[.,]\d)"
)
_MONTH_ONLY = re.compile(rf"(?P<mon>{'|'.join(_MONTHS)})(?:\s+(?P<day>\d{{1,2}}))?")
_MOD_OFFSET = {"early": 0.15, "mid": 0.5, "late": 0.85, None: 0.5}
_TIME_WORDS = re.compile(
    r"\b(?:year|when|date|dates|dated|century|decade|era|period|founded|established|began|begin|ended|ago|since|"
    r"published|born|died|invented|introduced|enacted|passed|signed)\b|年",
    re.IGNORECASE,
)
_DATE_UNITS = {"bp", "yearago", "yearsago", "bc", "bce", "ad", "ce", "ya", "年"}


def _date_value(m: re.Match[str]) -> float:
    """A point in time (years, negative before the common era) for one `_DATE` match."""
    if m["ago"]:
        return -float(m["ago"].replace(",", "")) * (_SCALES.get((m["agoscale"] or "").strip(), 1.0))
    if m["bc"]:
        return -float(m["bc"].replace(",", ""))
    if m["ad"] or m["ad2"]:
        return float(m["ad"] or m["ad2"])
    if m["cent"]:
        return _century_value(m["cent"], m["cmod"], bool(m["cbc"]))
    if m["dec"]:
        start = int(m["dec"])
        return start + (100 if start % 100 == 0 else 10) * _MOD_OFFSET[m["dmod"]]
    if m["mon"]:
        return int(m["my"]) + _month_value(m["mon"], m["day"]) / 12
    return float(m["year"])


def _month_value(month: str, day: str | None) -> float:
    return _MONTHS.index(month) + (int(day) / 32 if day else 0.0)


def _century_value(word: str, modifier: str | None, bce: bool) -> float:
    number = int(re.sub(r"\D", "", word)) if word[0].isdigit() else _ORDINALS.index(word) + 1
    start = -number * 100 if bce else (number - 1) * 100
    return start + 100 * _MOD_OFFSET[modifier]


@lru_cache(maxsize=_CACHE)
def _parse_date(option: str) -> float | None:
    """The first date named in the option ("March" alone counts only as the whole option)."""
    text = _fold(option)
    only_month = _MONTH_ONLY.fullmatch(text)
    if only_month:
        return _month_value(only_month["mon"], only_month["day"])
    m = _DATE.search(text)
    return None if m is None else _date_value(m)


def _date_sequence(options: list[str]) -> list[float] | None:
    answers = _answers(options)
    values = [_parse_date(o) for o in answers]
    if len(values) < 3 or any(v is None for v in values):
        return None
    return [v for v in values if v is not None]


def _is_year_list(question: str, values: list[float], unit: str) -> bool:
    """Plain numbers that are years: integers 1000-2100 under a question about time."""
    years = all(v.is_integer() and 1000 <= v <= 2100 for v in values)
    return unit == "" and years and bool(_TIME_WORDS.search(question))


def _is_explicit_date(option: str) -> bool:
    """A date by its form ("8,000 B.P.", "10th century", "AD 400"), not a bare four-digit number."""
    m = _DATE.search(_fold(option))
    return m is not None and m["year"] is None


def _check_order(question: str, options: list[str]) -> list[str]:
    """Numbers sorted up or down, or dates in (reverse) chronological order."""
    numbers = _number_sequence(options)
    if numbers is not None:
        values, unit = numbers
        dated = unit in _DATE_UNITS or all(_is_explicit_date(o) for o in _answers(options))
        if not dated and not _is_year_list(question, values, unit):
            direction = _direction(values)
            return [f"{direction}_numbers"] if direction else []
    dates = _date_sequence(options)
    return ["dates_in_order"] if dates is not None and _direction(dates) else []


# ---------------------------------------------------------------- ranges

_DEGREE = r"^(?:(?:slightly|much|far|just|a\s+little|well)\s+)?"
_BELOW = re.compile(
    _DEGREE + r"(?:(?:less|fewer|lower|smaller|shorter|younger)\s+than|below|under|up\s+to|at\s+most|"
    r"no\s+more\s+than|not\s+more\s+than|<=|≤|<)\s*",
    re.IGNORECASE,
)
_ABOVE = re.compile(
    _DEGREE + r"(?:(?:more|greater|higher|larger|bigger|longer|older)\s+than|over|above|at\s+least|in\s+excess\s+of|"
    r"no\s+less\s+than|not\s+less\s+than|>=|≥|>)\s*",
    re.IGNORECASE,
)
_BETWEEN = re.compile(r"^(?:between|from)\s+", re.IGNORECASE)
_RANGE_SEP = re.compile(r"^\s*%?\s*(?P<sep>-|\u2013|—|to|through|until)\s*", re.IGNORECASE)
_BETWEEN_SEP = re.compile(r"^\s*%?\s*(?P<sep>-|\u2013|—|to|and|through|until)\s*", re.IGNORECASE)
_DASHES = "-\u2013—"
_OR_BELOW = re.compile(r"\s*(?:or|and)\s+(?:below|less|fewer|under|lower|younger)\s*$", re.IGNORECASE)
_OR_ABOVE = re.compile(r"\s*(?:(?:or|and)\s+(?:above|more|over|higher|greater|older|up)|\+)\s*$", re.IGNORECASE)
Interval = tuple[float, float, str]


def _parse_interval(option: str) -> tuple[Interval, bool] | None:
    """((low, high, unit), is_point) for an option that is a number, an interval or a bound."""
    text = _strip_prefix(option.rstrip(_TRAILING_PUNCT))
    for pattern, low, high in ((_BELOW, -math.inf, None), (_ABOVE, None, math.inf)):
        m = pattern.match(text)
        if m:
            bound = _parse_number(text[m.end() :])
            return None if bound is None else ((_pick(low, bound[0]), _pick(high, bound[0]), bound[1]), False)
    m = _BETWEEN.match(text)
    return _two_sided(text[m.end() :] if m else text, required=m is not None)


def _pick(fixed: float | None, value: float) -> float:
    return value if fixed is None else fixed


def _two_sided(text: str, *, required: bool) -> tuple[Interval, bool] | None:
    """Parse "N to M unit", "N or more", "N or below", or (unless `required`) a single number."""
    first = _lead_number(text)
    if first is None:
        return None
    sep = (_BETWEEN_SEP if required else _RANGE_SEP).match(first[2])
    if sep is not None:
        second = _parse_number(first[2][sep.end() :])
        # "12 - 2" is a subtraction, not a range: a dash range runs upwards ("to" may run either way).
        if second is None or (sep["sep"] in _DASHES and second[0] <= first[0]):
            return None
        low, high = sorted((first[0], second[0]))
        return (low, high, second[1]), False
    if required:
        return None
    return _one_sided(first)


def _one_sided(number: tuple[float, str, str]) -> tuple[Interval, bool] | None:
    value, currency, rest = number
    for pattern, interval in ((_OR_BELOW, (-math.inf, value)), (_OR_ABOVE, (value, math.inf))):
        m = pattern.search(rest)
        if m:
            unit = _unit(rest[: m.start()], currency)
            return None if unit is None else ((interval[0], interval[1], unit), False)
    unit = _unit(rest, currency)
    return None if unit is None else ((value, value, unit), True)


def _check_ranges(question: str, options: list[str]) -> list[str]:
    parsed = [_parse_interval(o) for o in _answers(options)]
    if len(parsed) < 3 or any(p is None for p in parsed):
        return []
    intervals = [p for p in parsed if p is not None]
    if all(point for _, point in intervals) or len({unit for (_, _, unit), _ in intervals}) != 1:
        return []
    keys = [(low, high) for (low, high, _), _ in intervals]
    return ["ranges"] if _strictly_monotonic(keys) else []


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


@lru_cache(maxsize=_CACHE)
def _combination(option: str) -> tuple[int, bool] | None:
    """(number of statements, says "only") when the option is a set of numbered statements in increasing order.

    "②①③" (a sequence to put in order, not a set) is not a combination.
    """
    text = _fold(option)
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
    if len(found) < 2 or any(c is None and not _is_meta(o) for c, o in zip(combos, options, strict=True)):
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
        parts = [_fold(p) for p in splitter.split(_LABEL_PREFIX.sub("", option))]
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
    answers = [o for o in others if not _is_meta(o)]
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
        if _is_all(option) or _is_none(option) or _combination(option) or _is_label_reference(question, options, i):
            continue
        if _is_catch_all(option) or _combines_others(option, options[:i] + options[i + 1 :]):
            found = True
            continue
        break
    return ["catch_all_last"] if found else []


_CHECKS: tuple[Callable[[str, list[str]], list[str]], ...] = (
    _check_all_none,
    _check_labels,
    _check_order,
    _check_ranges,
    _check_combinations,
    _check_grid,
    _check_catch_all_last,
)
