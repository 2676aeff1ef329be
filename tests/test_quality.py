"""Quality guards, VAD and the safer retry: pure checks, a scripted engine, and the real tiny.en."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from tasks.engines import EngineConfig, load_transcriber
from tasks.quality.guarded import QualityOptions, transcribe_guarded
from tasks.quality.guards import GuardLimits, check_transcript, has_loop, max_compression_ratio
from tasks.quality.retry import Stretch, flagged_stretches, stretches
from tasks.quality.vad import JOIN_GAP_S, SpeechMap, compact, detect_speech, group_spans
from tasks.records import Clip, Segment, Transcript, Word
from tasks.transcribe import run_engine
from tests.media_factory import speech

SENTENCE = "The library opens at nine in the morning and closes at five in the evening."
PARAGRAPH = (
    "Water boils at one hundred degrees at sea level, but on a high mountain it boils sooner, because the air "
    "presses down on it less. Cooks who live in the hills learn to add a few minutes to the time their recipes "
    "give them. Please call Stella and ask her to bring these things with her from the store: snow peas, five "
    "thick slabs of blue cheese and maybe a snack for her brother Bob. We also need a small plastic snake."
)


def transcript(text: str, end: float = 5.0) -> Transcript:
    return Transcript(text, (Segment(0.0, end, text),) if text else ())


# --- the guards, pure -------------------------------------------------------------------------

def test_ordinary_speech_trips_nothing() -> None:
    assert check_transcript(transcript(SENTENCE), 5.0, 4.8) == ()
    assert check_transcript(transcript(PARAGRAPH, 28.0), 30.0, 28.0) == ()  # long text: ratio per stretch


def test_a_looping_decoder_trips_both_repetition_guards() -> None:
    looped = " ".join(["Thank you for watching."] * 12)
    flags = check_transcript(transcript(looped, 29.0), 30.0, 29.0)
    assert "repetition_loop" in flags and "high_compression_ratio" in flags
    assert max_compression_ratio(PARAGRAPH + " " + looped, 400) > 2.4 > max_compression_ratio(PARAGRAPH, 400)


@pytest.mark.parametrize(
    ("text", "looped"),
    [("no no no no", True), ("no no no", False), ("a b c a b c a b c a b c", True), (SENTENCE, False),
     (" ".join(["one two three four five six seven eight nine ten eleven"] * 4), True)],
)
def test_loops_are_ngrams_repeated_back_to_back(text: str, looped: bool) -> None:
    assert has_loop(text, min_repeats=4, max_ngram=20) is looped


def test_characters_per_second_out_of_range() -> None:
    assert check_transcript(transcript(PARAGRAPH[:200]), 5.0, 4.8) == ("chars_per_second_high",)
    assert check_transcript(transcript("Yes."), 20.0, 18.0) == ("chars_per_second_low",)
    assert check_transcript(transcript("Yes.", 1.0), 1.5, 1.5) == ()  # too little speech to judge a rate


def test_text_against_detected_speech() -> None:
    assert check_transcript(transcript(""), 10.0, 6.0) == ("empty_text_on_speech",)
    assert check_transcript(transcript(""), 10.0, 0.0) == ()
    assert check_transcript(transcript("Thank you."), 10.0, 0.0) == ("text_without_speech",)
    assert check_transcript(transcript(""), 10.0, None) == ()  # no detector: nothing to compare with


def test_timestamps_backwards_or_past_the_end() -> None:
    backwards = Transcript("a b", (Segment(3.0, 4.0, "a"), Segment(1.0, 2.0, "b")))
    inverted = Transcript("a", (), words=(Word(2.0, 1.0, "a"),))
    late = transcript(SENTENCE, end=9.0)
    assert "timestamps_not_monotonic" in check_transcript(backwards, 5.0, None)
    assert "timestamps_not_monotonic" in check_transcript(inverted, 5.0, None)
    assert "timestamps_past_end" in check_transcript(late, 5.0, 4.8)
    assert "timestamps_past_end" not in check_transcript(transcript(SENTENCE, end=5.3), 5.0, 4.8)


# --- VAD ----------------------------------------------------------------------------------------

def test_times_in_compacted_audio_map_back_to_the_clip() -> None:
    speech_map = SpeechMap(((1.0, 2.0), (10.0, 12.0)), 20.0)
    second = 1.0 + JOIN_GAP_S  # where the second span starts in the compacted audio
    assert speech_map.speech_s == 3.0 and not speech_map.is_whole
    assert speech_map.original_time(0.5) == 1.5
    assert speech_map.original_time(second + 0.5) == 10.5
    assert speech_map.original_time(1.0 + JOIN_GAP_S / 2) == 10.0  # a start in the gap: the next span
    assert speech_map.original_time(1.0 + JOIN_GAP_S / 2, is_end=True) == 2.0  # an end: the span before
    assert speech_map.original_time(second + 5.0, is_end=True) == 12.0


def test_vad_finds_the_speech_around_a_long_silence() -> None:
    samples = np.concatenate([speech(), np.zeros(16_000 * 30, np.float32), speech()])
    found = detect_speech(samples)
    assert len(found.spans) == 2
    assert found.spans[1][0] == pytest.approx(len(speech()) / 16_000 + 30, abs=0.6)
    assert len(compact(samples, found)) / 16_000 == pytest.approx(found.speech_s + JOIN_GAP_S, abs=0.01)
    assert detect_speech(np.zeros(16_000 * 5, np.float32)).spans == ()


def test_a_long_clip_gets_fine_windows_and_spans_merged_as_silero_default_would() -> None:
    """Over 30 s: `windows` end at short pauses (BatchedInferencePipeline's search), `spans` only at long
    ones, as Silero's 2 s default would cut them, from one pass."""
    short_pause, long_pause = np.zeros(int(16_000 * 1.0), np.float32), np.zeros(16_000 * 4, np.float32)
    samples = np.concatenate([speech(), short_pause, speech(), long_pause] * 4)
    found = detect_speech(samples)
    assert found.windows is not None and len(found.windows) == 8 and len(found.spans) == 4
    assert all(b - a >= 4.0 - 2 * 0.4 - 0.1 for (_, a), (b, _) in zip(found.spans, found.spans[1:], strict=False))
    assert all(any(a <= wa and wb <= b for a, b in found.spans) for wa, wb in found.windows)
    assert detect_speech(samples[: 16_000 * 20]).windows is None  # one window long: Silero's defaults only


# --- the retry, with a scripted engine ----------------------------------------------------------

class ScriptedEngine:
    """Says `texts[key]` for each clip; its `safer()` twin says `safer_texts[key]`."""

    engine, model = "scripted", "scripted"

    def __init__(self, texts: dict[str, str], safer_texts: dict[str, str] | None) -> None:
        self.texts, self.safer_texts = texts, safer_texts
        self.calls: list[list[str]] = []
        self.twin: ScriptedEngine | None = None

    def settings(self) -> dict[str, str]:
        return {"mode": "scripted"}

    def transcribe(self, clips: Sequence[Clip]) -> list[Transcript]:
        self.calls.append([c.key for c in clips])
        return [transcript(self.texts[c.key], c.duration_s) for c in clips]

    def safer(self) -> ScriptedEngine | None:
        if self.safer_texts is None:
            return None
        self.twin = ScriptedEngine(self.safer_texts, None)
        return self.twin


LOOP = "the quick brown " * 12
CLIPS = [Clip("looping.wav", speech()), Clip("fine.wav", speech())]


def test_only_flagged_clips_are_retried_and_the_better_result_is_kept() -> None:
    engine = ScriptedEngine({"looping.wav": LOOP, "fine.wav": "the quick brown fox"},
                            {"looping.wav": "the quick brown fox jumps"})
    looping, fine = transcribe_guarded(engine, CLIPS, QualityOptions(), run_engine)
    assert engine.twin is not None and engine.twin.calls == [["looping.wav"]]
    assert isinstance(looping, Transcript) and looping.quality is not None
    assert looping.text == "the quick brown fox jumps" and looping.quality.flags == ()
    first, second = looping.quality.attempts
    assert (first.decode, first.kept, second.decode, second.kept) == ("default", False, "safer", True)
    assert "repetition_loop" in first.flags and first.text == LOOP
    assert looping.info["quality_decode"] == '{"mode": "scripted"}'
    assert isinstance(fine, Transcript) and fine.quality is not None and fine.quality.attempts == ()


def test_a_worse_retry_is_recorded_but_not_kept() -> None:
    engine = ScriptedEngine({"looping.wav": LOOP, "fine.wav": "fine"}, {"looping.wav": LOOP + LOOP})
    looping = transcribe_guarded(engine, CLIPS[:1], QualityOptions(), run_engine)[0]
    assert isinstance(looping, Transcript) and looping.quality is not None
    assert looping.text == LOOP and [a.kept for a in looping.quality.attempts] == [True, False]
    assert "quality_decode" not in looping.info


@pytest.mark.parametrize("options", [QualityOptions(), QualityOptions(retry=False)])
def test_no_retry_without_a_safer_engine_or_with_retry_off(options: QualityOptions) -> None:
    has_safer = not options.retry
    engine = ScriptedEngine({"looping.wav": LOOP}, {"looping.wav": "clean"} if has_safer else None)
    looping = transcribe_guarded(engine, CLIPS[:1], options, run_engine)[0]
    assert isinstance(looping, Transcript) and looping.quality is not None
    assert engine.twin is None and looping.quality.attempts == () and "repetition_loop" in looping.quality.flags


def test_silent_clips_never_reach_the_engine_with_vad_on() -> None:
    silent = Clip("silent.wav", np.zeros(16_000 * 8, np.float32))
    engine = ScriptedEngine({"silent.wav": "Thank you."}, None)
    on = transcribe_guarded(engine, [silent], QualityOptions(), run_engine)[0]
    assert engine.calls == [] and isinstance(on, Transcript) and on.text == ""
    assert on.quality is not None and on.quality.flags == ("no_speech",) and on.quality.speech_s == 0.0
    off = transcribe_guarded(engine, [silent], QualityOptions(vad=False), run_engine)[0]
    assert engine.calls == [["silent.wav"]] and isinstance(off, Transcript) and off.quality is not None
    assert off.quality.flags == ("no_speech", "text_without_speech")


def test_options_come_from_the_engine_config() -> None:
    assert QualityOptions.from_config(EngineConfig()) == QualityOptions()
    off = QualityOptions.from_config(EngineConfig(extra=(("quality_retry", "off"), ("vad", "off"))))
    assert (off.vad, off.retry) == (False, False)
    with pytest.raises(ValueError, match="vad: Input should be a valid boolean"):
        QualityOptions.from_config(EngineConfig(extra=(("vad", "maybe"),)))


# --- the retry of a long clip, by its flagged stretches ---------------------------------------

def prose(seconds: float) -> str:
    """Ordinary speech for a stretch of this length: 12 characters a second."""
    return PARAGRAPH[: round(12 * seconds)].strip()


class WindowedEngine:
    """Decodes a long clip by the stretches of its speech, as the batched decoder does: one segment per
    stretch, the second looping. Its safer twin speaks plainly and notes how much audio it heard."""

    engine, model, windows_by_speech = "windowed", "windowed", True

    def __init__(self, safe: bool = False) -> None:
        self.safe, self.heard, self.twin = safe, [], None  # type: ignore[var-annotated]

    def settings(self) -> dict[str, str]:
        return {"mode": "safer" if self.safe else "windowed"}

    def transcribe(self, clips: Sequence[Clip]) -> list[Transcript]:
        self.heard += [c.duration_s for c in clips]
        if self.safe:
            return [transcript(prose(c.duration_s), c.duration_s) for c in clips]
        out = []
        for clip in clips:
            groups = group_spans(clip.speech or ((0.0, clip.duration_s),), 30.0)
            segments = tuple(Segment(g[0][0], g[-1][1], LOOP if n == 1 else prose(g[-1][1] - g[0][0]))
                             for n, g in enumerate(groups))
            out.append(Transcript(" ".join(s.text for s in segments), segments))
        return out

    def safer(self) -> WindowedEngine:
        self.twin = WindowedEngine(safe=True)
        return self.twin


def test_a_long_clip_is_retried_only_in_its_flagged_stretch() -> None:
    pause = np.zeros(16_000, np.float32)
    long = Clip("long.wav", np.concatenate([part for _ in range(24) for part in (speech(), pause)]))
    engine = WindowedEngine()
    result = transcribe_guarded(engine, [long], QualityOptions(), run_engine)[0]
    assert isinstance(result, Transcript) and result.quality is not None and engine.twin is not None
    parts = stretches(detect_speech(long.samples))
    assert len(parts) >= 3
    # the twin heard one stretch (its speech, pauses under 1.2 s kept), not the clip
    assert len(engine.twin.heard) == 1 and engine.twin.heard[0] <= 31.0 < long.duration_s / 2
    assert result.info["quality_retry"] == f"1 of {len(parts)} stretches"
    assert result.quality.flags == () and not has_loop(result.text, 4, 20)
    first, second = result.quality.attempts
    assert (first.kept, second.kept) == (False, True) and LOOP.strip() in first.text
    # the other stretches keep their first decode; the retried one lands inside its own stretch
    firsts = engine.transcribe([replace(long, speech=detect_speech(long.samples).windows)])[0].segments
    assert [s.text for s in result.segments] == [firsts[0].text, prose(engine.twin.heard[0]), *(
        s.text for s in firsts[2:])]
    assert result.segments[0] == firsts[0] and result.segments[2:] == firsts[2:]
    assert parts[1].start <= result.segments[1].start and result.segments[1].end <= parts[2].start


def test_a_loop_split_across_two_stretches_flags_both() -> None:
    parts = (Stretch(((0.0, 20.0),)), Stretch(((21.0, 41.0),)), Stretch(((42.0, 62.0),)))
    half = "we go round and round " * 2
    split_loop = Transcript("", (Segment(0, 20, PARAGRAPH[:300]), Segment(21, 41, PARAGRAPH[:250] + " " + half),
                                 Segment(42, 62, half + PARAGRAPH[:250])))
    assert flagged_stretches(split_loop, parts, GuardLimits()) == (1, 2)
    clean = Transcript("", tuple(Segment(a, b, PARAGRAPH[:300]) for a, b in ((0, 20), (21, 41), (42, 62))))
    assert flagged_stretches(clean, parts, GuardLimits()) == ()


# --- the real engine (the guard clips run through a whole flow in test_canary.py) ------------

@pytest.mark.slow
def test_safer_twin_shares_the_model_and_decodes_one_clip_per_window() -> None:
    engine = load_transcriber(EngineConfig(pack_short_clips=True))
    twin = engine.safer()  # type: ignore[attr-defined]
    assert twin._whisper is engine._whisper  # type: ignore[attr-defined]
    assert (twin.config.pack_short_clips, twin.config.beam_size) == (False, 5)
    assert twin.settings()["temperature"] == "0.0,0.4,0.8" and "temperature" not in engine.settings()
    assert engine.config.pack_short_clips  # type: ignore[attr-defined]

