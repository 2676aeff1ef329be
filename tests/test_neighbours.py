"""A file's text does not depend on the files it is transcribed with (the default CTranslate2 engine).

Real speech (the committed example clips), espeak-ng sentences in four voices and a ~50 s file
made of them (so a long file's windows are batched with other files' windows too): each file
transcribed alone, then in three different mixes and batch sizes. Tokens must be identical,
timestamps included, and so must the engine's transcripts. Packing (opt-in) fails this: its
clips share windows, and a clip's text changes with its neighbours (last test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.engines import EngineConfig, load_transcriber
from tasks.engines.ct2_batch import BatchDecoder, plan_windows
from tasks.media.audio import decode_audio, probe_duration
from tasks.records import SAMPLE_RATE, Clip, Transcript
from tests.media_factory import spoken_library

pytestmark = pytest.mark.slow

MIXES = ((0.0, 8), (1.0, 3), (2.0, 5))  # (shuffle seed, batch size): three different neighbourhoods


@pytest.fixture(scope="module")
def clips(example_library: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    root = tmp_path_factory.mktemp("espeak")
    spoken = [Clip(s, decode_audio(root / s, probe_duration(root / s))) for s in spoken_library(root, 4)]
    examples = [Clip(p.name, decode_audio(p, probe_duration(p))) for p in sorted(example_library.rglob("*.*"))]
    gap = np.zeros(SAMPLE_RATE, np.float32)
    joined = np.concatenate([part for c in [*examples, *spoken] for part in (c.samples, gap)])
    return [*examples, *spoken, Clip("long", joined)]


def _mixed(clips: list[Clip], seed: float) -> list[int]:
    """Every clip once, in a shuffled order, with some clips twice (a duplicate is a neighbour too)."""
    rng = np.random.default_rng(int(seed))
    order = list(rng.permutation(len(clips)))
    return [int(i) for i in order + order[: len(order) // 3]]


@pytest.mark.parametrize("fit_context", [False, True], ids=["full", "fit"])
def test_tokens_of_every_window_are_the_same_alone_and_in_any_batch(clips: list[Clip], fit_context: bool) -> None:
    whisper = load_transcriber(EngineConfig())._whisper  # type: ignore[attr-defined]
    decoder = BatchDecoder(whisper, "en", 16, fit_context=fit_context)
    windows = plan_windows(clips)
    assert sum(w.clip == len(clips) - 1 for w in windows) > 1  # the long file has several
    alone = [decoder.tokens([w])[0] for w in windows]
    assert all(alone)
    for seed, batch_size in MIXES:
        order = _mixed(list(range(len(windows))), seed)  # type: ignore[arg-type]
        mixed = BatchDecoder(whisper, "en", batch_size, fit_context=fit_context).tokens([windows[i] for i in order])
        assert [alone[i] for i in order] == mixed, (seed, batch_size)


def test_tokens_are_the_same_on_two_cpu_lanes_as_on_one_replica(clips: list[Clip]) -> None:
    """Lanes (tasks/engines/lanes.py) change where a window is computed, not what: one replica on two threads
    against two replicas of one thread each, encoding one window a call and splitting the decoder's batch."""
    from faster_whisper import WhisperModel

    from tasks.engines import resolve_model
    from tasks.engines.lanes import Lanes

    model = resolve_model(EngineConfig())
    one = WhisperModel(model, device="cpu", compute_type="float32", cpu_threads=2, num_workers=1)
    two = WhisperModel(model, device="cpu", compute_type="float32", cpu_threads=1, num_workers=2)
    windows = plan_windows(clips)
    alone = BatchDecoder(one, "en", 16).tokens(windows)
    assert all(alone) and Lanes.of(two).count == 2 and Lanes.of(one).count == 1
    order = _mixed(list(range(len(windows))), 3.0)  # type: ignore[arg-type]
    laned = BatchDecoder(two, "en", 16, encode_batch=1, lanes=Lanes.of(two)).tokens([windows[i] for i in order])
    assert [alone[i] for i in order] == laned


def _texts(transcripts: list[Transcript]) -> list[tuple[str, tuple[tuple[float, float, str], ...]]]:
    return [(t.text, tuple((s.start, s.end, s.text) for s in t.segments)) for t in transcripts]


def _alone_and_mixed(config: EngineConfig, clips: list[Clip]) -> tuple[list[Transcript], list[list[Transcript]]]:
    engine = load_transcriber(config)
    alone = [engine.transcribe([c])[0] for c in clips]
    mixes = []
    for seed, _ in MIXES:
        order = _mixed(clips, seed)
        got = engine.transcribe([clips[i] for i in order])
        mixes.append([got[order.index(i)] for i in range(len(clips))])
    return alone, mixes


def test_each_file_gets_the_same_transcript_alone_and_in_three_mixes(clips: list[Clip]) -> None:
    alone, mixes = _alone_and_mixed(EngineConfig(), clips)
    assert all(t.text for t in alone)
    for mixed in mixes:
        assert _texts(mixed) == _texts(alone)


def test_packing_makes_a_clip_depend_on_its_neighbours(clips: list[Clip]) -> None:
    """Why packing is opt-in: the same clip, other neighbours in its window, other text."""
    short = clips[:-1]
    alone, mixes = _alone_and_mixed(EngineConfig(pack_short_clips=True), short)
    changed = [c.key for n, c in enumerate(short) if any(m[n].text != alone[n].text for m in mixes)]
    assert changed


def test_transformers_engine_is_neighbour_independent_too(clips: list[Clip]) -> None:
    """Its default batches each file's own windows as well (packing needs pack_short_clips and pack=on)."""
    config = EngineConfig(engine="transformers")
    assert not config.pack_short_clips
    short = clips[:6]
    alone = [load_transcriber(config).transcribe([c])[0] for c in short]
    for seed, _ in MIXES[:2]:
        order = _mixed(short, seed)
        got = load_transcriber(config).transcribe([short[i] for i in order])
        assert [got[order.index(i)].text for i in range(len(short))] == [t.text for t in alone]
