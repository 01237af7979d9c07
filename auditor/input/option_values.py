"""Numbers, dates and ranges read out of option texts: the "sorted" order-sensitivity rules.

Options that are all numbers (with units, scales, fractions, powers, words), all dates, or all ranges,
and that run strictly up or down in the published order, read naturally only in that order:
`check_order` and `check_ranges` report them. Part of auditor/sensitivity.py's rules.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from auditor.input.option_text import CACHE_SIZE, TRAILING_PUNCT, direction, fold, is_meta, strictly_monotonic

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
    rest = rest.strip().rstrip(TRAILING_PUNCT).strip()
    if rest and (len(rest) > 30 or len(rest.split()) > 4 or _BAD_UNIT_START.match(rest) or _LOOSE_DIGIT.search(rest)):
        return None
    unit = re.sub(r"[\s.]", "", rest.casefold())
    if len(unit) > 2 and unit.endswith("s") and not unit.endswith("ss"):
        unit = unit[:-1]
    return currency + unit


def _strip_prefix(text: str) -> str:
    text = _APPROX.sub("", text.strip(), count=1)
    return _ASSIGN.sub("", text, count=1)


@lru_cache(maxsize=CACHE_SIZE)
def parse_number(option: str) -> tuple[float, str] | None:
    """(value, unit) when the whole option is one number with an optional unit."""
    lead = _lead_number(_strip_prefix(option))
    if lead is None or math.isnan(lead[0]):
        return None
    value, currency, rest = lead
    unit = _unit(rest, currency)
    return None if unit is None else (value, unit)


def _answers(options: list[str]) -> list[str]:
    """The options that are answers in their own right (catch-alls left out)."""
    return [o for o in options if not is_meta(o)]


def _number_sequence(options: list[str]) -> tuple[list[float], str] | None:
    """The values and the shared unit when every answer option is a number in one unit (three or more)."""
    answers = _answers(options)
    parsed = [parse_number(o) for o in answers]
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


@lru_cache(maxsize=CACHE_SIZE)
def _parse_date(option: str) -> float | None:
    """The first date named in the option ("March" alone counts only as the whole option)."""
    text = fold(option)
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
    m = _DATE.search(fold(option))
    return m is not None and m["year"] is None


def check_order(question: str, options: list[str]) -> list[str]:
    """Numbers sorted up or down, or dates in (reverse) chronological order."""
    numbers = _number_sequence(options)
    if numbers is not None:
        values, unit = numbers
        dated = unit in _DATE_UNITS or all(_is_explicit_date(o) for o in _answers(options))
        if not dated and not _is_year_list(question, values, unit):
            trend = direction(values)
            return [f"{trend}_numbers"] if trend else []
    dates = _date_sequence(options)
    return ["dates_in_order"] if dates is not None and direction(dates) else []


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
    text = _strip_prefix(option.rstrip(TRAILING_PUNCT))
    for pattern, low, high in ((_BELOW, -math.inf, None), (_ABOVE, None, math.inf)):
        m = pattern.match(text)
        if m:
            bound = parse_number(text[m.end() :])
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
        second = parse_number(first[2][sep.end() :])
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


def check_ranges(question: str, options: list[str]) -> list[str]:
    parsed = [_parse_interval(o) for o in _answers(options)]
    if len(parsed) < 3 or any(p is None for p in parsed):
        return []
    intervals = [p for p in parsed if p is not None]
    if all(point for _, point in intervals) or len({unit for (_, _, unit), _ in intervals}) != 1:
        return []
    keys = [(low, high) for (low, high, _), _ in intervals]
    return ["ranges"] if strictly_monotonic(keys) else []
