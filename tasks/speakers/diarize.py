"""Who spoke when: GE2E speaker embeddings on the speech VAD found, clustered into speakers.

Why resemblyzer: its wheel carries its weights (GE2E, 17 MB), so diarization runs offline
with nothing fetched from a hub, on any engine's output. Every speech span is cut into
sliding windows (`WINDOW_S`, step `STEP_S`); their mel frames are embedded in batches (on
the GPU when there is one) and clustered with spectralcluster, which picks the number of
speakers between `min_speakers` and `max_speakers` (its eigen-gap), and falls back to one
speaker when all windows are alike. A window's speaker holds from the middle of its step
before to the middle of its step after; a run of one window between two windows of the same
other speaker is smoothed away (a flip shorter than a step is noise, not a turn).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from tasks.records import SAMPLE_RATE

log = logging.getLogger(__name__)

WINDOW_S = 1.5
STEP_S = 0.75
MIN_SPAN_S = 0.4  # shorter speech spans get no embedding of their own: they take their neighbour's speaker
FRAME_S = 0.01  # resemblyzer's mel hop
EMBED_BATCH = 256  # windows per forward pass
DEFAULT_MAX_SPEAKERS = 8
CLUSTER_AT_MOST = 4000  # windows clustered together; the rest (long files) join the nearest centroid


@dataclass(frozen=True, slots=True)
class Turn:
    start: float
    end: float
    speaker: int  # 0, 1, … in order of first appearance


@dataclass(frozen=True, slots=True)
class Windows:
    """Embedded windows of one file, in time order."""

    starts: npt.NDArray[np.float64]
    ends: npt.NDArray[np.float64]
    embeddings: npt.NDArray[np.float32]  # (n, 256), L2-normalised


def require_resemblyzer() -> Any:
    try:
        import resemblyzer
    except ImportError as error:
        raise RuntimeError("diarize needs resemblyzer and spectralcluster: pip install 'transcribe-all[diarize]'"
                           ) from error
    return resemblyzer


@lru_cache(maxsize=2)
def load_encoder(device: str = "auto") -> Any:
    """resemblyzer's VoiceEncoder, once per process, on CUDA when asked for (auto: when there is one)."""
    resemblyzer = require_resemblyzer()
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return resemblyzer.VoiceEncoder(device=device, verbose=False)


def embed_speech(encoder: Any, samples: npt.NDArray[np.float32], spans: Sequence[tuple[float, float]],
                 offset_s: float = 0.0) -> Windows:
    """Sliding windows over each speech span, embedded in batches. Times are `offset_s` + the clip's clock."""
    from resemblyzer.audio import wav_to_mel_spectrogram

    frames_per_window, step = round(WINDOW_S / FRAME_S), round(STEP_S / FRAME_S)
    mels: list[npt.NDArray[np.float32]] = []
    starts: list[float] = []
    for start, end in spans:
        if end - start < MIN_SPAN_S:
            continue
        mel = wav_to_mel_spectrogram(samples[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)])
        last = max(len(mel) - frames_per_window, 0)  # a span shorter than a window is one window, as long as it
        for first in [*range(0, last, step), last]:
            mels.append(mel[first: first + frames_per_window])
            starts.append(start + first * FRAME_S)
    begin = np.asarray(starts, dtype=np.float64) + offset_s
    ends = np.minimum(begin + WINDOW_S, _span_ends(spans, starts) + offset_s)
    return Windows(begin, ends, _forward(encoder, mels))


def _span_ends(spans: Sequence[tuple[float, float]], starts: Sequence[float]) -> npt.NDArray[np.float64]:
    """The end of the span each window start lies in."""
    span_starts = np.asarray([s for s, _ in spans])
    index = np.searchsorted(span_starts, np.asarray(starts), side="right") - 1
    return np.asarray([e for _, e in spans], dtype=np.float64)[index] if len(spans) else np.zeros(0)


def _forward(encoder: Any, mels: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    import torch

    if not mels:
        return np.zeros((0, 256), dtype=np.float32)
    out = []
    threads = torch.get_num_threads()
    # One CPU thread: the LSTM steps through time one frame at a time, and its OpenMP threads spin. On
    # a loaded 2-core machine 150 windows took 1.0 s on one thread and 16-18 s on two.
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for length in sorted({len(m) for m in mels}):  # full windows in batches; short spans by length
                index = [i for i, m in enumerate(mels) if len(m) == length]
                for first in range(0, len(index), EMBED_BATCH):
                    chunk = index[first: first + EMBED_BATCH]
                    batch = torch.from_numpy(np.stack([mels[i] for i in chunk])).to(encoder.device)
                    out += list(zip(chunk, encoder(batch).cpu().numpy(), strict=True))
    finally:
        torch.set_num_threads(threads)
    return np.stack([vector for _, vector in sorted(out, key=lambda pair: pair[0])]).astype(np.float32)


def join_windows(parts: Sequence[Windows]) -> Windows:
    """The windows of a long file's pieces as one file's."""
    if not parts:
        return Windows(np.zeros(0), np.zeros(0), np.zeros((0, 256), dtype=np.float32))
    return Windows(np.concatenate([p.starts for p in parts]), np.concatenate([p.ends for p in parts]),
                   np.concatenate([p.embeddings for p in parts]))


def cluster(embeddings: npt.NDArray[np.float32], min_speakers: int = 1,
            max_speakers: int = DEFAULT_MAX_SPEAKERS) -> npt.NDArray[np.int64]:
    """A speaker index per window: spectral clustering into 2..max clusters (its eigen-gap picks the
    count), then clusters whose centroids are as alike as one speaker's are merged, down to `min_speakers`."""
    count = len(embeddings)
    if count < 2 * max(min_speakers, 2) or max_speakers == 1:  # too few windows to tell speakers apart
        return np.zeros(count, dtype=np.int64)
    chosen = embeddings
    if count > CLUSTER_AT_MOST:  # every n-th window: the affinity matrix stays a few MB
        chosen = embeddings[np.linspace(0, count - 1, CLUSTER_AT_MOST).astype(int)]
    clusterer = _spectral(max(min_speakers, 2), max(max_speakers, 2))
    labels = _merge_alike(chosen, np.asarray(clusterer.predict(chosen.astype(np.float64)), np.int64), min_speakers)
    if count > CLUSTER_AT_MOST:
        labels = np.argmax(embeddings @ _centroids(chosen, labels).T, axis=1)
    return np.asarray(labels, dtype=np.int64)


# Centroid cosine similarity above which two clusters are one speaker. Measured on real recorded voices
# (tests/conversations.py): one voice forced into two clusters 0.94-0.95; two different voices 0.50-0.81.
SAME_SPEAKER = 0.88


def _merge_alike(embeddings: npt.NDArray[np.float32], labels: npt.NDArray[np.int64],
                 min_speakers: int) -> npt.NDArray[np.int64]:
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() + 1 > max(min_speakers, 1):
        centroids = _centroids(embeddings, labels)
        similarity = centroids @ centroids.T - 2 * np.eye(len(centroids))
        a, b = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        if similarity[a, b] < SAME_SPEAKER:
            break
        labels = np.unique(np.where(labels == max(a, b), min(a, b), labels), return_inverse=True)[1]
    return labels


def _centroids(embeddings: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    centroids = np.stack([embeddings[labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)])
    normalised: npt.NDArray[np.float32] = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    return normalised


def _spectral(min_speakers: int, max_speakers: int) -> Any:
    from spectralcluster import configs

    return configs.SpectralClusterer(
        min_clusters=min_speakers, max_clusters=max_speakers, refinement_options=configs.icassp2018_refinement_options,
        custom_dist="cosine")


def to_turns(windows: Windows, labels: npt.NDArray[np.int64]) -> tuple[Turn, ...]:
    """Contiguous turns: overlapping windows split their shared time at the middle; speakers numbered in
    order of first appearance; one-window flips between two windows of the same speaker smoothed away."""
    labels = _smoothed(labels)
    order = {int(k): n for n, k in enumerate(dict.fromkeys(int(x) for x in labels))}
    centres = (windows.starts + windows.ends) / 2
    turns: list[Turn] = []
    for i, (start, end) in enumerate(zip(windows.starts, windows.ends, strict=True)):
        if i and windows.starts[i] < windows.ends[i - 1]:
            start = (centres[i - 1] + centres[i]) / 2
        if i + 1 < len(centres) and windows.starts[i + 1] < end:
            end = (centres[i] + centres[i + 1]) / 2
        speaker = order[int(labels[i])]
        if turns and turns[-1].speaker == speaker and start - turns[-1].end < STEP_S:
            turns[-1] = Turn(turns[-1].start, float(end), speaker)
        else:
            turns.append(Turn(float(start), float(end), speaker))
    return tuple(Turn(round(t.start, 3), round(t.end, 3), t.speaker) for t in turns if t.end > t.start)


def _smoothed(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out = labels.copy()
    for i in range(1, len(out) - 1):
        if out[i - 1] == out[i + 1] != out[i]:
            out[i] = out[i - 1]
    return out


def diarize(encoder: Any, samples: npt.NDArray[np.float32], spans: Sequence[tuple[float, float]],
            min_speakers: int = 1, max_speakers: int = DEFAULT_MAX_SPEAKERS) -> tuple[Turn, ...]:
    """Turns of one clip's speech."""
    windows = embed_speech(encoder, samples, spans)
    return to_turns(windows, cluster(windows.embeddings, min_speakers, max_speakers))
