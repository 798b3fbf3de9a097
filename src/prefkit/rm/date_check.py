"""The date check of a chain-of-thought verifier (`features.checks: [dates]`): the dates a rationale states, checked
with calendar arithmetic against the question's dates and the day, week, month and year offsets it states.

Three readings, as the arithmetic check reads "x op y = z":
- steps: a date the rationale writes that the question did not give is a step; it is right when a date stated
  before it (in the question, or earlier in the rationale) is one stated offset away, either way ("10 days",
  "one week", "24 hours", "yesterday"); a date that cannot exist (April 31, 24/30/2021) is counted apart;
- claims: a clause with one date and how it lies from today ("Yesterday was April 30, 2021", "One week from
  today is 05/08/2021") says which day today is; the question's own clauses fix today where they agree (153 of
  the 369 Date Understanding questions; a birthday, an anniversary or "the last day of 1899" say no date), and
  each claim of the rationale is held against it;
- the conclusion: the chosen option (the task lists "(A) MM/DD/YYYY" choices) against what the rationale
  derived (its date stated, the last date stated, a date a right step reached, a date the question gives, like
  the arithmetic check's `answer_in_prompt`), and the last date stated against the date the question asks for
  (today moved by "What is the date one week from today"). Where the question fixes today, that date is the
  answer, so `last_date_right` with `answer_is_last_date` is partly a solver reading the rationale's
  conclusion: an answer that follows a right last date is right, one that follows a wrong one or departs from
  a right one is wrong (benchmarks/step_checks.py measures the check with and without `last_date_right` and
  `answer_follows_right_date`). No feature holds the chosen option against the date asked directly: that
  would solve the question without reading the rationale.
A prompt without dated choices gets zeros, `date_question` among them.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

FEATURES = ["date_question", "dates_stated", "dates_impossible", "dates_restated", "date_steps_right",
            "date_steps_wrong", "answer_date_stated", "answer_is_last_date", "answer_from_right_step",
            "answer_date_in_question", "answer_date_missing", "question_today_known", "date_claims_right",
            "date_claims_wrong", "last_date_right", "answer_follows_right_date"]

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_NUMERIC = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
# "April 30, 2021", "Apr 30th 2021", "Jun 1": a name without a year takes the last year stated before it
_NAMED = re.compile(r"\b(" + "|".join(_MONTHS) + r")[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s*(\d{4})\b)?", re.I)
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
            "nine": 9, "ten": 10}
_OFFSET = re.compile(r"\b(\d+|" + "|".join(_NUMBERS) + r")[\s-]+(day|week|month|year|hour|decade)s?\b", re.I)
_ONE_DAY = re.compile(r"\b(yesterday|tomorrow|day (?:before|after)|next day|previous day)\b", re.I)
_TWO_DAYS = re.compile(r"\bday (?:before yesterday|after tomorrow)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])|\n+")  # not after "Sept." in "Sept. 1st"
_CLAUSE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])|\n+|,\s*but\b|;")
_BELIEF = re.compile(r"\b(?:thinks?|thought|believes?|believed)\b", re.I)
_DAY_FIRST = re.compile(r"day before the month", re.I)
# "today is D", "today, D,", "today was in fact D", "D today" (not "one week from today is D")
_TODAY_IS = re.compile(r"(?<!from )\btoday(?:,|\s+is|\s+was)\s+(?:in fact\s+)?(?:[A-Za-z]+\.?\s+)?\d|\d{4},?\s+(?:is\s+)?today\b", re.I)
_N = r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten)"
_RELATIVE = [(re.compile(rf"\b{_N}[\s-]+(day|week|month|year|hour|decade)s?\s+(?:ago|before today|earlier)\b", re.I), -1),
             (re.compile(rf"\b{_N}[\s-]+(day|week|month|year|hour|decade)s?\s+(?:from (?:today|now)|later|after today|away)\b",
                         re.I), 1)]
_OPTION = re.compile(r"\(([A-F])\)\s*(\d{1,2}/\d{1,2}/\d{4})")
_ANSWER = re.compile(r"Answer:\s*\(?([A-F])\)?\s*$")


def _date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def dates(text: str, year: int | None = None, day_first: bool = False) -> list[dt.date | None]:
    """The dates `text` states, in order; None for one that cannot exist. `year`: of a month and day stated
    without one before any year is known; `day_first`: 02/01/1987 is January 2."""
    found = []
    for m in _NUMERIC.finditer(text):
        month, day = int(m.group(1)), int(m.group(2))
        found.append((m.start(), _date(int(m.group(3)), *((day, month) if day_first else (month, day)))))
    for m in _NAMED.finditer(text):
        y = m.group(3)
        if y is None:
            before = [d.year for at, d in found if at < m.start() and d]
            if not before and year is None:
                continue
            y = before[-1] if before else year
        found.append((m.start(), _date(int(y), _MONTHS.index(m.group(1)[:3].lower()) + 1, int(m.group(2)))))
    return [d for _, d in sorted(found, key=lambda x: x[0])]


def _step(number: str, unit: str) -> tuple[str, int] | None:
    """("day" | "month" | "year", n) of "N units": weeks in days, decades in years, hours in whole days only."""
    n, unit = _NUMBERS.get(number.lower()) or int(number), unit.lower()
    if unit == "hour":
        return ("day", n // 24) if n % 24 == 0 else None
    return {"week": ("day", 7 * n), "decade": ("year", 10 * n)}.get(unit, (unit, n))


def offsets(text: str) -> set[tuple[str, int]]:
    """The offsets `text` states, as (day | month | year, n >= 0): weeks in days, decades in years, hours in
    whole days (36 hours: 1 and 2), yesterday and tomorrow one day, the day before yesterday two."""
    out = set()
    for m in _OFFSET.finditer(text):
        n = _NUMBERS.get(m.group(1).lower()) or int(m.group(1))
        if m.group(2).lower() == "hour" and n % 24:
            out |= {("day", n // 24), ("day", n // 24 + 1)}
        else:
            out.add(_step(m.group(1), m.group(2)))
    if _ONE_DAY.search(text):
        out.add(("day", 1))
    if _TWO_DAYS.search(text):
        out.add(("day", 2))
    return out


def shift(d: dt.date, unit: str, n: int) -> dt.date | None:
    """`d` moved by n days, months or years (a month or year step keeps the day, or the month's last day:
    Mar 31 - 1 month = Feb 28 or 29); None outside the calendar."""
    try:
        if unit == "day":
            return d + dt.timedelta(days=n)
        months = d.month - 1 + (n if unit == "month" else 12 * n)
        y, m = d.year + months // 12, months % 12 + 1
        return dt.date(y, m, min(d.day, calendar.monthrange(y, m)[1]))
    except (ValueError, OverflowError):
        return None


def one_offset_away(targets: set[dt.date], sources: set[dt.date], steps: set[tuple[str, int]]) -> set[dt.date]:
    """The dates of `targets` that some date of `sources` reaches by one of `steps`, forwards or back."""
    reached = {shift(d, unit, sign * n) for d in sources for unit, n in steps for sign in (1, -1)}
    return targets & reached


def relation(clause: str) -> tuple[str, int] | None:
    """How the one date of `clause` lies from today, as (day | month | year, signed n): "today is D" and "D today"
    0; "N days ago" -n; "N weeks from today", "N days later", "N days away" +7n, +n; the day before yesterday -2;
    yesterday -1; tomorrow +1; "today", "now", "current" alone 0. None when it says none (or a simile: "like
    yesterday")."""
    if _TODAY_IS.search(clause):
        return "day", 0
    for pattern, sign in _RELATIVE:
        m = pattern.search(clause)
        if m:
            step = _step(m.group(1), m.group(2))
            return None if step is None else (step[0], sign * step[1])
    c = clause.lower()
    if "day before yesterday" in c or "day after tomorrow" in c:
        return "day", -2 if "yesterday" in c else 2
    yesterday, tomorrow = re.search(r"(?<!like )\byesterday\b", c), re.search(r"\btomorrow\b", c)
    if bool(yesterday) != bool(tomorrow):
        return "day", -1 if yesterday else 1
    if re.search(r"\b(?:today|now|current)\b", c) and not (yesterday or tomorrow):
        return "day", 0
    return None


def claims(text: str, year: int | None = None, day_first: bool = False) -> list[tuple[tuple[str, int], dt.date]]:
    """(relation to today, date) of every clause of `text` that states one date and how it lies from today
    ("Yesterday was April 30, 2021", "The date one week ago is 04/24/2021"); beliefs ("Jane thinks today is
    ...") are no claims."""
    out = []
    for clause in _CLAUSE.split(text):
        if _BELIEF.search(clause):
            continue
        found = [d for d in dates(clause, year, day_first) if d]  # an impossible date is counted apart
        rel = relation(clause) if len(found) == 1 else None
        if rel is not None:
            out.append((rel, found[0]))
    return out


@dataclass(frozen=True)
class Question:
    options: dict[str, dt.date | None]  # letter -> the choice's date
    dates: list[dt.date]  # the dates the question states (its choices apart)
    steps: set[tuple[str, int]]  # the offsets it states
    today: dt.date | None  # the day its claims agree today is (None: they say none, or disagree)
    asked: dt.date | None  # the date it asks for ("What is the date 10 days ago": today - 10 days)


def parse(prompt: str) -> Question | None:
    """The question's dated choices, its own dates, offsets, today and the date asked; None if it offers no
    dated choices."""
    options = {letter: dates(d)[0] for letter, d in _OPTION.findall(prompt)}
    if not options:
        return None
    question = prompt.split("Which choice is true?")[0]
    premise, _, ask = question.partition("What is the date")
    years = _YEAR.findall(question)
    year = int(years[0]) if years else None
    day_first = bool(_DAY_FIRST.search(premise))  # "In the UK, people usually put the day before the month"
    implied = {shift(d, unit, -n) for (unit, n), d in claims(premise, year, day_first)}
    today = implied.pop() if len(implied) == 1 else None
    rel = relation(ask.split(" in MM/DD/YYYY")[0]) if ask else None
    asked = shift(today, rel[0], rel[1]) if today and rel else None
    return Question(options, [d for d in dates(question, year, day_first) if d], offsets(question), today, asked)


def features(text: str, prompt: str) -> list[float]:
    """FEATURES of one response (its rationale and "Answer: X") to `prompt`."""
    q = parse(prompt)
    if q is None:
        return [0.0] * len(FEATURES)
    stated = _ANSWER.search(text.strip())
    rationale = text.strip()[: stated.start()] if stated else text
    known, said = set(q.dates), []
    impossible = restated = right = wrong = 0
    right_steps = set()
    for sentence in _SENTENCE.split(rationale):
        steps = q.steps | offsets(sentence)
        for d in dates(sentence, said[-1].year if said else (q.dates[0].year if q.dates else None)):
            if d is None:
                impossible += 1
                continue
            said.append(d)
            if d in q.dates:
                restated += 1
            elif d not in known:  # a date first derived here: the step that reached it is checked
                ok = bool(one_offset_away({d}, known, steps))
                right, wrong = right + ok, wrong + (not ok)
                if ok:
                    right_steps.add(d)
            known.add(d)
    year = q.dates[0].year if q.dates else None
    held = [shift(d, unit, -n) == q.today for (unit, n), d in claims(rationale, year)] if q.today else []
    answer = q.options.get(stated.group(1)) if stated else None
    last = said[-1] if said else None
    last_right = q.asked is not None and last == q.asked
    return [1.0, len(said), impossible, restated, right, wrong,
            float(answer in said), float(last is not None and answer == last), float(answer in right_steps),
            float(answer in q.dates), float(answer is None), float(q.today is not None), sum(held),
            len(held) - sum(held), float(last_right), float(last_right and answer == last)]
