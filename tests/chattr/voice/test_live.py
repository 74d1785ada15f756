"""Voice activity on real speech: utterances found where the speech is, at any browser rate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from chattr.reply import WordTime
from chattr.voice.live import LiveConversation, LiveReply, PlayedClip, parse_played
from chattr.voice.utterances import TAIL_S, UtteranceCollector
from chattr.voice.vad import VAD_RATE, VadOptions


def speech(assets: Path) -> tuple[npt.NDArray[np.float32], int]:
    samples, rate = sf.read(assets / "speech_en_16k.wav", dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def as_browser_chunks(
    samples: npt.NDArray[np.float32], rate: int, to_rate: int = 48_000
) -> list[npt.NDArray[np.float32]]:
    """The clip as a browser microphone gives it: int16 at 48 kHz, in 100 ms chunks."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    out = np.concatenate(
        [f.to_ndarray().reshape(-1) for f in resampler.resample(frame) + resampler.resample(None)]
    )
    step = to_rate // 10
    return [out[i : i + step] for i in range(0, out.size, step)]


@pytest.mark.parametrize("rate", [16_000, 44_100, 48_000])
def test_an_utterance_is_found_between_silences(assets: Path, rate: int) -> None:
    voice, voice_rate = speech(assets)
    silence = np.zeros(2 * voice_rate, dtype=np.float32)
    stream = np.concatenate([silence, voice, silence])
    detector = UtteranceCollector()
    started_at: list[float] = []
    utterances = []
    for chunk in as_browser_chunks(stream, voice_rate, rate):
        heard = detector.feed(rate, chunk)
        if heard.speech_started:
            started_at.append(detector.stream_s)
        utterances.extend(heard.utterances)
    assert len(started_at) >= 1
    assert abs(started_at[0] - 2.0) < 0.6, started_at
    assert utterances, "the utterance never ended"
    first, last = utterances[0], utterances[-1]
    # It starts where the speech starts, and ends where it ends, within ~0.3 s.
    assert abs(first.started_s - 2.0) < 0.4, first.started_s
    speech_end = 2.0 + len(voice) / voice_rate
    assert last.ended_s <= speech_end + 0.1
    assert last.ended_s > speech_end - 1.0, (last.ended_s, speech_end)
    total = sum(u.duration_s for u in utterances)
    assert total > 0.8 * len(voice) / voice_rate  # no speech lost between the pieces
    wav, wav_rate = sf.read(__import__("io").BytesIO(first.wav()))
    assert wav_rate == 16_000 and len(wav) == len(first.samples)


def test_silence_and_noise_are_not_speech() -> None:
    rng = np.random.default_rng(7)
    detector = UtteranceCollector()
    noise = (rng.standard_normal(16_000 * 4) * 0.01).astype(np.float32)
    for start in range(0, noise.size, 1600):
        heard = detector.feed(16_000, noise[start : start + 1600])
        assert not heard.speech_started and not heard.utterances
    assert detector.flush() is None


def test_the_end_of_speech_is_noticed_within_the_silence_setting(assets: Path) -> None:
    voice, rate = speech(assets)
    detector = UtteranceCollector(VadOptions(min_silence_s=0.4))
    stream = np.concatenate([voice, np.zeros(rate * 2, dtype=np.float32)])
    for start in range(0, stream.size, 1600):
        heard = detector.feed(rate, stream[start : start + 1600])
        if heard.utterances and heard.utterances[-1].ended_s > len(voice) / rate - 1.0:
            waited = detector.stream_s - heard.utterances[-1].ended_s
            assert 0.35 <= waited <= 0.55, waited
            return
    pytest.fail("the end of the speech was not detected")


def reply() -> LiveReply:
    reply = LiveReply(user="Tell me about Waterloo.")
    reply.update(
        ["It rained all night.", "The ground was mud and the guns could not move.", "We lost."],
        [("http://h/a1.wav", "http://h/v1.mp4"), ("http://h/a2.wav", "http://h/v2.mp4"), ()],
    )
    return reply


def test_what_was_heard_is_the_played_part_only() -> None:
    played = [
        PlayedClip("http://h/v1.mp4", 2.0, 2.0, ended=True),
        PlayedClip("http://h/v2.mp4", 1.5, 3.0, ended=False),
    ]
    assert reply().heard_text(played) == "It rained all night. The ground was mud and"
    assert reply().heard_text([]) == ""
    assert reply().heard_text([PlayedClip("http://h/v1.mp4", 2.0, 2.0, True)]) == (
        "It rained all night."
    )


def timed(*ends: float) -> tuple[WordTime, ...]:
    """vocalizr's word times for a sentence: when each of its words ends."""
    return tuple(WordTime(f"w{index}", end) for index, end in enumerate(ends))


# "The ground was mud and the guns could not move.": slowly at first, then quickly.
SECOND_SENTENCE_ENDS = timed(0.2, 0.9, 1.3, 1.55, 1.7, 1.8, 2.0, 2.3, 2.45, 2.9)


def test_the_sentence_cut_off_is_kept_to_the_last_word_said_by_its_clip_position() -> None:
    timed_reply = reply()
    timed_reply.update(
        timed_reply.sentences,
        [("http://h/a1.wav", "http://h/v1.mp4"), ("http://h/a2.wav", "http://h/v2.mp4"), ()],
        words=[timed(0.5, 1.0, 1.4, 1.9), SECOND_SENTENCE_ENDS, ()],
    )
    first = PlayedClip("http://h/v1.mp4", 2.0, 2.0, ended=True)
    # Half of the clip (1.5 of 3 s) is five words of ten by share; by the words' times, "mud"
    # ended at 1.55 s and was not heard whole.
    half = [first, PlayedClip("http://h/v2.mp4", 1.5, 3.0, ended=False)]
    assert timed_reply.heard_text(half) == "It rained all night. The ground was"
    # A word whose end is the position is heard; the page may report the audio or the video.
    at_mud = [first, PlayedClip("http://h/a2.wav", 1.55, 3.0, ended=False)]
    assert timed_reply.heard_text(at_mud) == "It rained all night. The ground was mud"
    # Before its first word ended: nothing of it, as without times.
    assert timed_reply.heard_text([first, PlayedClip("http://h/v2.mp4", 0.1, 3.0, False)]) == (
        "It rained all night."
    )
    # The first sentence cut off, by its own times.
    assert timed_reply.heard_text([PlayedClip("http://h/v1.mp4", 1.2, 2.0, False)]) == ("It rained")
    assert timed_reply.heard_text([]) == ""


def test_without_word_times_the_cut_follows_the_share_of_the_clip_played() -> None:
    half = [
        PlayedClip("http://h/v1.mp4", 2.0, 2.0, ended=True),
        PlayedClip("http://h/v2.mp4", 1.5, 3.0, ended=False),
    ]
    # Times that are not this sentence's (another count of words) are not used either.
    for words in ([], [(), timed(0.2, 0.9), ()]):
        untimed = reply()
        untimed.update(untimed.sentences, untimed.clip_urls, words=words)
        assert untimed.heard_text(half) == "It rained all night. The ground was mud and"


def test_all_of_a_reply_is_heard_once_each_clip_it_has_played_to_its_end() -> None:
    both = [
        PlayedClip("http://h/v1.mp4", 2.0, 2.0, ended=True),
        PlayedClip("http://h/v2.mp4", 3.0, 3.0, ended=True),
    ]
    being_made = reply()  # the last sentence has no clip yet: it is still to come
    assert not being_made.all_heard(both)
    made = reply()
    made.finished = True  # the last sentence's media failed: there is nothing of it to hear
    assert made.all_heard(both)
    assert not made.all_heard(both[:1])
    assert not made.all_heard([both[0], PlayedClip("http://h/v2.mp4", 1.0, 3.0, ended=False)])


def test_barge_in_stops_a_reply_once_and_only_while_it_speaks() -> None:
    live = LiveConversation()
    live.asking_to_stop()
    assert live.barge_in([], playing=True) is None  # nothing to interrupt yet
    current = live.begin_reply("Tell me about Waterloo.")
    current.update(reply().sentences, [{"http://h/v1.mp4"}, {"http://h/v2.mp4"}, set()])
    assert not live.stop_asked
    live.asking_to_stop()
    assert live.stop_asked  # the turn shows no more clips
    stopped = live.barge_in([PlayedClip("http://h/v1.mp4", 1.0, 2.0, False)], playing=True)
    assert stopped is current and live.interrupt_requested
    assert current.heard == "It rained"
    assert live.barge_in([], playing=True) is None  # once
    assert live.finish(current, remembered=False)  # the turn learns it was interrupted
    # A reply that finished and was heard to the end is not interrupted by the next utterance,
    # and goes on as it was.
    done = live.begin_reply("And then?")
    done.update(["Elba."], [{"http://h/v9.mp4"}])
    assert not live.finish(done, remembered=True)
    live.asking_to_stop()
    assert live.barge_in([PlayedClip("http://h/v9.mp4", 1.0, 1.0, True)], playing=False) is None
    assert not live.stop_asked


def test_an_answer_or_a_word_check_that_comes_late_stops_only_the_reply_it_was_for(
    assets: Path,
) -> None:
    """The words over one reply are the next turn's message: once that turn has begun, neither
    a check of them nor the page's answer to a stop asked for the first reply stops the next."""
    voice, rate = speech(assets)
    live = LiveConversation()
    first = live.begin_reply("Tell me about Waterloo.")
    first.update(reply().sentences, [{"http://h/v1.mp4"}, {"http://h/v2.mp4"}, set()])
    checking = None
    for chunk in as_browser_chunks(voice, rate):  # the person speaks over the reply
        started, _ = live.hear(48_000, chunk)
        if started:
            assert live.speech_over_reply(playing=True)
        if (checking := live.words_to_check()) is not None:
            break  # a check of the words starts; its answer will come back late
    assert checking is not None
    live.asking_to_stop()  # an earlier check found words (and then the utterance ended)
    live.asking_to_stop()  # the turn handler asks once more for the same reply
    assert live.barge_in([PlayedClip("http://h/v1.mp4", 2.0, 2.0, True)], playing=True) is first
    assert live.finish(first, remembered=True)
    second = live.begin_reply("But for many this year has been hard.")
    second.update(["A hard year, yes."], [{"http://h/v3.mp4"}])
    assert not live.words_checked("But for many this year has been hard.")
    assert live.barge_in([], playing=False) is None  # the second answer, late
    assert not second.interrupted and not live.interrupt_requested and not live.stop_asked


def test_the_page_report_is_read_defensively() -> None:
    report = [
        {"src": "http://h/v1.mp4", "t": 1.2, "d": 2.0, "ended": False},
        {"src": 5},
        "junk",
        {"src": "x", "t": "nan?"},
    ]
    assert parse_played(report) == [PlayedClip("http://h/v1.mp4", 1.2, 2.0, False)]
    assert parse_played({"not": "a list"}) == []


def test_an_interrupted_reply_is_marked_once_on_its_text_not_its_clips() -> None:
    from chattr.voice.controls import INTERRUPTED, mark_interrupted

    figure = {"type": "text", "text": "<figure><figcaption>Sentence 1</figcaption></figure>"}
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Ah, my friend."}]},
        {"role": "assistant", "content": [figure]},
    ]
    marked = mark_interrupted(mark_interrupted(history))
    assert marked[1]["content"][0]["text"] == "Ah, my friend." + INTERRUPTED
    assert marked[2]["content"] == [figure]
    # Plain strings too; an earlier turn's reply is never touched.
    plain = [{"role": "assistant", "content": "Old."}, {"role": "user", "content": "Hi"}]
    assert mark_interrupted(plain) == plain
    assert mark_interrupted([{"role": "assistant", "content": "Yes."}])[0]["content"] == (
        "Yes." + INTERRUPTED
    )


def test_the_pause_that_ends_an_utterance_is_guessed_on_first_with_the_same_audio(
    assets: Path,
) -> None:
    voice, rate = speech(assets)
    silence = np.zeros(2 * rate, dtype=np.float32)
    live = LiveConversation()
    guesses: list[tuple[float, object]] = []  # (stream time, the guess)
    ready_at = None
    for chunk in as_browser_chunks(np.concatenate([silence, voice, silence]), rate):
        _, ready = live.hear(48_000, chunk)
        guess = live.pause_to_guess_on()
        if guess is not None:
            guesses.append((live.detector.stream_s, guess))
            live.keep_guess(guess, f"transcript of {guess.ended_s:.2f}")
        if ready and ready_at is None:
            ready_at = live.detector.stream_s
            break
    assert ready_at is not None and guesses
    utterance = live.next_utterance()
    assert utterance is not None
    at, last_guess = guesses[-1]
    # The guess came while the pause was still being waited out: 0.35 s sooner here.
    assert ready_at - at >= 0.3, (ready_at, at)
    # The same speech: the utterance may only have more of the silence after it.
    guessed_samples = last_guess.samples  # type: ignore[attr-defined]
    assert (last_guess.started_s, last_guess.ended_s) == (  # type: ignore[attr-defined]
        utterance.started_s,
        utterance.ended_s,
    )
    assert np.array_equal(guessed_samples, utterance.samples[: guessed_samples.size])
    assert utterance.samples.size - guessed_samples.size <= TAIL_S * VAD_RATE
    guessed, stale = live.take_guess(utterance)
    assert guessed == f"transcript of {utterance.ended_s:.2f}" and stale is None
    assert live.take_guess(utterance) == (None, None)  # taken once


def test_a_guess_the_person_talked_past_is_given_back_to_cancel() -> None:
    from chattr.voice.utterances import Utterance

    live = LiveConversation()
    early = Utterance(np.zeros(10, np.float32), started_s=1.0, ended_s=2.0)
    later = Utterance(np.zeros(20, np.float32), started_s=1.0, ended_s=3.5)
    assert live.keep_guess(early, "early") is None
    assert live.take_guess(later) == (None, "early")  # same utterance, an earlier pause
    assert live.keep_guess(later, "later") is None
    assert live.keep_guess(early, "again") == "later"  # replaced: cancel the old one


def test_an_utterance_is_told_to_the_page_only_once_no_live_turn_runs() -> None:
    """The page starts each turn with the chat as it is when told: an utterance that ends while a
    turn runs waits, and is told as that turn ends, not queued behind it with an older chat."""
    from chattr.voice.utterances import Utterance

    live = LiveConversation()
    assert not live.turn_to_tell()  # nothing said yet
    first = Utterance(np.zeros(10, np.float32), started_s=1.0, ended_s=2.0)
    second = Utterance(np.zeros(10, np.float32), started_s=5.0, ended_s=6.0)
    live.pending.append(first)
    assert live.turn_to_tell()
    assert not live.turn_to_tell()  # told once
    assert live.start_turn() is first
    live.pending.append(second)  # said while the first turn runs
    assert not live.turn_to_tell()
    live.end_turn()
    assert live.turn_to_tell()
    assert live.start_turn() is second
    live.end_turn()
    assert live.start_turn() is None  # a turn handler with nothing to take
    live.end_turn()
    assert not live.turn_to_tell()


def scene_reply() -> LiveReply:
    """A scene message's replies: Napoleon's two sentences, then Einstein's two."""
    reply = LiveReply(user="What next?", scene_session="s")
    reply.update(
        ["To Moscow.", "In winter.", "Wait.", "Think first."],
        [("http://h/n1.wav",), ("http://h/n2.wav",), ("http://h/e1.wav",), ("http://h/e2.wav",)],
        ["napoleon", "napoleon", "einstein", "einstein"],
    )
    return reply


def test_in_a_scene_what_was_heard_is_kept_by_speaker_up_to_the_one_cut_off() -> None:
    def played(*shares: float) -> list[PlayedClip]:
        urls = ["http://h/n1.wav", "http://h/n2.wav", "http://h/e1.wav", "http://h/e2.wav"]
        heard = zip(urls[: len(shares)], shares, strict=True)
        return [PlayedClip(url, share * 2.0, 2.0, share == 1.0) for url, share in heard]

    # Cut off in Einstein's second sentence: Napoleon's whole reply, then Einstein's words.
    assert scene_reply().heard_parts(played(1, 1, 1, 0.5)) == [
        ("napoleon", "To Moscow. In winter."),
        ("einstein", "Wait. Think"),
    ]
    # Cut off before a word of Einstein's: he is the one interrupted, with nothing heard.
    assert scene_reply().heard_parts(played(1, 1)) == [
        ("napoleon", "To Moscow. In winter."),
        ("einstein", ""),
    ]
    # In Napoleon's reply: Einstein never spoke.
    assert scene_reply().heard_parts(played(1, 0.5)) == [("napoleon", "To Moscow. In")]
    assert scene_reply().heard_parts([]) == [("napoleon", "")]
    # With vocalizr's word times: Einstein's "Think first." cut after "Think" (it ends at 0.6 s:
    # the clip is at 0.6 s of its 2 s).
    timed_scene = scene_reply()
    timed_scene.update(
        timed_scene.sentences,
        timed_scene.clip_urls,
        timed_scene.speakers,
        [timed(0.5, 0.9), timed(0.3, 0.8), timed(0.7), timed(0.6, 1.8)],
    )
    assert timed_scene.heard_parts(played(1, 1, 1, 0.3)) == [
        ("napoleon", "To Moscow. In winter."),
        ("einstein", "Wait. Think"),
    ]
    # Napoleon's "In winter." at 0.6 s of its 2 s: "In" said (by share, not a word of it).
    assert timed_scene.heard_parts(played(1, 0.3)) == [("napoleon", "To Moscow. In")]
    # The page's stop keeps the parts on the reply it interrupts.
    live = LiveConversation()
    current = live.begin_reply("What next?")
    current.scene_session = "s"
    current.update(scene_reply().sentences, scene_reply().clip_urls, scene_reply().speakers)
    live.asking_to_stop()
    assert live.barge_in(played(1, 1, 0.5), playing=True) is current
    assert current.heard_by_speaker == [("napoleon", "To Moscow. In winter."), ("einstein", "")]


def test_in_a_scene_each_members_sentences_carry_their_word_times_to_the_cut() -> None:
    from chattr.reply import Segment, TurnState
    from chattr.scene.state import SceneState
    from chattr.voice.controls import spoken_sentences

    def member(character: str, *segments: Segment) -> TurnState:
        return TurnState("s", character, "What next?", segments=list(segments))

    state = SceneState("s", ("napoleon", "einstein"), "What next?")
    state.replies = [
        member("napoleon", Segment("To Moscow.", audio_url="http://h/n1.wav", words=timed(0.3, 1))),
        member(
            "einstein", Segment("Think first.", audio_url="http://h/e1.wav", words=timed(0.5, 1.2))
        ),
    ]
    live = LiveReply(user="What next?", scene_session="s")
    live.update(*spoken_sentences(state))
    played = [
        PlayedClip("http://h/n1.wav", 1, 1, True),
        PlayedClip("http://h/e1.wav", 1.3, 2, False),
    ]
    # By share (0.65 of the clip) one word of two; by their times both were said by 1.3 s (the
    # rest of the clip is its closing silence).
    assert live.heard_parts(played) == [("napoleon", "To Moscow."), ("einstein", "Think first.")]


def test_in_a_scene_the_reply_cut_off_is_the_one_marked() -> None:
    from chattr.voice.controls import INTERRUPTED, mark_interrupted

    history = [
        {"role": "user", "content": "What next?"},
        {"role": "assistant", "content": '<div class="chattr-by-napoleon">N</div>\n\nTo Moscow.'},
        {"role": "assistant", "content": '<figure class="chattr-by-napoleon"></figure>'},
        {"role": "assistant", "content": '<div class="chattr-by-einstein">E</div>\n\nWait.'},
    ]
    marked = mark_interrupted([dict(m) for m in history], marker="chattr-by-napoleon")
    assert marked[1]["content"].endswith("To Moscow." + INTERRUPTED)
    assert marked[2:] == history[2:]


@pytest.mark.slow
def test_a_reply_cut_off_keeps_the_words_vocalizr_said_by_then(tmp_path: Path) -> None:
    """The real chain: Piper's word times in vocalizr's answer, read by chattr's client,
    carried by the live reply, cut at the clip's position."""
    from chattr.media.clients import ClientOptions, VocalizrClient
    from tests.vocalizr.support import serve
    from vocalizr.settings import Settings

    sentence = "The ground was mud and the guns could not move."
    settings = Settings(
        engine="piper", characters_dir=tmp_path / "none", data_dir=tmp_path, stt_engine="none"
    )
    with serve(settings.model_copy(update={"ui": False})) as vocalizr:
        client = VocalizrClient(vocalizr.url, ClientOptions())
        speech = asyncio.run(client.synthesize(sentence, "default"))
    assert [w.word for w in speech.words] == sentence.split()
    live = LiveReply(user="And the guns?")
    live.update([sentence], [(speech.url,)], words=[speech.words])
    # Half-way between the ends of "mud" and "and": four words heard.
    mud, and_ = speech.words[3].end_s, speech.words[4].end_s
    cut = PlayedClip(speech.url, (mud + and_) / 2, speech.duration_s, ended=False)
    assert live.heard_text([cut]) == "The ground was mud"
    whole = PlayedClip(speech.url, speech.duration_s, speech.duration_s, ended=True)
    assert live.heard_text([whole]) == sentence
