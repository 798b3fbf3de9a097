"""The step checks beyond arithmetic (`features.checks`): dates (Date Understanding) and swaps (Tracking Shuffled
Objects), each on hand-made right and wrong rationales to questions in the datasets' own format, their parsers
on every question of the real datasets, and the config that turns them on."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from prefkit.config import FeaturesConfig, load_config
from prefkit.data.table import TableBuilder
from prefkit.errors import PrefkitError
from prefkit.rm import date_check, swap_check
from prefkit.rm.features import RESPONSE_FEATURES, enabled_checks, feature_names, table_features
from tests.conftest import SHARED, need_shared

DATE_Q = ("Yesterday was April 30, 2021. What is the date one week from today in MM/DD/YYYY?\n"
          "Which choice is true? Answer choices: (A) 05/08/2021, (B) 05/06/2021, (C) 04/23/2021, (D) 05/01/2021, "
          "(E) 05/08/1960, (F) 06/12/2021.")
SWAP_Q = ("Alice, Bob, and Claire are playing a game. At the start of the game, they are each holding a ball: Alice has "
          "a yellow ball, Bob has a purple ball, and Claire has a blue ball. \n\nAs the game progresses, pairs of "
          "players trade balls. First, Alice and Claire swap balls. Then, Bob and Claire swap balls. Finally, Alice "
          "and Claire swap balls. At the end of the game, Alice has the \n"
          "Which choice is true? Answer choices: (A) yellow ball, (B) purple ball, (C) blue ball.")


def dates_of(text: str, prompt: str = DATE_Q) -> dict:
    return dict(zip(date_check.FEATURES, date_check.features(text, prompt)))


def swaps_of(text: str, prompt: str = SWAP_Q) -> dict:
    return dict(zip(swap_check.FEATURES, swap_check.features(text, prompt)))


def test_date_question_parsed():
    q = date_check.parse(DATE_Q)
    assert q.options["A"] == dt.date(2021, 5, 8) and len(q.options) == 6
    assert q.dates == [dt.date(2021, 4, 30)] and q.steps == {("day", 1), ("day", 7)}
    assert q.today == dt.date(2021, 5, 1) and q.asked == dt.date(2021, 5, 8)
    assert date_check.parse("What is 3 + 4?") is None


def test_date_rationale_right():
    f = dates_of("Yesterday was April 30, 2021. So today is 05/01/2021. One week from today is 05/08/2021.\n\n"
                 "Answer: A")
    assert f == {"date_question": 1.0, "dates_stated": 3, "dates_impossible": 0, "dates_restated": 1,
                 "date_steps_right": 2, "date_steps_wrong": 0, "answer_date_stated": 1.0, "answer_is_last_date": 1.0,
                 "answer_from_right_step": 1.0, "answer_date_in_question": 0.0, "answer_date_missing": 0.0,
                 "question_today_known": 1.0, "date_claims_right": 3, "date_claims_wrong": 0, "last_date_right": 1.0,
                 "answer_follows_right_date": 1.0}


def test_date_rationale_wrong():
    f = dates_of("Today is April 30, 2021. One week from today is 05/06/2021, not April 31, 2021.\n\nAnswer: B")
    assert f["dates_restated"] == 1 and f["dates_impossible"] == 1
    assert f["date_steps_right"] == 0 and f["date_steps_wrong"] == 1, "Apr 30 + 7 days is May 7, not May 6"
    assert f["date_claims_right"] == 0 and f["date_claims_wrong"] == 2, "today is May 1, and May 6 is not a week on"
    assert f["answer_is_last_date"] == 1.0 and f["last_date_right"] == 0.0 and f["answer_follows_right_date"] == 0.0
    # a right derivation, and an answer that does not follow it
    g = dates_of("Yesterday was April 30, 2021. One week from today is 05/08/2021.\n\nAnswer: D")
    assert g["last_date_right"] == 1.0 and g["answer_date_stated"] == 0.0 and g["answer_follows_right_date"] == 0.0
    assert dates_of("The date is 05/08/2021.\n\nAnswer: (none)")["answer_date_missing"] == 1.0
    assert dates_of("3 + 4 = 7\n\nAnswer: 7", "I have 3 apples and 4 pears.") == dict.fromkeys(date_check.FEATURES, 0.0)


def test_date_claims_read_how_a_date_lies_from_today():
    assert date_check.claims("The date 10 days ago is 04/21/2021.") == [(("day", -10), dt.date(2021, 4, 21))]
    assert date_check.claims("One year ago from today is 05/01/2020.") == [(("year", -1), dt.date(2020, 5, 1))]
    assert date_check.claims("Jane thinks today is 6/18/2019.") == [], "a belief is no claim"
    assert date_check.claims("10 days ago from April 30, 2021 is 04/20/2021.") == [], "two dates: which one is today's?"
    assert date_check.shift(dt.date(2021, 3, 31), "month", -1) == dt.date(2021, 2, 28)


def test_swap_question_parsed_in_every_template():
    q = swap_check.parse(SWAP_Q)
    assert q.players == ["Alice", "Bob", "Claire"] and q.asked == "Alice"
    assert q.start == {"Alice": "yellow ball", "Bob": "purple ball", "Claire": "blue ball"}
    assert q.swaps == [("Alice", "Claire"), ("Bob", "Claire"), ("Alice", "Claire")]
    dance = swap_check.parse(
        "Alice, Bob, and Claire are dancers at a square dance. At the start of a song, they each have a partner: "
        "Alice is dancing with Patrick, Bob is dancing with Karl, and Claire is dancing with Izzi. \n\nThroughout the "
        "song, the dancers often trade partners. First, Bob and Claire switch partners. Then, Claire and Alice switch "
        "partners. Finally, Claire and Bob switch partners. At the end of the dance, Alice is dancing with  \n"
        "Which choice is true? Answer choices: (A) Patrick, (B) Karl, (C) Izzi.")
    assert dance.start == {"Alice": "Patrick", "Bob": "Karl", "Claire": "Izzi"} and dance.swaps[1] == ("Claire", "Alice")
    assert swap_check.replay(dance.start, dance.swaps)[-1]["Alice"] == "Karl"
    assert swap_check.parse(DATE_Q) is None and swap_check.replay_answer(SWAP_Q) == "B"


RIGHT_SWAPS = ("First, Alice and Claire swap balls. This means that Alice now has the blue ball, and Claire has the "
               "yellow ball.\n\nThen, Bob and Claire swap balls. This means that Bob now has the yellow ball, and Claire "
               "has the purple ball.\n\nFinally, Alice and Claire swap balls. This means that Alice now has the purple "
               "ball, and Claire has the blue ball.\n\nAt the end of the game, Alice has the purple ball.")


def test_swap_rationale_right():
    f = swaps_of(RIGHT_SWAPS + "\n\nAnswer: B")
    assert f == {"swap_question": 1.0, "swaps_stated": 3, "swaps_right": 3, "swaps_wrong": 0, "state_claims_right": 7,
                 "state_claims_wrong": 0, "share_claims_wrong": 0.0, "final_claim_right": 1.0,
                 "answer_is_final_claim": 1.0, "answer_follows_right_claim": 1.0, "answer_option_missing": 0.0}


def test_swap_rationale_wrong():
    wrong_state = RIGHT_SWAPS.replace("Bob now has the yellow ball", "Bob now has the blue ball").replace(
        "At the end of the game, Alice has the purple ball", "At the end of the game, Alice has the yellow ball")
    f = swaps_of(wrong_state + "\n\nAnswer: A")
    assert f["state_claims_wrong"] == 2 and f["state_claims_right"] == 5
    assert f["final_claim_right"] == 0.0 and f["answer_is_final_claim"] == 1.0 and f["answer_follows_right_claim"] == 0.0
    # a swap stated wrong: the claims after it are held against the rationale's own swaps, replayed
    wrong_swap = swaps_of("First, Alice and Bob swap balls. So Alice has the purple ball.\n\nAnswer: B")
    assert wrong_swap["swaps_right"] == 0 and wrong_swap["swaps_wrong"] == 1 and wrong_swap["state_claims_right"] == 1
    assert wrong_swap["final_claim_right"] == 1.0, "its last claim of Alice happens to be the end state"
    # the right steps, and an answer that does not follow them
    g = swaps_of(RIGHT_SWAPS + "\n\nAnswer: C")
    assert g["final_claim_right"] == 1.0 and g["answer_is_final_claim"] == 0.0 and g["answer_follows_right_claim"] == 0.0
    assert swaps_of("Alice has it.\n\nAnswer: (none)")["answer_option_missing"] == 1.0
    assert swaps_of("3 + 4 = 7\n\nAnswer: 7", "I have 3 apples.") == dict.fromkeys(swap_check.FEATURES, 0.0)


def test_the_parsers_read_every_question_of_the_real_datasets():
    need_shared(SHARED / "reasoning")
    from prefkit.cot.datasets import load

    resolved = 0
    for e in load("date_understanding", "all", SHARED):
        q = date_check.parse(e.question)
        assert q is not None and e.answer in q.options, e.question
        if q.asked is not None:  # where the question's own claims fix today, the date asked is the right choice
            assert q.options[e.answer] == q.asked, e.question
            resolved += 1
    assert resolved >= 150
    for e in load("tracking_shuffled_objects", "all", SHARED):
        assert swap_check.replay_answer(e.question) == e.answer, e.question


def test_checks_in_the_config_and_the_features_table():
    assert enabled_checks(FeaturesConfig(arithmetic=True)) == ["arithmetic"]
    assert enabled_checks(FeaturesConfig(checks=["swaps", "dates"], arithmetic=True)) == ["arithmetic", "dates", "swaps"]
    assert enabled_checks(SimpleNamespace(arithmetic=True)) == ["arithmetic"], "a model saved before `checks` existed"
    assert feature_names(["arithmetic"])[:3] == ["a_log_chars", "a_log_words", "a_lines"]
    cfg = load_config(None, ["features.checks=[dates,swaps]"])
    assert cfg.features.checks == ["dates", "swaps"]
    with pytest.raises(PrefkitError, match="features.checks.*unknown check 'colors'"):
        load_config(None, ["features.checks=[dates,colors]"])
    b = TableBuilder("t")
    b.add(1, None, "q1", [SWAP_Q], [RIGHT_SWAPS + "\n\nAnswer: B"], ["Answer: (none)"], "a")
    b.add(2, None, "q2", [DATE_Q], ["Answer: A"], ["Answer: (none)"], "a")
    fa, fb, _ = table_features(b.build(), enabled_checks(FeaturesConfig(checks=["dates", "swaps"])))
    n = len(RESPONSE_FEATURES)
    assert fa.shape == (2, n + len(date_check.FEATURES) + len(swap_check.FEATURES))
    swaps = dict(zip(swap_check.FEATURES, fa[0, n + len(date_check.FEATURES):]))
    assert swaps["answer_follows_right_claim"] == 1.0 and fa[1, n] == 1.0 and fa[0, n] == 0.0  # date_question
    with pytest.raises(PrefkitError, match="unknown step check 'colors'"):
        table_features(b.build(), ["colors"])
