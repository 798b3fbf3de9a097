"""Answers out of generated text, per dataset, with the rule the Fine-tune-CoT evaluation uses.

Candidates are every number (commas removed) for the arithmetic sets, or every option letter for Date
Understanding (A-F) and Tracking Shuffled Objects (A-C). The teacher's answer steps are read as the paper
reads them (any capital A-F counts, which reproduces its teacher accuracies); a student's text, free prose
from a zero-shot instruct model included, by a stricter rule: letters in parentheses, "(B)", else letters
standing alone, else (with the question at hand) the option whose text the answer names last. Which
candidate counts:
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


def candidates(dataset: str, text: str, strict: bool = False, question: str = "") -> list[str]:
    s = spec(dataset)
    if s.answer == "number":
        return NUMBER.findall(text.replace(",", ""))
    if not strict:  # the paper's rule for teacher answer steps
        return re.findall(f"[{s.letters}]", text)
    found = re.findall(rf"\(([{s.letters}])\)", text) or re.findall(rf"\b([{s.letters}])\b", text)
    if found or not question:
        return found
    named = [(text.rfind(option), letter) for letter, option in options(question) if option and option in text]
    return [letter for _, letter in sorted(named)]


def options(question: str) -> list[tuple[str, str]]:
    """(letter, text) of the "Answer choices: (A) ..., (B) ..." list at the end of a multiple-choice question."""
    return [(m.group(1), m.group(2).strip()) for m in re.finditer(r"\(([A-Z])\)\s*(.*?)(?=,\s*\([A-Z]\)|\.?\s*$)", question)]


def extract(dataset: str, text: str, marker: str | None = MARKER, question: str = "") -> str | None:
    """The predicted answer in `text`, or None. `marker=None`: the first candidate (teacher answer steps, the
    paper's rule); otherwise a student's text, read strictly (see above; `question` lets an answer that names
    an option's text without its letter count)."""
    if marker is None:
        found = candidates(dataset, text)
        return found[0] if found else None
    at = text.find(marker)
    if at >= 0:
        found = candidates(dataset, text[at + len(marker):], strict=True, question=question)
        return found[0] if found else None
    found = candidates(dataset, text, strict=True, question=question)
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
