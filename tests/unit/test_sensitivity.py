"""Tests for auditor.input.sensitivity: hand-written positive and negative examples for every reason code,
the option-set key and grouping, and checks on real MMLU items (verified by eye).

The checked MMLU items are in tests/fixtures/data/mmlu/real_items.jsonl; the checks over the whole MMLU test
split read ../shared/data and carry the `shared_data` marker.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.input.items import Item, load_items
from auditor.input.sensitivity import REASON_CODES, group_by_option_set, option_set_key, order_sensitivity
from tests.conftest import DATA_SLICES


def make(*options: str, question: str = "Which of the following is correct?", item_id: str = "t:0") -> Item:
    return Item(item_id, question, tuple(options), None, "t", "t.csv", 0)


def codes(*options: str, question: str = "Which of the following is correct?") -> list[str]:
    return order_sensitivity(make(*options, question=question))


def assert_has(code: str, *options: str, question: str = "Which of the following is correct?") -> None:
    found = codes(*options, question=question)
    assert code in found, f"{code} not in {found} for {options}"


def assert_lacks(code: str, *options: str, question: str = "Which of the following is correct?") -> None:
    found = codes(*options, question=question)
    assert code not in found, f"{code} unexpectedly in {found} for {options}"


# ---------------------------------------------------------------- exchangeable items


@pytest.mark.parametrize(
    "options",
    [
        ("Paris", "London", "Rome", "Berlin"),
        ("mitochondria", "ribosome", "nucleus", "Golgi apparatus"),
        ("0", "4", "2", "6"),
        ("A dog", "A cat", "A horse", "A cow"),
        ("Paris, London", "Rome", "Berlin", "Madrid"),
    ],
)
def test_exchangeable_options_have_no_reason(options: tuple[str, ...]) -> None:
    assert codes(*options) == []


def test_reasons_come_in_reason_code_order() -> None:
    found = codes("less than 3000 N", "3000 N", "greater than 3000 N", "None of the above")
    assert found == ["none_of_the_above", "ranges"]
    assert found == sorted(found, key=REASON_CODES.index)


# ---------------------------------------------------------------- all / none of the above


@pytest.mark.parametrize(
    "last",
    [
        "All of the above",
        "all of the above.",
        "ALL of the above",
        "All the above",
        "All of these",
        "All of these options.",
        "all of the options given are correct",
        "All three",
        "Moons contribute to all of the above.",
        "以上都对",
        "以上都是",
        "以上答案均正确",
        "都是",
    ],
)
def test_all_of_the_above(last: str) -> None:
    assert_has("all_of_the_above", "red", "green", "blue", last)


@pytest.mark.parametrize(
    "option",
    ["All dogs are mammals", "known to exist for all of the jovian planets.", "Allowing all traffic", "Overall"],
)
def test_all_of_the_above_negatives(option: str) -> None:
    assert_lacks("all_of_the_above", "red", "green", "blue", option)


@pytest.mark.parametrize(
    "last",
    [
        "None of the above",
        "none of these.",
        "None",
        "none of above.",
        "None of the above - HIV/AIDS is better defined as a traditional threat",
        "以上都不对",
        "以上都不是",
        "以上说法都不对",
        "都不是",
    ],
)
def test_none_of_the_above(last: str) -> None:
    assert_has("none_of_the_above", "red", "green", "blue", last)


@pytest.mark.parametrize("option", ["None of the offspring will be affected", "Nonetheless, it grew", "No change"])
def test_none_of_the_above_negatives(option: str) -> None:
    assert_lacks("none_of_the_above", "red", "green", "blue", option)


def test_none_among_counts_is_zero_not_a_catch_all() -> None:
    assert codes("None", "One", "Two", "Three") == ["ascending_numbers"]


# ---------------------------------------------------------------- label references


@pytest.mark.parametrize(
    "last",
    [
        "Both A and B",
        "both A and C.",
        "A and C",
        "(A) and (B)",
        "both (a) and (c)",
        "Neither A nor B",
        "neither a. nor b.",
        "a and b only",
        "A, B and C",
        "Either A or B",
        "Both A & C",
        "a. and b. above",
        "Both 2 and 3.",
        "B和C都对",
        "A、B、C都不对",
        "AB都对",
    ],
)
def test_label_reference(last: str) -> None:
    assert_has("label_reference", "red", "green", "blue", last)


def test_every_option_carrying_its_own_label_is_a_label_reference() -> None:
    assert_has("label_reference", "(A) Increased", "(B) Decreased", "(C) Unchanged", "(D) Doubled")
    assert_lacks("label_reference", "(B) Increased", "(A) Decreased", "(C) Unchanged", "(D) Doubled")


@pytest.mark.parametrize(
    "options",
    [
        ("A dog", "A cat and a dog", "A horse", "A cow"),  # the article
        ("a and b", "red", "green", "blue"),  # option A naming itself without a marker: vitamins A, B ...
        ("A and C", "B6 and B12", "B6 and D", "B12 and E"),  # vitamins, not labels
        ("Both D and E", "red", "green", "blue"),  # 4 options: no label E
        ("red", "green", "Range search: given values a and b, find all records", "blue"),  # variables
        (  # letters in most options are names
            "The b and d coefficients significant and the a and c coefficients insignificant",
            "The a and c coefficients significant and the b and d coefficients insignificant",
            "The a and c coefficients significant",
            "The b and d coefficients significant",
        ),
        ("Type A or B personality", "red", "green", "blue"),  # "B" is a name in the question below
        ("red", "green", "$b+c<40$", "blue"),  # arithmetic
    ],
)
def test_label_reference_negatives(options: tuple[str, ...]) -> None:
    assert_lacks("label_reference", *options, question="Which personality, type A or type B, is it?")


def test_letters_named_in_the_question_are_not_labels() -> None:
    options = ("P(A and B) = P(A) · P(B)", "A and B may be mutually exclusive.", "red", "blue")
    assert_lacks("label_reference", *options, question="Events A and B are independent. Which is true?")


def test_option_numbers_used_as_statement_numbers_are_not_labels() -> None:
    question = "Consider: 1. X is red. 2. Y is blue. 3. Z is green. Which are true?"
    assert_lacks("label_reference", "red", "green", "blue", "Both 2 and 3.", question=question)


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "options",
    [
        ("275", "380", "440", "550"),
        ("2 m/s", "4 m/s", "6 m/s", "8 m/s"),
        ("1 month", "3 months", "6 months", "9 months"),
        ("-3", "-1.5", "0", "2"),
        ("−4", "−2", "0", "3"),  # noqa: RUF001 (U+2212 minus sign, as in the data)
        ("1/4", "1/3", "1/2", "3/4"),
        ("\\frac{1}{8}", "\\frac{1}{4}", "\\frac{1}{3}", "\\frac{1}{2}"),
        ("10%", "25%", "50%", "75%"),
        ("0", "10%", "25%", "50%"),
        ("$1,200", "$3,400", "$10,000", "$12,500"),
        ("$900 thousand", "$1.2 million", "$3 million", "$2 billion"),
        ("5.4 × 10–10 J", "9.0 × 10–8 J", "0.6 J", "12.5 J"),  # noqa: RUF001 (as in MMLU)
        ("6*10^8 J", "6*10^11 J", "6*10^14 J", "6*10^17 J"),
        ("3.0e-5", "2.0e-4", "1.5e-3", "0.1"),
        ("9/2 days", "5 days", "41/8 days", "36/7 days"),
        ("1 in 100", "1 in 50", "1 in 10", "1 in 2"),
        ("x = 1", "x = 2", "x = 3", "x = 4"),
        ("about 10 kg", "about 20 kg", "about 40 kg", "about 80 kg"),
        ("seven", "eight", "nine", "ten"),
        ("0.0368", "0.473", "0.9", "None of the above"),
    ],
)
def test_ascending_numbers(options: tuple[str, ...]) -> None:
    assert_has("ascending_numbers", *options)
    assert_lacks("descending_numbers", *options)


@pytest.mark.parametrize(
    "options",
    [
        ("600", "400", "200", "100"),
        ("99m", "36m", "-36m", "-99m"),
        ("1.2 * 10^9 m/s", "3.0 * 10^8 m/s", "1.5 * 10^8 m/s", "1.0 * 10^8 m/s"),
        ("80%", "70%", "60%", "Not enough information given."),
    ],
)
def test_descending_numbers(options: tuple[str, ...]) -> None:
    assert_has("descending_numbers", *options)
    assert_lacks("ascending_numbers", *options)


@pytest.mark.parametrize(
    "options",
    [
        ("0", "4", "2", "6"),
        ("-9", "-5", "-6", "-57"),
        ("1/2", "0.5", "0.75", "1"),  # 1/2 == 0.5: not strictly increasing
        ("2 m/s", "4 km/h", "6 m/s", "8 km/h"),  # mixed units
        ("$15 profit", "$20 loss", "$25 profit", "$30 loss"),
        ("12 - 2", "12 + 12", "12 - 2 - 2", "12 × 7"),  # noqa: RUF001 (expressions, not numbers)
        ("1", "2", "Both", "Neither"),  # two numbers only
        ("3x + 1", "4x + 2", "5x + 3", "6x + 4"),
        ("1 and 2", "3 and 4", "5 and 6", "7 and 8"),
        ("Nagada, 5,000 people", "Uruk, 10,000 people", "Knossos, 20,000 people", "Giza, 200,000 people"),
    ],
)
def test_numbers_negatives(options: tuple[str, ...]) -> None:
    found = codes(*options)
    assert "ascending_numbers" not in found and "descending_numbers" not in found, found


# ---------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("options", "question"),
    [
        (("1917", "1922", "1925", "1927"), "In what year was the PRSA founded?"),
        (("1945", "1939", "1918", "1914"), "When did it end?"),
        (("20,000 B.P.", "12,000 B.P.", "10,000 B.P.", "8,000 B.P."), "Domestication began about:"),
        (("10th century.", "13th century.", "17th century.", "20th century."), "It was built in the"),
        (("Fifth century BCE", "Second century BCE", "Second century CE", "Eighteenth century CE"), "Dated to?"),
        (("in the 1830s.", "in the 1870s.", "in the 1890s.", "in the 1950s."), "It was printed"),
        (("Dred Scott v. Sanford (1857)", "Plessy v. Ferguson (1896)", "Brown v. Board (1954)"), "Which case?"),
        (("200 A.D.", "900 A.D.", "1450 A.D.", "1650 A.D."), "It collapsed around"),
        (("January", "March", "May", "July"), "In which month?"),
        (("on November 1, 1960.", "on November 12, 1981.", "on October 1, 1985."), "The deed was recorded"),
        (("1980年", "1983年", "1986年", "1988年"), "该事件发生于哪一年\uff1f"),
    ],
)
def test_dates_in_order(options: tuple[str, ...], question: str) -> None:
    found = codes(*options, question=question)
    assert "dates_in_order" in found, found
    assert "ascending_numbers" not in found and "descending_numbers" not in found, found


def test_dates_negatives() -> None:
    assert_lacks("dates_in_order", "1939", "1914", "1945", "1918", question="In what year?")
    assert_lacks("dates_in_order", "The Wagner Act of 1935", "The Alien and Sedition Acts of 1798", "The Act of 1917")
    # Four-digit numbers under a question that is not about time are numbers.
    found = codes("1500", "1667", "2000", "2250", question="How many kilograms does it weigh?")
    assert found == ["ascending_numbers"]
    # Numbers with a unit are not years.
    assert codes("1131 Hz", "1134 Hz", "1137 Hz", question="What year's frequency?") == ["ascending_numbers"]


# ---------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "options",
    [
        ("Less than 20", "20-40", "More than 40"),
        ("Fewer than 7", "Between 8 and 15", "Between 16 and 25", "More than 25"),
        ("Less than -1", "Between -1 and 0", "Between 0 and 1", "Bigger than 1"),
        ("1-2 seconds.", "5-10 seconds.", "30-40 seconds.", "50-60 seconds."),
        ("10%–20%", "20%–30%", "30%–40%", "40%–50%"),  # noqa: RUF001 (en dash, as in the data)
        ("less than 20 years.", "20 years.", "more than 20 years.", "None of these."),
        ("0", "1", "2", "3 or more"),
        ("up to 250", "up to 25000", "up to 2500000", "up to 250000000"),
        ("slightly less than 20L", "20L", "slightly more than 20L", "2000L"),
        ("≤5s", "≤10s", "≤20s", "≤30s"),
    ],
)
def test_ranges(options: tuple[str, ...]) -> None:
    assert_has("ranges", *options)


@pytest.mark.parametrize(
    "options",
    [
        ("30 to 50%", "40 to 60%", "20 to 40%", "10 to 30%"),  # not in order
        ("Less than 50%", "More than 75%", "Less than 25%", "More than 50%"),
        ("12 - 2", "15 - 3", "20 - 4", "30 - 5"),  # subtractions, not ranges
        ("10", "20", "30", "40"),  # points only: ascending_numbers, not ranges
        ("between friends", "between 5 and 7 people", "more than 8 people", "up to 10 people"),
    ],
)
def test_ranges_negatives(options: tuple[str, ...]) -> None:
    assert_lacks("ranges", *options)


# ---------------------------------------------------------------- numbered-statement combinations


@pytest.mark.parametrize(
    "options",
    [
        ("I only", "II only", "I and II only", "I, II, and III"),
        ("II only", "I and III only", "II and IV only", "I, II, and IV only"),
        ("(ii) and (iv) only", "(i) and (iii) only", "(i), (ii), and (iii) only", "(i), (ii), (iii), and (iv)"),
        ("None", "III only", "I and II only", "I and III only"),
        ("Only I is correct.", "Only II is correct.", "Only III is correct.", "I II and III are correct."),
        ("1,3,4", "1,2,3", "1,2,3,4", "2,3,4"),
        ("①②", "①③", "②④", "①②③④"),
        ("只有Ⅰ。", "只有Ⅱ。", "仅仅Ⅲ。", "Ⅰ和Ⅱ"),
    ],
)
def test_roman_combinations(options: tuple[str, ...]) -> None:
    assert_has("roman_combinations", *options)
    assert_lacks("combinatorial_grid", *options)


@pytest.mark.parametrize(
    "options",
    [
        ("I", "II", "III", "IV"),  # numerals as answers
        ("1", "2", "3", "4"),
        ("②①③", "③②①", "①②③", "②③①"),  # sequences to put in order, not sets
        ("(2, 3)", "(1, 4)", "(3, 1)", "(4, 2)"),  # coordinates
        ("I only", "II only", "a dog", "a cat"),
    ],
)
def test_roman_combinations_negatives(options: tuple[str, ...]) -> None:
    assert_lacks("roman_combinations", *options)


# ---------------------------------------------------------------- grids


@pytest.mark.parametrize(
    "options",
    [
        ("Wrong, Wrong", "Wrong, Not wrong", "Not wrong, Wrong", "Not wrong, Not wrong"),
        ("True, True", "False, False", "True, False", "False, True"),
        ("Bias increase ; Variance increase", "Bias increase ; Variance decrease", "Bias decrease ; Variance increase"),
        ("Increases \xa0\xa0 Decreases", "Increases \xa0\xa0 Increases", "Decreases \xa0\xa0 Decreases"),
        ("A black man", "A white man", "A black woman", "A white woman"),
        ("expansionary    4    3", "expansionary    4    -3", "contractionary    4    3", "contractionary    4    -3"),
        (
            "出血性梗死\uff0c液化性坏死",
            "出血性梗死\uff0c凝固性坏死",
            "贫血性梗死\uff0c液化性坏死",
            "贫血性梗死\uff0c凝固性坏死",
        ),
    ],
)
def test_combinatorial_grid(options: tuple[str, ...]) -> None:
    assert_has("combinatorial_grid", *options)


@pytest.mark.parametrize(
    "options",
    [
        ("Paris, London", "Rome", "Berlin", "Madrid"),  # one option with a comma
        ("Paris, France", "Rome, Italy", "Berlin, Germany", "Madrid, Spain"),  # no part repeats
        ("3,4", "1,3", "2,3", "4,1"),  # commas between digits do not split
        ("Vitamin A", "Vitamin C", "Vitamin D", "Vitamin E"),  # only one part varies
        ("United States", "United Kingdom", "South Africa", "South Korea"),
        ("Yes, because it was a contract", "Yes, because he agreed", "No, because it was oral", "No, unless signed"),
        ("Wrong, Wrong", "Not wrong, Not wrong"),  # two options are no grid
    ],
)
def test_combinatorial_grid_negatives(options: tuple[str, ...]) -> None:
    assert_lacks("combinatorial_grid", *options)


# ---------------------------------------------------------------- catch-all or combination last


@pytest.mark.parametrize(
    "options",
    [
        ("Stationary process", "Unit root process", "Explosive process", "Stationary and unit root process"),
        ("speed", "momentum", "Both", "Neither"),
        ("wave model", "particle model", "Both of these", "Neither of these"),
        ("It is a PRF.", "It is a PRG.", "Both of the above.", "None of the above."),
        ("less.", "more.", "the same.", "Need more information."),
        ("increases", "decreases", "stays the same", "Cannot be determined"),
        ("increases", "decreases", "stays the same", "It depends on the temperature"),
        ("increases", "decreases", "stays the same", "There is insufficient information given"),
        ("larceny only.", "embezzlement only.", "both larceny and embezzlement.", "neither larceny nor embezzlement."),
        ("attempted larceny.", "attempted robbery.", "assault.", "assault and attempted larceny."),
        ("增大", "减小", "不变", "无法判断"),
    ],
)
def test_catch_all_last(options: tuple[str, ...]) -> None:
    assert_has("catch_all_last", *options)


@pytest.mark.parametrize(
    "options",
    [
        ("Need more information", "10 N", "20 N", "30 N"),  # a catch-all first, not last
        ("red", "green", "blue", "All of the above"),  # its own code
        ("red", "green", "blue", "None of the above"),
        ("red", "green", "Both A and B", "blue"),
        (  # a template shared by every option, not a combination
            "Both fox and hare populations will decrease.",
            "Both fox and hare populations will increase.",
            "Fox populations will decrease and hare populations will increase.",
            "Fox populations will increase and hare populations will decrease.",
        ),
        (
            "Valid",
            "Invalid. Counterexample when X, Y, and Z are true",
            "Invalid. Counterexample when Y and Z are true and Z is false",
            "Invalid. Counterexample when X is true and Y and Z are false",
        ),
        ("Both are concerned with law in action.", "Both are sceptical.", "Both are liberal.", "Both are formal."),
    ],
)
def test_catch_all_last_negatives(options: tuple[str, ...]) -> None:
    assert_lacks("catch_all_last", *options)


# ---------------------------------------------------------------- option sets


def test_option_set_key_ignores_order_whitespace_and_case() -> None:
    a = make("Wrong, Wrong", "Not wrong, Wrong", "Wrong, Not wrong", "Not wrong, Not wrong")
    b = make("not wrong,  not wrong", " WRONG, wrong", "Wrong, Not wrong", "Not wrong,\tWrong")
    assert option_set_key(a) == option_set_key(b)
    assert option_set_key(a) != option_set_key(make("Wrong, Wrong", "Not wrong, Wrong", "Wrong, Not wrong"))
    assert option_set_key(make("a b", "c")) != option_set_key(make("a", "b c"))  # no ambiguous joining


def test_group_by_option_set_keeps_groups_of_two_or_more() -> None:
    items = [
        make("x", "y", "z", item_id="t:0"),
        make("a", "b", "c", item_id="t:1"),
        make("z", "x", "y", item_id="t:2"),
        make("Y", "Z", "X", item_id="t:3"),
    ]
    assert group_by_option_set(items) == {option_set_key(items[0]): ["t:0", "t:2", "t:3"]}
    assert group_by_option_set([]) == {}


# ---------------------------------------------------------------- real MMLU items


@pytest.fixture(scope="module")
def mmlu(shared_data: Path) -> dict[str, Item]:
    return {item.id: item for item in load_items(shared_data / "mmlu" / "test", skip_invalid=True).items}


@pytest.fixture(scope="module")
def real_items() -> dict[str, Item]:
    return {item.id: item for item in load_items(DATA_SLICES / "mmlu" / "real_items.jsonl").items}


@pytest.mark.shared_data
def test_every_moral_scenarios_item_is_a_grid_and_they_form_one_group(mmlu: dict[str, Item]) -> None:
    moral = [item for item in mmlu.values() if item.subject == "moral_scenarios"]
    assert len(moral) > 800
    assert all("combinatorial_grid" in order_sensitivity(item) for item in moral)
    groups = group_by_option_set(moral)
    assert list(groups.values()) == [[item.id for item in moral]]
    whole = group_by_option_set(list(mmlu.values()))
    assert whole[option_set_key(moral[0])] == [item.id for item in moral]


@pytest.mark.parametrize(
    ("item_id", "expected"),
    [
        ("elementary_mathematics_test:283", ["ascending_numbers"]),  # 275, 380, 440, 550
        (
            "high_school_physics_test:97",
            ["ascending_numbers"],
        ),  # 5.4 x 10-10 J (a multiplication sign and an en dash) ... 12.5 J
        ("miscellaneous_test:64", ["ascending_numbers"]),  # 6*10^8 J ... 6*10^17 J
        ("professional_accounting_test:21", ["descending_numbers"]),  # 600, 400, 200, 100
        ("high_school_mathematics_test:34", []),  # -9, -5, -6, -57
        ("prehistory_test:27", ["dates_in_order"]),  # 20,000 B.P. ... 8,000 B.P.
        ("high_school_us_history_test:156", ["dates_in_order"]),  # court cases of 1857, 1866, 1896, 1954
        ("us_foreign_policy_test:64", ["ranges"]),  # Fewer than 7, Between 8 and 15, ..., More than 25
        ("conceptual_physics_test:198", ["ranges", "catch_all_last"]),  # ..., greater than 3000 N, Need more info
        ("college_computer_science_test:28", ["roman_combinations"]),  # I only, III only, I and II only, ...
        ("econometrics_test:34", ["roman_combinations"]),  # (ii) and (iv) only, ...
        ("business_ethics_test:94", ["roman_combinations"]),  # 1,2,3 / 1,2,4 / 1,3,4 / 2,3,4
        ("abstract_algebra_test:10", ["combinatorial_grid"]),  # True, True / False, False / ...
        ("professional_accounting_test:239", ["combinatorial_grid"]),  # Increase Increase / ...
        ("econometrics_test:84", ["catch_all_last"]),  # ..., Stationary and unit root process
        ("conceptual_physics_test:79", ["catch_all_last"]),  # speed, momentum, Both, Neither
        ("conceptual_physics_test:40", ["catch_all_last"]),  # less., more., the same., Need more information.
        ("human_sexuality_test:58", ["label_reference"]),  # ejaculation, erection, genital sensation, both A and C
        ("high_school_macroeconomics_test:7", ["label_reference"]),  # ..., (A) and (C)
        ("electrical_engineering_test:52", ["none_of_the_above", "label_reference"]),  # both A and B., none ...
        ("conceptual_physics_test:120", ["all_of_the_above"]),  # radiant energy, fluids, insulators, All of these
        ("security_studies_test:142", ["all_of_the_above"]),  # "All of these options." in position B
        ("college_mathematics_test:60", ["ascending_numbers"]),  # None, One, Two, Three
        # Letters that are names, not labels.
        ("high_school_statistics_test:199", []),  # P(A and B) = P(A) · P(B), A and B may ...
        ("human_aging_test:14", []),  # vitamins: A and C, B6 and B12, B6 and D, B12 and E
        ("moral_disputes_test:277", []),  # A is a better athlete., B is a better athlete., ...
        ("econometrics_test:104", []),  # The b and d coefficients significant and the a and c ...
        # A shared sentence template is not a combination.
        ("college_biology_test:12", []),  # Both fox and hare populations will decrease. ...
        ("high_school_microeconomics_test:80", []),  # If the demand curve is price elastic and ...
    ],
)
def test_real_items(real_items: dict[str, Item], item_id: str, expected: list[str]) -> None:
    assert order_sensitivity(real_items[item_id]) == expected, real_items[item_id].options


@pytest.mark.shared_data
def test_share_of_flagged_mmlu_items_is_plausible(mmlu: dict[str, Item]) -> None:
    """About a fifth of MMLU is order-sensitive (moral_scenarios alone is 6%); far more would mean noise."""
    flagged = sum(bool(order_sensitivity(item)) for item in mmlu.values())
    assert 0.15 < flagged / len(mmlu) < 0.30


# ---------------------------------------------------------------- properties

_OPTION_TEXT = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(["All of the above", "None", "Both A and B", "I and II only", "1,2", "Wrong, Not wrong", "1990s"]),
    st.builds(
        lambda x, unit: f"{x}{unit}", st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["", "%", " m"])
    ),
)


@given(st.lists(_OPTION_TEXT, min_size=2, max_size=10), st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_any_item_gets_known_codes_and_a_key_that_ignores_order(options: list[str], rng: random.Random) -> None:
    found = order_sensitivity(make(*options))
    assert found == [code for code in REASON_CODES if code in found]
    shuffled = options[:]
    rng.shuffle(shuffled)
    assert option_set_key(make(*options)) == option_set_key(make(*shuffled))
