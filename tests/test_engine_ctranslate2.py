"""The embedded default on real weights (bundled tiny.en) and real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.audio import decode_audio, probe_duration
from tasks.engines import EngineConfig, EngineError, load_transcriber, resolve_model
from tasks.records import Clip
from tasks.wer import word_error_rate
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


def test_packing_costs_no_accuracy_against_plain_fp32_greedy(spoken: tuple[list[Clip], list[str]]) -> None:
    """The default must be no worse than faster-whisper's own float32 greedy decoding, file by file."""
    from faster_whisper import WhisperModel

    clips, refs = spoken
    plain = WhisperModel(resolve_model(EngineConfig()), device="cpu", compute_type="float32")
    baseline = [" ".join(s.text for s in plain.transcribe(c.samples, beam_size=1, language="en")[0]) for c in clips]
    packed = load_transcriber(EngineConfig()).transcribe(clips)
    assert word_error_rate(refs, [t.text for t in packed]) <= word_error_rate(refs, baseline)


def test_packed_clips_keep_their_own_words(clips: list[Clip], references: dict[str, str]) -> None:
    """No cross-clip leakage: each clip's text is closest to its own reference."""
    transcripts = load_transcriber(EngineConfig()).transcribe(clips)
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
