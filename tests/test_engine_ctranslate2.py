"""The embedded default on real weights (bundled tiny.en) and real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.engines import EngineConfig, EngineError, load_transcriber, resolve_model
from tasks.engines.words import caption_segments
from tasks.media.audio import decode_audio, probe_duration
from tasks.quality.wer import word_error_rate
from tasks.records import SAMPLE_RATE, Clip, Transcript, Word
from tests.media_factory import spoken_library

pytestmark = pytest.mark.slow

# tiny.en on espeak speech lands near 0.2 here; a broken decoder lands near 1.0.
MAX_WER = 0.35


@pytest.fixture(scope="module")
def clips(example_library: Path, references: dict[str, str]) -> list[Clip]:
    paths = [example_library / source for source in references]
    return [Clip(p.relative_to(example_library).as_posix(), decode_audio(p, probe_duration(p))) for p in paths]


def test_default_transcribes_real_speech(clips: list[Clip], references: dict[str, str]) -> None:
    transcripts = load_transcriber(EngineConfig()).transcribe(clips)
    assert word_error_rate([references[c.key] for c in clips], [t.text for t in transcripts]) <= MAX_WER
    for clip, transcript in zip(clips, transcripts, strict=True):
        assert transcript.language == "en"
        assert transcript.segments
        assert all(0 <= s.start <= s.end <= clip.duration_s + 0.01 for s in transcript.segments)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Clip], list[str]]:
    root = tmp_path_factory.mktemp("harvard")
    references = spoken_library(root, 16)
    clips = [Clip(s, decode_audio(root / s, probe_duration(root / s))) for s in references]
    return clips, list(references.values())


def test_batched_default_is_plain_fp32_greedy_text_for_clips(spoken: tuple[list[Clip], list[str]]) -> None:
    """By default (`audio_context=full`) a clip up to 30 s is decoded as faster-whisper's own float32 greedy
    decoder does it alone: the same text, so batching costs no accuracy. `fit` (opt-in) reaches the encoder;
    packing (opt-in) must be no worse in WER."""
    from faster_whisper import WhisperModel

    clips, refs = spoken
    plain = WhisperModel(resolve_model(EngineConfig()), device="cpu", compute_type="float32")
    options = {"beam_size": 1, "language": "en", "temperature": 0.0, "condition_on_previous_text": False}
    baseline = [" ".join(s.text.strip() for s in plain.transcribe(c.samples, **options)[0]) for c in clips]
    assert [t.text for t in load_transcriber(EngineConfig()).transcribe(clips)] == baseline
    explicit = load_transcriber(EngineConfig(extra=(("audio_context", "full"),))).transcribe(clips)
    assert [t.text for t in explicit] == baseline
    fitted = load_transcriber(EngineConfig(extra=(("audio_context", "fit"),))).transcribe(clips)
    assert [t.text for t in fitted] != baseline  # the option reaches the encoder
    packed = load_transcriber(EngineConfig(pack_short_clips=True)).transcribe(clips)
    assert word_error_rate(refs, [t.text for t in packed]) <= word_error_rate(refs, baseline)


def test_packed_clips_keep_their_own_words(clips: list[Clip], references: dict[str, str]) -> None:
    """No cross-clip leakage with packing on: each clip's text is closest to its own reference."""
    transcripts = load_transcriber(EngineConfig(pack_short_clips=True)).transcribe(clips)
    for clip, transcript in zip(clips, transcripts, strict=True):
        own = word_error_rate([references[clip.key]], [transcript.text])
        others = [word_error_rate([references[o.key]], [transcript.text]) for o in clips if o is not clip]
        assert own < min(others), (clip.key, transcript.text)


def test_model_loads_once_per_process() -> None:
    assert load_transcriber(EngineConfig()) is load_transcriber(EngineConfig())


def test_silence_gives_empty_text_not_an_error() -> None:
    transcript = load_transcriber(EngineConfig()).transcribe([Clip("silence", np.zeros(16_000 * 3, np.float32))])[0]
    assert len(transcript.text.split()) <= 2


def test_missing_model_path_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=f"model: no such file or folder: {tmp_path}/nope"):
        resolve_model(EngineConfig(model=str(tmp_path / "nope")))


@pytest.fixture(scope="module")
def long_file(clips: list[Clip], references: dict[str, str]) -> tuple[Clip, list[tuple[float, float, int]], str]:
    """The example clips joined 3 times with 0.8-2.5 s pauses (~1.5 min): the clip, each utterance's
    start, end and reference word count, and the joined reference text."""
    rng = np.random.default_rng(1)
    parts: list[np.ndarray] = []
    utterances: list[tuple[float, float, int]] = []
    texts: list[str] = []
    position = 0
    for _ in range(3):
        for index in rng.permutation(len(clips)):
            clip = clips[index]
            gap = np.zeros(int(rng.uniform(0.8, 2.5) * SAMPLE_RATE), np.float32)
            utterances.append((position / SAMPLE_RATE, (position + clip.samples.size) / SAMPLE_RATE,
                               len(references[clip.key].split())))
            texts.append(references[clip.key])
            parts += [clip.samples, gap]
            position += clip.samples.size + gap.size
    return Clip("long", np.concatenate(parts)), utterances, " ".join(texts)


def test_long_file_is_decoded_batched_with_every_utterance_once(
    long_file: tuple[Clip, list[tuple[float, float, int]], str],
) -> None:
    """Windows of one file decoded as a batch: no utterance lost or doubled, cues caption-sized,
    text as accurate as the sequential decoder's (within noise)."""
    clip, utterances, reference = long_file
    assert clip.duration_s > 60
    batched = load_transcriber(EngineConfig(word_timestamps=True))
    (got,) = batched.transcribe([clip])
    assert got.info["decode"] == "batched"
    heard = [(w.start + w.end) / 2 for w in got.words]
    counts = [sum(start - 0.5 <= t <= end + 0.5 for t in heard) for start, end, _ in utterances]
    assert all(0.6 * n <= c <= 1.4 * n for c, (_, _, n) in zip(counts, utterances, strict=True)), counts
    assert heard == sorted(heard) and sum(counts) == len(heard)
    assert all(s.end - s.start <= 6.0 + 1e-6 for s in got.segments)  # cues from the words: caption-sized
    assert got.segments[-1].end <= clip.duration_s + 0.01
    (plain,) = load_transcriber(EngineConfig()).transcribe([clip])
    assert plain.text == got.text and not plain.words  # word times only when asked; same text
    (sequential,) = load_transcriber(EngineConfig(extra=(("long_form", "sequential"),))).transcribe([clip])
    assert "decode" not in sequential.info
    assert word_error_rate([reference], [got.text]) <= word_error_rate([reference], [sequential.text]) + 0.05


def test_long_form_option_is_checked() -> None:
    from tasks.engines.options import validate_options

    with pytest.raises(ValueError, match="engine_options: long_form: Input should be 'batched' or 'sequential'"):
        validate_options("ctranslate2", {"long_form": "fast"})


def test_captions_keep_every_word_once_and_break_at_sentences_pauses_and_length() -> None:
    words = [Word(0.0, 0.4, " Hello"), Word(0.5, 0.9, " there."), Word(1.0, 1.3, " New"),
             Word(2.5, 2.8, " pause"), *(Word(3.0 + i, 3.5 + i, f" w{i}") for i in range(10))]
    cues = caption_segments(words)
    assert [c.text for c in cues] == ["Hello there.", "New", "pause w0 w1 w2 w3 w4 w5", "w6 w7 w8 w9"]
    assert " ".join(c.text for c in cues).split() == [w.word.strip() for w in words]
    assert all(c.end - c.start <= 6.0 for c in cues)


def test_cuda_batch_size_comes_from_the_model_geometry_and_free_memory() -> None:
    """Read from model.bin's headers (tiny.en: d_model 384, 4 decoder layers, 6 heads), then sized as the
    transformers engine sizes its batches: more free memory, more windows, capped."""
    from tasks.engines.hardware import auto_batch_size, ct2_whisper_geometry, window_bytes

    geometry = ct2_whisper_geometry(str(Path(resolve_model(EngineConfig())) / "model.bin"))
    assert geometry == (384, 4, 6)
    per_window = window_bytes(*geometry, 2, 1, eager=False)
    assert auto_batch_size(2 * 2**30, per_window) > auto_batch_size(2**30, per_window) > 8
    assert auto_batch_size(80 * 2**30, per_window) == 64


def test_cpu_batch_is_wide_for_the_decoder_and_narrow_for_the_encoder_within_the_ram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tasks.engines import hardware
    from tasks.engines.ctranslate2_whisper import CPU_BATCH, CPU_ENCODE_BATCH

    transcriber = load_transcriber(EngineConfig())
    assert transcriber.settings()["device"] == "cpu"
    model = str(resolve_model(EngineConfig()))
    monkeypatch.setattr(hardware, "available_ram_bytes", lambda: 64 * 2**30)
    assert transcriber._auto_batch(model) == CPU_BATCH == 32  # type: ignore[attr-defined]
    monkeypatch.setattr(hardware, "available_ram_bytes", lambda: 2**30)  # a quarter, 60 % of it: ~2 windows
    assert 1 <= transcriber._auto_batch(model) < 8  # type: ignore[attr-defined]
    assert transcriber._batch.encode_batch == CPU_ENCODE_BATCH < CPU_BATCH  # type: ignore[attr-defined]


def test_a_cpu_model_runs_as_two_lanes_sharing_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.engines import lanes

    monkeypatch.setattr(lanes, "cpu_cores", lambda: 16)
    assert lanes.cpu_lanes(0, "cpu") == (2, 2)  # CTranslate2's own default of 4 threads, in two lanes
    assert lanes.cpu_lanes(16, "cpu") == (2, 8)  # every core when asked
    assert lanes.cpu_lanes(3, "cpu") == (2, 1)  # cpu_threads bounds them
    assert lanes.cpu_lanes(1, "cpu") == (1, 1)
    assert lanes.cpu_lanes(4, "cuda") == (1, 4)  # one replica on a GPU
    monkeypatch.setattr(lanes, "cpu_cores", lambda: 1)
    assert lanes.cpu_lanes(0, "cpu") == (1, 1)
    assert lanes.Lanes(2).map(lambda x: x * x, [1, 2, 3]) == [1, 4, 9]  # in the order given
    assert lanes.Lanes(2).split(5) == [[0, 2, 4], [1, 3]] and lanes.Lanes(3).split(2) == [[0], [1]]
    monkeypatch.undo()
    count, threads = lanes.cpu_lanes(0, "cpu")  # this machine's
    transcriber = load_transcriber(EngineConfig())
    assert transcriber.settings()["cpu_lanes"] == f"{count} x {threads} threads"
    assert lanes.Lanes.of(transcriber.whisper_model).count == count  # type: ignore[attr-defined]


def test_packing_and_word_times_are_opt_in() -> None:
    from tasks.run_config import RunConfig

    assert not EngineConfig().pack_short_clips and not EngineConfig().word_timestamps
    default = RunConfig(source=".", out="out").engine_config()
    assert not default.pack_short_clips and not default.word_timestamps


def test_window_times_map_back_across_cut_pauses_and_sentences_share_the_time() -> None:
    from tasks.engines.ct2_batch import Window, _sentence_cues
    from tasks.records import Segment

    window = Window(0, ((10.0, 14.0), (20.0, 25.0)), np.zeros(9 * SAMPLE_RATE, np.float32), timestamps=False)
    assert [window.clip_time(t) for t in (0.0, 3.5, 4.0, 8.9, 9.5)] == [10.0, 13.5, 20.0, 24.9, 25.0]
    assert window.clip_time(4.0, is_end=True) == 14.0  # an end at the join stays in the piece before
    assert window.clip_span(3.6, 4.2) == (13.6, 14.0) and window.clip_span(3.9, 4.5) == (20.0, 20.5)  # by midpoint
    cues = _sentence_cues([(Segment(0.0, 9.0, "One two. Three four five six."), ())], 9.0)
    expected = [("One two.", 0.0, 2.571), ("Three four five six.", 2.571, 9.0)]
    assert [(c.text, c.start, c.end) for c, _ in cues] == expected


def test_through_the_guards_a_long_file_runs_vad_once_with_the_engines_own_text(
    long_file: tuple[Clip, list[tuple[float, float, int]], str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The guards' VAD finds a long clip's speech as the batched decoder would and hands the spans over:
    one Silero pass per clip instead of two, and the same windows, so the same text and times."""
    import faster_whisper.vad

    from tasks.quality.guarded import QualityOptions, transcribe_guarded
    from tasks.transcribe import run_engine

    clip, _, _ = long_file
    transcriber = load_transcriber(EngineConfig())
    (alone,) = transcriber.transcribe([clip])  # the engine finds the speech itself
    calls: list[int] = []
    original = faster_whisper.vad.get_speech_timestamps

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(faster_whisper.vad, "get_speech_timestamps", counted)
    (guarded,) = transcribe_guarded(transcriber, [clip], QualityOptions(retry=False), run_engine)
    assert len(calls) == 1
    assert isinstance(guarded, Transcript) and guarded.text == alone.text
    assert [(s.start, s.end) for s in guarded.segments] == [(s.start, s.end) for s in alone.segments]


def test_the_encoder_hears_a_short_window_at_its_own_length_in_5_s_steps() -> None:
    """`fit`: the window plus >= 2 s, rounded up to 5 s, never under 15 s (7.5 s made tiny.en loop),
    never over Whisper's 30 s; `full`: always 30 s. Clips of one length share a batch; a long file's
    windows keep 30 s."""
    from tasks.engines.ct2_batch import Window, encoder_frames

    seconds = {2.0: 1500, 8.0: 1500, 12.9: 1500, 13.1: 2000, 18.1: 2500, 27.9: 3000, 30.0: 3000}
    for length, frames in seconds.items():
        assert encoder_frames(round(length * 16_000), fit_context=True) == frames, length
        assert encoder_frames(round(length * 16_000), fit_context=False) == 3000
    decoder = load_transcriber(EngineConfig(extra=(("audio_context", "fit"),)))._batch  # type: ignore[attr-defined]
    windows = [Window(i, ((0.0, s),), np.zeros(round(s * 16_000), np.float32)) for i, s in enumerate([3, 9, 14, 4, 29])]
    assert sorted(sorted(b) for b in decoder._batches(windows)) == [[0, 1, 3], [2], [4]]
    default = load_transcriber(EngineConfig())._batch  # type: ignore[attr-defined]
    assert default._batches(windows) == [[4, 2, 1, 3, 0]]  # full: one encoder length, one batch, longest first
    long_file = [Window(0, ((0.0, s),), np.zeros(round(s * 16_000), np.float32), timestamps=False) for s in (29, 3)]
    assert [decoder._frames(w) for w in long_file] == [3000, 3000]  # a long file's windows keep 30 s
    assert decoder._batches(long_file) == [[0, 1]]
