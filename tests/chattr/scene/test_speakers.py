"""Who answers a scene message: SillyTavern's group rules, with the random source given."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from chattr.scene.speakers import Member, Strategy, choose_speakers, named_in

NAPOLEON = Member("napoleon", "Napoleon Bonaparte", nickname="Boney")
EINSTEIN = Member("einstein", "Albert Einstein")
CURIE = Member("curie", "Marie Curie", talkativeness=0.0)
ALL = [NAPOLEON, EINSTEIN, CURIE]


def rolls(*values: float) -> Callable[[], float]:
    """The given values, then 0.99 (nobody speaks up)."""
    pending = list(values)
    return lambda: pending.pop(0) if pending else 0.99


def choose(message: str, strategy: Strategy = Strategy.NATURAL, **kw: object) -> list[str]:
    options: dict[str, object] = {"random": rolls(), "limit": 4, **kw}
    return choose_speakers(ALL, message, strategy, **options)  # type: ignore[arg-type]


def test_names_and_nicknames_are_whole_words_in_the_order_named() -> None:
    assert named_in("Marie, what would Boney say?", ALL) == ["curie", "napoleon"]
    assert named_in("ALBERT! and napoleon", ALL) == ["einstein", "napoleon"]
    # A name inside another word names nobody.
    assert named_in("Alberta is cold; Napoleonic wars.", ALL) == []


def test_those_named_answer_first_even_when_never_talkative() -> None:
    assert choose("Marie and Albert, your views?") == ["curie", "einstein"]


def test_unnamed_members_speak_up_by_their_talkativeness() -> None:
    # Nobody named: two rolls shuffle the three into Einstein, Curie, Napoleon; then each rolls
    # against its talkativeness: 0.4 < 0.5 speaks, Curie (0) never does, 0.7 does not.
    assert choose("What a storm.", random=rolls(0.0, 0.0, 0.4, 0.0, 0.7)) == ["einstein"]
    assert choose("What a storm.", random=rolls(0.0, 0.0, 0.4, 0.0, 0.3)) == [
        "einstein",
        "napoleon",
    ]


def test_talkativeness_is_the_chance_of_speaking_up() -> None:
    source = random.Random(7)
    counts: Counter[str] = Counter()
    runs = 4000
    members = [Member("a", "Ann", talkativeness=0.2), Member("b", "Bob", talkativeness=0.8)]
    for _ in range(runs):
        counts.update(
            choose_speakers(
                members, "Hello there.", Strategy.NATURAL, random=source.random, limit=4
            )
        )
    # Ann speaks up with chance 0.2, plus when nobody did and she is picked of the two
    # (0.8 * 0.2 * 1/2); Bob 0.8 + 0.8 * 0.2 * 1/2. The spread of 4000 draws is ~0.007.
    assert counts["a"] / runs == pytest.approx(0.2 + 0.08, abs=0.04)
    assert counts["b"] / runs == pytest.approx(0.8 + 0.08, abs=0.04)


def test_nobody_chosen_gives_one_talkative_member_never_a_silent_one() -> None:
    for seed in range(50):
        spoken = choose("Hmm.", random=random.Random(seed).random, limit=4)
        assert spoken and "curie" not in spoken
    # Every roll 0.99: nobody spoke up, so one of the talkative two is picked.
    assert choose("Hmm.") in (["napoleon"], ["einstein"])


def test_a_member_never_answers_its_own_line() -> None:
    assert choose("", last_speaker="napoleon", random=rolls(0.0, 0.0, 0.1, 0.1)) == ["einstein"]
    assert choose("Napoleon?", last_speaker="napoleon") != ["napoleon"]


def test_muted_members_answer_only_when_made_to() -> None:
    muted = [NAPOLEON, Member("einstein", "Albert Einstein", muted=True)]
    assert choose_speakers(muted, "Albert?", Strategy.NATURAL, random=rolls(), limit=4) == [
        "napoleon"
    ]
    assert choose_speakers(
        muted, "", Strategy.MANUAL, random=rolls(), limit=4, speaker="einstein"
    ) == ["einstein"]


def test_list_pooled_manual_and_the_bound() -> None:
    assert choose("Hi.", Strategy.LIST) == ["napoleon", "einstein", "curie"]
    assert choose("Hi.", Strategy.LIST, limit=2) == ["napoleon", "einstein"]
    assert choose("Hi.", Strategy.MANUAL) == []
    assert choose("Hi.", Strategy.MANUAL, speaker="curie") == ["curie"]
    # Pooled: one who has not spoken since the person last did.
    assert choose("Hi.", Strategy.POOLED, spoken_since_person=["napoleon", "einstein"]) == ["curie"]
    everyone = ["napoleon", "einstein", "curie"]
    for value in (0.0, 0.5, 0.99):
        spoken = choose(
            "",
            Strategy.POOLED,
            spoken_since_person=everyone,
            last_speaker="curie",
            random=rolls(value),
        )
        assert spoken != ["curie"] and len(spoken) == 1
