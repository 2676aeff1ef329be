"""The English normaliser behind every WER figure, on text that trips naive normalisers."""

from __future__ import annotations

import pytest

from tasks.quality.wer import normalize_english, word_error_rate


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("Mr. Smith met Mrs Jones and Dr. Who.", "mister smith met missus jones and doctor who"),
        ("I can't, won't, and shouldn't; they're sure it's done.",
         "i can not will not and should not they are sure it is done"),
        ("She said 'really' and 'red'.", "she said really and red"),  # quotes are not contractions
        ("It’s John’s dog’s bowl.", "it is johns dogs bowl"),
        ("One hundred and five", "105"),
        ("two thousand and twenty-four", "2024"),
        ("five hundred thousand", "500000"),
        ("twenty one pilots", "21 pilots"),
        ("one two three", "1 2 3"),
        ("nineteen ninety", "19 90"),
        ("zero zero seven", "0 0 7"),
        ("bread and butter, one and two", "bread and butter 1 and 2"),
        ("It costs $1,000.50 (50% off) & more", "it costs 1000.50 dollars 50 percent off and more"),
        ("Um, the 3.5 kg bag... OK?", "the 3.5 kg bag okay"),
        ("well-known end-to-end", "well known end to end"),
    ],
)
def test_normalisation(text: str, normalised: str) -> None:
    assert normalize_english(text) == normalised


def test_style_differences_are_not_errors() -> None:
    reference = "Water boils at one hundred degrees; Mr. Lee doesn't agree."
    assert word_error_rate([reference], ["water boils at 100 degrees mister lee does not agree"]) == 0.0


def test_real_differences_are_errors() -> None:
    assert word_error_rate(["the quick brown fox"], ["the quick round fox"]) == pytest.approx(0.25)
    assert word_error_rate(["one hundred"], ["one thousand"]) == 1.0
    assert word_error_rate(["a b", ""], ["a b", "invented text"]) == 0.0  # empty references are left out
