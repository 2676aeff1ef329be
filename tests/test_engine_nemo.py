"""The NeMo engine end to end on a tiny random FastConformer-TDT saved as `.nemo`.

Random weights give garbage words, so these tests check plumbing and structure:
every clip answered, timestamps on each clip's clock, modes, stitching, OOM fallback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nemo.collections.asr", reason="the nemo extra is not installed")

import torch

from tasks.engines import load_transcriber
from tasks.engines.base import EngineConfig, EngineError, Transcriber
from tasks.engines.nemo_parakeet import NemoParakeet
from tasks.records import SAMPLE_RATE, Clip, Transcript
from tests.nemo_tiny import save_tiny_nemo

pytestmark = pytest.mark.slow
SHORT_CHUNKS = (("chunk_s", "4"), ("left_s", "1"), ("right_s", "1"))  # many chunks from short test audio


@pytest.fixture(scope="session")
def tiny_nemo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_nemo(tmp_path_factory.mktemp("nemo-tiny"))


def _clip(key: str, seconds: float, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(key, (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32))


def _engine(path: Path, batch_size: int = 4, **options: str) -> NemoParakeet:
    config = EngineConfig(engine="nemo", model=str(path), batch_size=batch_size, extra=tuple(sorted(options.items())))
    engine = load_transcriber(config)  # the real loading path: registry → restore_from
    assert isinstance(engine, NemoParakeet)
    return engine


@pytest.fixture()
def known_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Mode choice from the reference limits alone, whatever this machine has free."""
    monkeypatch.setattr("tasks.engines.nemo_parakeet._mem_available", lambda: None)
    yield


def _assert_well_formed(transcript: Transcript, clip: Clip) -> None:
    assert transcript.words, f"{clip.key}: no words (the tiny model emits some on any audio)"
    previous_end = 0.0
    for word in transcript.words:
        assert previous_end <= word.start <= word.end <= clip.duration_s + 1e-6, (clip.key, word)
        previous_end = word.end
    for segment in transcript.segments:
        assert 0 <= segment.start <= segment.end <= clip.duration_s + 1e-6
    assert transcript.text.split() == [w.word for w in transcript.words]


def test_registry_loads_the_engine_from_a_nemo_file(tiny_nemo: Path) -> None:
    engine = _engine(tiny_nemo)
    assert isinstance(engine, Transcriber)
    assert (engine.engine, engine.model, engine.device) == ("nemo", str(tiny_nemo), "cpu")
    assert engine.settings()["chunking"] == "20.0/5.0/3.0"
    assert not engine._asr.training


@pytest.mark.parametrize("mode", ["full", "local", "buffered"])
def test_every_clip_gets_a_well_formed_transcript(tiny_nemo: Path, mode: str) -> None:
    clips = [_clip("a", 3.0, 1), _clip("b", 11.5, 2), _clip("c", 0.4, 3), _clip("d", 7.0, 4), _clip("e", 9.2, 5)]
    transcripts = _engine(tiny_nemo, batch_size=2, mode=mode, **dict(SHORT_CHUNKS)).transcribe(clips)
    assert len(transcripts) == len(clips)
    for clip, transcript in zip(clips, transcripts, strict=True):
        _assert_well_formed(transcript, clip)
        assert transcript.info["mode"] == mode


def test_local_attention_is_switched_back_after_use(tiny_nemo: Path) -> None:
    engine = _engine(tiny_nemo, mode="local")
    engine.transcribe([_clip("a", 5.0)])
    assert engine._asr.encoder.self_attention_model == "rel_pos"


def test_results_do_not_depend_on_batch_size_or_order(tiny_nemo: Path) -> None:
    clips = [_clip(f"c{i}", seconds, i) for i, seconds in enumerate([6.0, 1.5, 12.0, 3.3, 8.8])]
    one = _engine(tiny_nemo, batch_size=1).transcribe(clips)
    five = _engine(tiny_nemo, batch_size=5).transcribe(clips)
    reversed_ = _engine(tiny_nemo, batch_size=2).transcribe(clips[::-1])[::-1]
    assert [t.words for t in one] == [t.words for t in five] == [t.words for t in reversed_]


def test_auto_mode_follows_the_length_thresholds(tiny_nemo: Path, known_memory: None) -> None:
    engine = _engine(tiny_nemo, full_max_s="5", local_max_s="10", **dict(SHORT_CHUNKS))
    transcripts = engine.transcribe([_clip("long", 14.0), _clip("short", 4.0), _clip("middle", 8.0)])
    assert [t.info["mode"] for t in transcripts] == ["buffered", "full", "local"]
    assert transcripts[0].info["chunking"] == "4s chunks, 1s left, 1s right"


def test_buffered_mode_covers_a_file_many_chunks_long(tiny_nemo: Path) -> None:
    clip = _clip("long", 101.3)  # 26 chunks of 4 s
    (transcript,) = _engine(tiny_nemo, mode="buffered", chunk_batch="5", **dict(SHORT_CHUNKS)).transcribe([clip])
    _assert_well_formed(transcript, clip)
    edges = [0.0] + [t for w in transcript.words for t in (w.start, w.end)] + [clip.duration_s]
    gaps = [after - before for before, after in zip(edges[::2], edges[1::2], strict=True)]
    assert max(gaps) < 4.0, "a stretch of the file longer than a chunk got no words"
    assert transcript.words[0].start < 4.0 and transcript.words[-1].end > clip.duration_s - 4.0


def _oom_when(engine: NemoParakeet, monkeypatch: pytest.MonkeyPatch, too_big, error: Exception) -> list[int]:
    """Make the model raise `error` on batches `too_big(batch)` says do not fit; returns batch sizes seen."""
    real = engine._asr.transcribe
    sizes: list[int] = []

    def transcribe(audio, **kwargs):
        sizes.append(len(audio))
        if too_big(audio):
            raise error
        return real(audio, **kwargs)

    monkeypatch.setattr(engine._asr, "transcribe", transcribe)
    return sizes


def test_oom_on_a_batch_halves_it_and_loses_nothing(tiny_nemo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(tiny_nemo, batch_size=4, mode="full")
    clips = [_clip(f"c{i}", 1.0 + 0.5 * i, i) for i in range(5)]
    expected = [t.words for t in engine.transcribe(clips)]
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory")
    sizes = _oom_when(engine, monkeypatch, lambda audio: len(audio) > 1, oom)
    transcripts = engine.transcribe(clips)
    assert sizes[:3] == [4, 2, 1]
    assert [t.words for t in transcripts] == expected
    assert all(t.info == {"mode": "full", "full_batch_halved_to": "1"} for t in transcripts)


def test_oom_on_one_long_file_falls_back_full_then_local_then_buffered(
    tiny_nemo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tiny_nemo, batch_size=2, mode="full", **dict(SHORT_CHUNKS))
    local_fits = 9.0 * SAMPLE_RATE

    def too_big(audio) -> bool:  # full attention fits 6 s; local attention 9 s; buffered windows always
        limit = local_fits if engine._asr.encoder.self_attention_model == "rel_pos_local_attn" else 6.0 * SAMPLE_RATE
        return any(len(a) > limit for a in audio)

    error = RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
    _oom_when(engine, monkeypatch, too_big, error)
    clips = [_clip("short", 3.0), _clip("middle", 8.0), _clip("long", 30.0), _clip("tiny", 1.0)]
    transcripts = engine.transcribe(clips)
    assert [t.info["mode"] for t in transcripts] == ["full", "local", "buffered", "full"]
    assert transcripts[1].info["fallback"] == "full -> local (out of memory)"
    assert transcripts[2].info["fallback"] == "full -> local -> buffered (out of memory)"
    for clip, transcript in zip(clips, transcripts, strict=True):
        _assert_well_formed(transcript, clip)


def test_oom_on_a_single_buffered_chunk_is_an_engine_error(tiny_nemo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(tiny_nemo, mode="buffered")
    _oom_when(engine, monkeypatch, lambda audio: True, torch.cuda.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(EngineError, match="lower the chunk_s option"):
        engine.transcribe([_clip("a", 2.0)])


def test_errors_that_are_not_oom_are_not_retried(tiny_nemo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(tiny_nemo, mode="full")
    sizes = _oom_when(engine, monkeypatch, lambda audio: True, RuntimeError("cuDNN error: bad param"))
    with pytest.raises(RuntimeError, match="cuDNN"):
        engine.transcribe([_clip("a", 2.0), _clip("b", 2.0)])
    assert sizes == [2]


def test_bad_options_say_what_to_fix() -> None:
    """Refused at the boundary (RunConfig, the CLI), before any model loads."""
    from tasks.engines.options import validate_options

    with pytest.raises(ValueError, match="engine_options: chunk_s: Input should be a valid number"):
        validate_options("nemo", {"chunk_s": "twenty"})
    with pytest.raises(ValueError, match="unknown option 'chunk' for the nemo engine; valid: chunk_batch, chunk_s"):
        validate_options("nemo", {"chunk": "20"})
