"""Answers out of generated text, per dataset, with the rule the Fine-tune-CoT evaluation uses.

Candidates are every number (commas removed) for the arithmetic sets, or every option letter for Date
Understanding (A-F) and Tracking Shuffled Objects (A-C). Which candidate counts:
- text that should hold a marked answer (a student in the Fine-tune-CoT format, marker "-->"): the first
  candidate after the marker, else the last candidate in the text;
- the teacher's Zero-shot-CoT answer step (a completion of "Therefore, the answer ... is"): the first one.
Numbers compare as numbers (tolerance 1e-6), letters as letters.
"""

from __future__ import annotations

import re

from prefkit.cot.datasets import spec

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
MARKER = "-->"


def candidates(dataset: str, text: str) -> list[str]:
    s = spec(dataset)
    if s.answer == "letter":
        return re.findall(f"[{s.letters}]", text)
    return NUMBER.findall(text.replace(",", ""))


def extract(dataset: str, text: str, marker: str | None = MARKER) -> str | None:
    """The predicted answer in `text`, or None. `marker=None`: the first candidate (teacher answer steps)."""
    if marker is None:
        found = candidates(dataset, text)
        return found[0] if found else None
    at = text.find(marker)
    if at >= 0:
        found = candidates(dataset, text[at + len(marker):])
        return found[0] if found else None
    found = candidates(dataset, text)
    return found[-1] if found else None


def is_correct(dataset: str, prediction: str | None, answer: str) -> bool:
    if prediction is None:
        return False
    if spec(dataset).answer == "number":
        try:
            return abs(float(prediction) - float(answer.replace(",", ""))) <= 1e-6
        except ValueError:
            return False
    return prediction.strip() == answer.strip()
