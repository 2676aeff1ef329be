"""The transformers Whisper engine on the real (converted) tiny.en, plus its pure parts.

Real-model tests compare against the CTranslate2 engine on the committed clips. Token
identity is checked on identical log-mel features, so it tests the converted weights
and the decoding rules; WER is checked end to end, each engine with its own frontend.
"""

from __future__ import annotations

import csv
import itertools
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tasks.engines.base import EngineConfig, EngineError
from tasks.engines.whisper_tokens import Vocabulary, parse_tokens
from tasks.engines.windows import Span, batches, plan_spans, quietest, stitch
from tasks.records import SAMPLE_RATE, Clip, Segment, Word
from tests.hf_tiny import converted_tiny

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIG = EngineConfig(engine="transformers", pack_short_clips=False)


def _references() -> list[tuple[str, str]]:
    with (EXAMPLES / "references.tsv").open(newline="") as handle:
        return [(row["source"], row["text"]) for row in csv.DictReader(handle, delimiter="\t")]


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    from tasks.media.audio import decode_audio

    return [Clip(source, decode_audio(EXAMPLES / "library" / source, None)) for source, _ in _references()]


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    from tasks.engines.transformers_whisper import TransformersWhisper

    return TransformersWhisper(replace(CONFIG, batch_size=8), str(converted_tiny()))


def _wer(texts: list[str]) -> float:
    import jiwer

    norm = jiwer.Compose(
        [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
    )
    return float(jiwer.wer([norm(text) for _, text in _references()], [norm(t) for t in texts]))


# --- real weights -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("timestamps", [False, True])
def test_greedy_token_ids_identical_to_ctranslate2(engine, clips: list[Clip], timestamps: bool) -> None:  # type: ignore[no-untyped-def]
    """Same features, same prompt (<|startoftranscript|>, plus <|notimestamps|> without timestamps)."""
    import ctranslate2

    from tasks.models import bundled_whisper_ct2

    samples = [clip.samples for clip in clips]
    ours, _ = engine.generate(samples, words=False, timestamps=timestamps)
    features, _mask = engine.features(samples)
    reference = ctranslate2.models.Whisper(str(bundled_whisper_ct2()), device="cpu", compute_type="float32")
    prompt = [50257] if timestamps else [50257, 50362]
    results = reference.generate(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(features.cpu().numpy())),
        [prompt] * len(clips),
        beam_size=1,
        suppress_blank=True,
        max_length=448,
        max_initial_timestamp_index=50,
    )
    theirs = [result.sequences_ids[0] for result in results]
    assert [[t for t in row if t != 50256] for row in ours] == theirs  # 50256: end of text / batch padding
    assert any(t >= 50363 for row in theirs for t in row) == timestamps


@pytest.mark.slow
@pytest.mark.parametrize("pack", [True, False])
def test_wer_no_worse_than_ctranslate2(engine, clips: list[Clip], pack: bool) -> None:  # type: ignore[no-untyped-def]
    from tasks.engines.ctranslate2_whisper import CTranslate2Whisper
    from tasks.models import bundled_whisper_ct2

    config = replace(CONFIG, pack_short_clips=pack, extra=(("pack", "on"),) if pack else ())
    ct2 = CTranslate2Whisper(replace(config, engine="ctranslate2"), str(bundled_whisper_ct2()))
    with _with_config(engine, config) as configured:
        engine_wer = _wer([t.text for t in configured.transcribe(clips)])
    ct2_wer = _wer([t.text for t in ct2.transcribe(clips)])
    assert engine_wer <= ct2_wer, (engine_wer, ct2_wer)
    assert engine_wer < 0.4


@pytest.mark.slow
def test_batch_size_does_not_change_text(engine, clips: list[Clip]) -> None:  # type: ignore[no-untyped-def]
    from tasks.engines.transformers_whisper import TransformersWhisper

    one = TransformersWhisper(replace(CONFIG, batch_size=1), str(converted_tiny()))
    assert (one.batch_size, engine.batch_size) == (1, 8)
    assert engine.config == replace(CONFIG, batch_size=8)  # no other test left its options behind
    assert [t.text for t in one.transcribe(clips[:4])] == [t.text for t in engine.transcribe(clips[:4])]


@pytest.mark.slow
def test_word_timestamps_cover_the_text_in_order(engine, clips: list[Clip]) -> None:  # type: ignore[no-untyped-def]
    with _with_config(engine, replace(CONFIG, word_timestamps=True)) as configured:
        (transcript,) = configured.transcribe(clips[:1])
    words = transcript.words
    assert "".join(w.word for w in words).strip() == transcript.text
    assert all(0 <= w.start <= w.end <= clips[0].duration_s for w in words)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    assert 0.3 < words[-1].end - words[0].start <= clips[0].duration_s


@pytest.mark.slow
def test_long_file_is_stitched_without_lost_or_doubled_words(engine, clips: list[Clip]) -> None:  # type: ignore[no-untyped-def]
    """Several minutes of the clips joined with silences: every utterance comes back once, in place.

    Recognition itself varies with context (tiny.en on synthetic speech), so the check counts
    words per utterance by time: a lost utterance has none, a doubled one twice as many.
    """
    rng = np.random.default_rng(0)
    parts: list[np.ndarray] = []
    utterances: list[tuple[float, float, int]] = []  # start, end, words in the reference
    position = 0
    for _ in range(4):
        for index in rng.permutation(len(clips)):
            samples = clips[index].samples
            gap = np.zeros(int(rng.uniform(0.8, 2.5) * SAMPLE_RATE), np.float32)
            words = len(_references()[index][1].split())
            utterances.append((position / SAMPLE_RATE, (position + samples.size) / SAMPLE_RATE, words))
            parts += [samples, gap]
            position += samples.size + gap.size
    audio = np.concatenate(parts)
    assert audio.size / SAMPLE_RATE > 130  # over two minutes: five windows
    (stitched,) = engine.transcribe([Clip("long", audio)])
    heard = [(w.start + w.end) / 2 for w in stitched.words]
    counts = [sum(start - 0.5 <= t <= end + 0.5 for t in heard) for start, end, _ in utterances]
    expected = [words for _, _, words in utterances]
    assert all(0.6 * n <= c <= 1.4 * n for c, n in zip(counts, expected, strict=True)), list(
        zip(counts, expected, strict=False)
    )
    assert sum(counts) == len(heard)  # nothing placed in the silences between utterances
    assert heard == sorted(heard) and stitched.segments[-1].end <= audio.size / SAMPLE_RATE
    assert stitched.text == " ".join(s.text for s in stitched.segments)


@contextmanager
def _with_config(engine, config: EngineConfig):  # type: ignore[no-untyped-def]
    """The loaded engine under another output config for one block (saves reloading the model)."""
    saved, engine.config = engine.config, config
    try:
        yield engine
    finally:
        engine.config = saved


# --- loading and choices (no model) -----------------------------------------------------------------


def test_missing_model_folder_is_one_line_naming_the_path(tmp_path: Path) -> None:
    from tasks.engines.transformers_whisper import TransformersWhisper

    missing = tmp_path / "models" / "whisper-large"
    with pytest.raises(EngineError) as raised:
        TransformersWhisper(CONFIG, str(missing))
    message = str(raised.value)
    assert str(missing) in message and "\n" not in message


def test_attention_falls_back_to_sdpa_without_flash_attn(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.engines import hardware as tw

    monkeypatch.setitem(sys.modules, "flash_attn", None)  # `import flash_attn` now raises ImportError
    assert tw._flash_attn_available() is False
    assert tw.choose_attention(cuda=True) == "sdpa"
    monkeypatch.setattr(tw, "_sdpa_available", lambda: False)
    assert tw.choose_attention(cuda=True) == "eager"


def test_attention_picks_flash_only_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.engines import hardware as tw

    monkeypatch.setattr(tw, "_flash_attn_available", lambda: True)
    assert tw.choose_attention(cuda=True) == "flash_attention_2"
    assert tw.choose_attention(cuda=False) == "sdpa"
    assert tw.choose_attention(cuda=True, requested="eager") == "eager"


def test_dtype_follows_device_and_options() -> None:
    from tasks.engines.hardware import choose_dtype

    assert choose_dtype("cuda", CONFIG) == "float16"
    assert choose_dtype("cpu", CONFIG) == "float32"
    assert choose_dtype("cuda", replace(CONFIG, extra=(("dtype", "bfloat16"),))) == "bfloat16"
    with pytest.raises(EngineError, match="float16 needs CUDA"):
        choose_dtype("cpu", replace(CONFIG, compute_type="float16"))
    with pytest.raises(EngineError, match="int8"):
        choose_dtype("cuda", replace(CONFIG, compute_type="int8"))


def test_batch_size_from_free_memory() -> None:
    from tasks.engines.hardware import auto_batch_size, window_bytes

    large_v3 = window_bytes(d_model=1280, decoder_layers=32, heads=20, dtype_bytes=2, beams=1, eager=False)
    assert 200e6 < large_v3 < 400e6
    assert auto_batch_size(free_bytes=70 * 2**30, window_bytes=large_v3) == 64  # an idle H100: capped
    assert auto_batch_size(free_bytes=4 * 2**30, window_bytes=large_v3) == 8
    assert auto_batch_size(free_bytes=10**6, window_bytes=large_v3) == 1


def test_registry_defaults_to_the_converted_bundled_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tasks import models
    from tasks.engines import resolve_model

    monkeypatch.setattr(models, "bundled_whisper_transformers", lambda: tmp_path / "whisper-tiny.en-hf")
    assert resolve_model(EngineConfig(engine="transformers")) == str(tmp_path / "whisper-tiny.en-hf")


# --- windows, batches and tokens (pure) -----------------------------------------------------------


def test_spans_cover_the_file_and_cut_at_quiet_moments() -> None:
    audio = np.full(100 * SAMPLE_RATE, 0.1, np.float32)
    audio[int(20.5 * SAMPLE_RATE) : int(21.5 * SAMPLE_RATE)] = 0.0  # the only silence near the first cut
    spans = plan_spans(100, 30, 4, quietest(audio, SAMPLE_RATE))
    assert abs(spans[1].start - 21.0) < 0.3
    assert spans[0].own_from == 0 and spans[-1].own_to == float("inf") and spans[-1].end == 100
    for before, after in itertools.pairwise(spans):
        assert before.own_to == after.own_from == after.start  # owned spans tile the file
        assert before.end >= after.start + 4  # and each window hears past what it owns
    assert all(span.end - span.start <= 30 for span in spans)
    assert plan_spans(29.9, 30, 4) == [Span(0.0, 29.9, 0.0, float("inf"))]


def test_stitch_keeps_each_boundary_word_once() -> None:
    # "d" straddles the cut at 26 s: both windows heard it; "e" sits right after the cut.
    first = [(Segment(20, 28, "c d e"), (Word(24, 25, " c"), Word(25.6, 26.3, " d"), Word(26.5, 27, " e")))]
    second = [(Segment(0, 2, "d e f"), (Word(-0.4, 0.3, " d"), Word(0.5, 1.0, " e"), Word(1.2, 1.6, " f")))]
    spans = [Span(0, 30, 0, 26), Span(26, 56, 26, float("inf"))]
    transcript = stitch([(spans[0], first), (spans[1], second)], "en")
    assert [w.word.strip() for w in transcript.words] == ["c", "d", "e", "f"]
    assert [w.start for w in transcript.words] == [24, 25.6, 26.5, 27.2]
    assert transcript.text == "c d e f"


def test_batches_sort_by_length_and_respect_the_budget() -> None:
    assert batches([5, 30, 10, 30, 1], 2) == [[1, 3], [2, 0], [4]]
    assert sorted(i for b in batches(list(range(17)), 8) for i in b) == list(range(17))


def _vocab() -> Vocabulary:
    words = {1: " hello", 2: " world", 3: ".", 4: " again"}
    return Vocabulary(eot=100, timestamp_begin=200, decode=lambda ids: "".join(words[i] for i in ids))


def test_tokens_become_segments_and_follow_a_reseek() -> None:
    # <|0.00|> hello world. <|2.00|><|2.00|> hello <|3.00|> | re-seek from 3.00: <|0.00|> again <|1.00|>
    tokens = [200, 1, 2, 3, 300, 300, 1, 350, 200, 4, 250, 100]
    times = [0.0, 0.5, 1.0, 1.2, 2.0, 2.0, 2.6, 3.0, 0.0, 0.4, 1.0, 1.0]
    decoded = parse_tokens(tokens, times, _vocab(), duration=30.0)
    assert [s for s, _ in decoded] == [
        Segment(0.0, 2.0, "hello world."),
        Segment(2.0, 3.0, "hello"),
        Segment(3.0, 4.0, "again"),
    ]
    words = [w for _, ws in decoded for w in ws]
    assert [(w.word, w.start, w.end) for w in words] == [
        (" hello", 0.0, 0.5),
        (" world.", 0.5, 1.2),
        (" hello", 2.0, 2.6),
        (" again", 3.0, 3.4),
    ]


def test_word_stretched_over_silence_is_clamped() -> None:
    tokens = [200, 1, 2, 4, 260]  # " hello" aligned from 0.0 though spoken at 4.6
    times = [0.0, 5.0, 5.4, 5.8, 6.0]
    ((segment, words),) = parse_tokens(tokens, times, _vocab(), duration=30.0)
    assert words[0].end == 5.0 and words[0].start == pytest.approx(4.2)  # twice the 0.4 s median
    assert segment.text == "hello world again"
