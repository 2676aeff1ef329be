"""Word error rate after an English normalisation, so style is not counted as error.

The normalisation, in order (documented because every WER figure depends on it):

1. lower-case; curly apostrophes become straight ones;
2. contractions are expanded: "won't" → "will not", "can't" → "can not", "let's" →
   "let us", "it's" / "that's" / "what's" / "there's" → "… is", and the suffixes
   "n't", "'re", "'ll", "'ve", "'m", "'d" → "not", "are", "will", "have", "am", "would";
   any other apostrophe is dropped ("john's" → "johns", both sides alike);
3. titles: "Mr." / "Mr" → "mister", "Mrs." → "missus", "Ms." → "miss", "Dr." → "doctor",
   "St." → "saint", "vs." → "versus";
4. symbols: "%" → "percent", "&" → "and", "$5" → "5 dollars"; "1,000" → "1000";
5. hyphens, dashes and slashes become spaces; all other punctuation is dropped, except
   a decimal point between digits ("3.5");
6. spoken numbers become digits, so "five" = "5" and "one hundred and five" = "105":
   units follow tens ("twenty one" → 21), "hundred" multiplies, "thousand" and
   "million" close a group ("two thousand and twenty four" → 2024); a word that cannot
   continue the number starts a new one ("one two three" → "1 2 3", "nineteen
   ninety" → "19 90"); "and" inside a number is dropped only before a number word;
7. hesitations "um", "uh", "er", "ah", "hmm", "mm" are dropped; "ok" → "okay";
8. whitespace is collapsed.

WER itself is jiwer's, over the whole corpus (total errors / total reference words).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer

ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint", "vs": "versus"}
CONTRACTIONS = {
    "won't": "will not", "can't": "can not", "shan't": "shall not", "let's": "let us", "it's": "it is",
    "that's": "that is", "what's": "what is", "there's": "there is", "here's": "here is",
}
SUFFIXES = {"n't": " not", "'re": " are", "'ll": " will", "'ve": " have", "'m": " am", "'d": " would"}
FILLERS = frozenset({"um", "uh", "er", "ah", "hmm", "mm", "erm"})
SPELLING = {"ok": "okay"}
UNITS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS = {w: i for i, w in enumerate(UNITS)} | {w: 10 * i for i, w in enumerate(TENS) if w != "_"}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}


def normalize_english(text: str) -> str:
    text = text.lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"\b(" + "|".join(CONTRACTIONS) + r")\b", lambda m: CONTRACTIONS[m.group(1)], text)
    text = re.sub(r"(?<=\w)(" + "|".join(SUFFIXES) + r")\b", lambda m: SUFFIXES[m.group(1)], text)
    text = re.sub(r"(?<=\w)'(?=\w)", "", text)  # other apostrophes: "john's" → "johns"
    text = re.sub(r"\b(" + "|".join(ABBREVIATIONS) + r")\b\.?", lambda m: ABBREVIATIONS[m.group(1)], text)
    text = re.sub(r"\$\s?(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = text.replace("%", " percent").replace("&", " and ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 → 1000
    text = re.sub(r"[-–—/]", " ", text)
    text = re.sub(r"[^\w\s.]|(?<!\d)\.|\.(?!\d)", " ", text)  # keep decimal points only
    words = [SPELLING.get(w, w) for w in text.split() if w not in FILLERS]
    return " ".join(_numbers_to_digits(words))


def _numbers_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    number: list[int] = []  # [total, current] while inside a spoken number
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else ""
        if number and word == "and" and following in NUMBER_WORDS and number[1] % 100 == 0:
            continue  # "one hundred and five", "two thousand and twenty"
        if word in SCALES and number and _scale_fits(number, SCALES[word]):
            _apply_scale(number, SCALES[word])
            continue
        if word == "zero":  # never part of a larger number: "zero seven" is "0 7"
            out += [str(sum(number)), "0"] if number else ["0"]
            number = []
            continue
        if word in NUMBER_WORDS:
            if number and not _continues(number[1], NUMBER_WORDS[word]):
                out.append(str(sum(number)))
                number = []
            number = [number[0], number[1] + NUMBER_WORDS[word]] if number else [0, NUMBER_WORDS[word]]
            continue
        if number:
            out.append(str(sum(number)))
            number = []
        out.append(word)
    return [*out, str(sum(number))] if number else out


def _continues(current: int, value: int) -> bool:
    """Can `value` extend a number whose open group is `current`? ("twenty" + "one": yes)."""
    rest = current % 100
    if value < 10:
        return rest == 0 or (rest >= 20 and rest % 10 == 0)
    return rest == 0


def _scale_fits(number: list[int], scale: int) -> bool:
    return scale != 100 or number[1] % 100 == number[1]  # "hundred" only after a group below 100


def _apply_scale(number: list[int], scale: int) -> None:
    if scale == 100:
        number[1] = max(number[1], 1) * 100
    else:
        number[0], number[1] = number[0] + max(number[1], 1) * scale, 0


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER over normalised texts (empty references are left out)."""
    pairs = [(normalize_english(r), normalize_english(h)) for r, h in zip(references, hypotheses, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))
