"""Word error rate after an English normalisation, so style is not counted as error.

Normalisation (documented because WER figures depend on it): lower-case; expand a
few abbreviations ("mr." → "mister") and common contractions ("don't" → "do not");
spoken numbers become digits ("one hundred" → "100", "five" → "5") so "5" and
"five" match; hyphens become spaces; other punctuation is dropped; whitespace is
collapsed. WER itself comes from jiwer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer

ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint", "vs": "versus"}
CONTRACTIONS = {
    "n't": " not", "'re": " are", "'ll": " will", "'ve": " have", "'m": " am", "'d": " would",
    "let's": "let us", "won't": "will not", "can't": "can not", "it's": "it is", "that's": "that is",
}
UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_WORDS = {w: i for i, w in enumerate(UNITS)} | {w: 10 * i for i, w in enumerate(TENS) if w != "_"}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}


def normalize_english(text: str) -> str:
    text = text.lower().replace("’", "'")
    for short, long in sorted(CONTRACTIONS.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(short, long)
    text = re.sub(r"\b(" + "|".join(ABBREVIATIONS) + r")\.?(?=\s|$)", lambda m: ABBREVIATIONS[m.group(1)], text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 → 1000
    text = re.sub(r"[-–—/]", " ", text)
    text = re.sub(r"[^\w\s.]|(?<!\d)\.|\.(?!\d)", " ", text)  # keep decimal points only
    return " ".join(_numbers_to_digits(text.split()))


def _numbers_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    total, current, in_number = 0, 0, False
    for word in [*words, ""]:
        if word in NUMBER_WORDS:
            current += NUMBER_WORDS[word]
            in_number = True
        elif word in SCALES and in_number:
            current = max(current, 1) * SCALES[word]
            if SCALES[word] >= 1000:
                total, current = total + current, 0
        elif word == "and" and in_number and out is not None and current % 100 == 0 and current:
            continue  # "one hundred and five"
        else:
            if in_number:
                out.append(str(total + current))
                total, current, in_number = 0, 0, False
            if word:
                out.append(word)
    return out


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER over normalised texts (empty references are left out)."""
    pairs = [(normalize_english(r), normalize_english(h)) for r, h in zip(references, hypotheses, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))
