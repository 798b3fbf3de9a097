"""The swap check of a chain-of-thought verifier (`features.checks: [swaps]`): the swaps a rationale states,
replayed from the question's start state, and every "who has what" it claims checked against that replay.

The question (BIG-bench Tracking Shuffled Objects: "Alice, Bob, and Claire are ... Alice has a yellow ball, Bob
has ... First, Alice and Claire swap balls. Then, ... At the end of the game, Alice has the ... (A) yellow ball,
(B) ...") gives the players, each one's object at the start, the swaps in order and the player asked about; its
choices name the objects. A rationale states swaps ("First, Alice and Claire swap balls.") and claims
("This means that Alice now has the blue ball, and Claire has ..."): a stated swap is right when it is the
question's swap at the same place; a claim is right when it holds after the swaps the rationale stated so far,
replayed from the start state (a claim before any stated swap: the start state). Then the conclusion: the
rationale's last claim about the player asked, right against the question's own replay; the chosen option the
one that claim names; both (the answer follows a claim that checks).

The question decides the answer, so the conclusion features are partly a solver reading the rationale's
conclusion: where a rationale makes a claim of the player asked, its answer is right if it follows a right
last claim, and wrong if it follows a wrong one or departs from a right one (benchmarks/step_checks.py
measures the check with and without `final_claim_right` and `answer_follows_right_claim`). No
feature holds the chosen option against the replay directly: that would solve the question without reading
the rationale (`replay_answer` computes it, for the benchmark to show what such an oracle gives). A prompt that
is not such a question gets zeros.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FEATURES = ["swap_question", "swaps_stated", "swaps_right", "swaps_wrong", "state_claims_right", "state_claims_wrong",
            "share_claims_wrong", "final_claim_right", "answer_is_final_claim", "answer_follows_right_claim",
            "answer_option_missing"]

_PLAYERS = re.compile(r"^\s*((?:[A-Z][a-z]+,\s+)+and\s+[A-Z][a-z]+|[A-Z][a-z]+\s+and\s+[A-Z][a-z]+)\s+are\b")
_OPTION = re.compile(r"\(([A-G])\)\s*(.+?)(?=,\s*\([A-G]\)|\.?\s*$)")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ANSWER = re.compile(r"Answer:\s*\(?([A-G])\)?\s*$")


@dataclass(frozen=True)
class Question:
    players: list[str]
    options: dict[str, str]  # letter -> object
    start: dict[str, str]  # player -> object
    swaps: list[tuple[str, str]]
    asked: str


def parse(prompt: str) -> Question | None:
    """The question's players, choices, start state, swaps and the player asked about; None if it is not one."""
    m = _PLAYERS.match(prompt)
    choices = prompt.split("Answer choices:")
    if not m or len(choices) != 2 or ":" not in prompt[m.end():]:
        return None
    players = re.findall(r"[A-Z][a-z]+", m.group(1))
    options = dict(_OPTION.findall(choices[1].strip()))
    who = "|".join(players)
    start_text = prompt[m.end():].split(":", 1)[1].split("\n")[0]
    start = {}
    for part in re.split(rf",\s*(?:and\s+)?(?=(?:{who})\b)|\s+and\s+(?=(?:{who})\b)", start_text):
        player = re.match(rf"\s*({who})\b", part)
        held = [o for o in options.values() if o.lower() in part.lower()]
        if player and held:
            start[player.group(1)] = max(held, key=len)
    swaps = re.findall(rf"\b(?:First|Then|Finally),\s*({who}) and ({who}) (?:swap|trade|switch)", prompt)
    asked = re.search(rf"At the end of the \w+, ({who})\b", prompt)
    if set(start) != set(players) or not swaps or not asked:
        return None
    return Question(players, options, start, swaps, asked.group(1))


def replay(start: dict[str, str], swaps: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The state before the first swap and after each one."""
    states = [dict(start)]
    for a, b in swaps:
        s = dict(states[-1])
        s[a], s[b] = s[b], s[a]
        states.append(s)
    return states


def replay_answer(prompt: str) -> str | None:
    """The option letter the question's own replay gives (the task solved from the question alone: an oracle,
    not a check of a rationale; no verifier feature reads it)."""
    q = parse(prompt)
    if q is None:
        return None
    final = replay(q.start, q.swaps)[-1][q.asked]
    return next((letter for letter, o in q.options.items() if o == final), None)


def _object_pattern(options: dict[str, str]) -> dict[str, re.Pattern]:
    """How a rationale names each object: its choice text, or (when every choice ends in the same noun, "ball")
    its distinctive words alone ("the blue one")."""
    names = list(options.values())
    tails = {o.split()[-1].lower() for o in names}
    out = {}
    for o in names:
        core = o.rsplit(" ", 1)[0] if len(tails) == 1 and len(o.split()) > 1 else o
        out[o] = re.compile(rf"\b{re.escape(core)}\b", re.I)
    return out


def rationale_steps(text: str, q: Question) -> tuple[list[tuple[str, str]], list[tuple[int, str, str]]]:
    """(the swaps the rationale states, its claims as (swaps stated before it, player, object)), in order."""
    who = "|".join(q.players)
    objects = _object_pattern(q.options)
    swap = re.compile(rf"\b({who}) and ({who}) (?:swap|trade|switch)")
    names = list(objects)
    mention = re.compile(rf"\b(?P<player>{who})\b|" + "|".join(f"(?P<o{i}>{objects[o].pattern})" for i, o in enumerate(names)),
                         re.I)
    swaps, claims = [], []
    for sentence in _SENTENCE.split(text):
        s = swap.search(sentence)
        if s:
            swaps.append((s.group(1), s.group(2)))
            sentence = sentence[s.end():]
        player = None
        for m in mention.finditer(sentence):  # a player, then the first object named after it: one claim
            if m.group("player"):
                player = next(p for p in q.players if p.lower() == m.group("player").lower())
            elif player is not None:
                claims.append((len(swaps), player, names[int(m.lastgroup[1:])]))
                player = None
    return swaps, claims


def features(text: str, prompt: str) -> list[float]:
    """FEATURES of one response (its rationale and "Answer: X") to `prompt`."""
    q = parse(prompt)
    if q is None:
        return [0.0] * len(FEATURES)
    stated = _ANSWER.search(text.strip())
    rationale = text.strip()[: stated.start()] if stated else text
    swaps, claims = rationale_steps(rationale, q)
    swaps_right = sum(i < len(q.swaps) and {a, b} == set(q.swaps[i]) for i, (a, b) in enumerate(swaps))
    own = replay(q.start, swaps)  # the rationale's swaps, from the question's start
    claims_right = sum(own[n][player] == o for n, player, o in claims)
    claims_wrong = len(claims) - claims_right
    final = next((o for _, player, o in reversed(claims) if player == q.asked), None)
    truth = replay(q.start, q.swaps)[-1][q.asked]
    answer = q.options.get(stated.group(1)) if stated else None
    follows = final is not None and answer == final
    return [1.0, len(swaps), swaps_right, len(swaps) - swaps_right, claims_right, claims_wrong,
            claims_wrong / len(claims) if claims else 0.0, float(final == truth), float(follows),
            float(follows and final == truth), float(answer is None)]
