"""Long audio on Parakeet: pick an attention mode, plan buffered chunks, stitch them back.

Plain functions with no NeMo or torch, so they are tested on their own.

Why three modes: FastConformer's full attention costs memory quadratic in length
(~24 min fits in 80 GB), local attention (`rel_pos_local_attn`, ±256 frames) is
linear (~3 h in 80 GB), and buffered streaming runs fixed windows, so its memory
does not grow with the file at all. The reference limits scale with the memory
actually free: by its square root for full attention, linearly for local.

Why stitching by word midpoints: each chunk owns the interval [keep_start,
keep_end); the owned intervals tile the file. A chunk is decoded with extra left
and right context so words at its edges are heard whole, then only the words whose
midpoint lies in the owned interval are kept. Two windows can disagree by a frame
or two about a boundary word: if the later window places it slightly before the
boundary it is still taken (within `BOUNDARY_TOLERANCE_S`) unless the earlier window
already covered that time, and a word both windows kept (same text, overlapping in
time) is kept once. So no word is lost or doubled at a boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tasks.engines.words import caption_groups, midpoint, owns, segment_of
from tasks.records import SAMPLE_RATE, Segment, Word

MODES = ("full", "local", "buffered")
_FALLBACK = {"full": "local", "local": "buffered"}
BOUNDARY_TOLERANCE_S = 0.3  # how far before its owned interval a chunk may still contribute a word
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class LongformPolicy:
    """How the engine treats long audio; every field is an engine option of the same name (tasks/engines/options.py)."""

    mode: str = "auto"  # auto | full | local | buffered: force one mode (OOM fallback still applies)
    full_max_s: float = 1440.0  # full attention up to 24 min at `reference_gb` of free memory
    local_max_s: float = 10800.0  # local attention up to 3 h at `reference_gb`
    reference_gb: float = 80.0  # the free memory the two limits above were measured with (bf16)
    local_left: int = 256  # local attention context, encoder frames (80 ms each)
    local_right: int = 256
    chunk_s: float = 20.0  # buffered streaming: owned audio per chunk
    left_s: float = 5.0  # context decoded before each chunk and thrown away
    right_s: float = 3.0  # context decoded after each chunk and thrown away
    chunk_batch: int = 8  # buffered windows per forward pass (halved on OOM)
    segment_gap_s: float = 1.0  # a pause this long starts a new segment
    segment_max_s: float = 15.0  # a segment this long ends at the next word

    def __post_init__(self) -> None:
        if self.mode not in ("auto", *MODES):
            raise ValueError(f"nemo option mode: choose auto, full, local or buffered, got {self.mode!r}")
        for name in ("full_max_s", "local_max_s", "reference_gb", "chunk_s", "segment_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"nemo option {name}: must be positive, got {getattr(self, name)}")
        for name in ("left_s", "right_s", "segment_gap_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"nemo option {name}: must be zero or positive, got {getattr(self, name)}")
        if min(self.local_left, self.local_right, self.chunk_batch) < 1:
            raise ValueError("nemo options local_left, local_right and chunk_batch must be at least 1")


def choose_mode(duration_s: float, free_bytes: int | None, policy: LongformPolicy, bytes_per_value: int = 2) -> str:
    """The cheapest mode that should fit: full, else local, else buffered.

    `free_bytes` None (unknown) uses the reference limits as they are. float32 needs
    twice the memory of the bf16 reference, so it halves the effective free memory.
    """
    if policy.mode != "auto":
        return policy.mode
    full_s, local_s = mode_limits(free_bytes, policy, bytes_per_value)
    if duration_s <= full_s:
        return "full"
    if duration_s <= local_s:
        return "local"
    return "buffered"


def mode_limits(free_bytes: int | None, policy: LongformPolicy, bytes_per_value: int = 2) -> tuple[float, float]:
    """(longest full-attention file, longest local-attention file) in seconds for this much memory."""
    if free_bytes is None:
        return policy.full_max_s, policy.local_max_s
    scale = free_bytes / 1e9 * (2 / bytes_per_value) / policy.reference_gb
    return policy.full_max_s * math.sqrt(scale), policy.local_max_s * scale


def next_mode(mode: str) -> str | None:
    """The documented fallback after an out-of-memory error: full → local → buffered → none."""
    return _FALLBACK.get(mode)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One buffered window, in samples on the file's clock."""

    start: int  # window start, left context included
    end: int  # window end, right context included
    keep_start: int  # the part of the file this chunk owns
    keep_end: int


def plan_chunks(n_samples: int, policy: LongformPolicy, rate: int = SAMPLE_RATE) -> tuple[Chunk, ...]:
    """Owned intervals of `chunk_s` that tile [0, n_samples), each widened by its context."""
    step = max(1, round(policy.chunk_s * rate))
    left, right = round(policy.left_s * rate), round(policy.right_s * rate)
    chunks = []
    for keep_start in range(0, max(n_samples, 1), step):
        keep_end = min(keep_start + step, n_samples)
        chunks.append(Chunk(max(0, keep_start - left), min(n_samples, keep_end + right), keep_start, keep_end))
    return tuple(chunks)


def stitch_words(
    chunks: Sequence[Chunk], chunk_words: Sequence[Sequence[Word]], rate: int = SAMPLE_RATE
) -> tuple[Word, ...]:
    """Words from each window (on the window's clock) → one monotonic word list on the file's clock."""
    kept: list[Word] = []
    last_from = -1  # the window the last kept word came from
    for index, (chunk, words) in enumerate(zip(chunks, chunk_words, strict=True)):
        offset = chunk.start / rate
        # a window may place a boundary word slightly earlier than its neighbour did: look back a little
        low = chunk.keep_start / rate - (BOUNDARY_TOLERANCE_S if index else 0.0)
        last = index == len(chunks) - 1
        high = math.inf if last else chunk.keep_end / rate  # frame rounding can place a last word past the end
        for word in words:
            start, end = (min(t + offset, chunk.end / rate) for t in (word.start, word.end))
            on_file_clock = Word(start, end, word.word, word.probability)
            if not owns(low, high, on_file_clock):
                continue
            # two windows can place one short word apart by more than its length (each is off by tens of
            # ms): across a window boundary, the same word starting within the look-back is that word again
            slack = BOUNDARY_TOLERANCE_S if last_from != index else 0.0
            if kept and (midpoint(on_file_clock) < kept[-1].end or _is_repeat(kept[-1], word.word, start, slack)):
                continue  # the previous chunk already covered this time
            start = min(max(start, kept[-1].end if kept else 0.0), end)
            kept.append(Word(round(start, 3), round(end, 3), word.word, word.probability))
            last_from = index
    return tuple(kept)


def _is_repeat(previous: Word, text: str, start: float, slack: float = 0.0) -> bool:
    return previous.word.strip().lower() == text.strip().lower() and start < previous.end + slack


def segment_words(words: Sequence[Word], policy: LongformPolicy) -> list[tuple[Segment, list[Word]]]:
    """Caption cues with their words (tasks/engines/words.py), the same in every mode; NeMo's words carry no spaces."""
    groups = caption_groups(words, max_s=policy.segment_max_s, pause_s=policy.segment_gap_s)
    return [(segment_of(group, spaced=False), group) for group in groups]


def run_halving(
    items: Sequence[T],
    batch_size: int,
    run: Callable[[Sequence[T]], Sequence[R]],
    is_oom: Callable[[BaseException], bool],
    on_oom: Callable[[], None] = lambda: None,
) -> tuple[list[R | None], int | None]:
    """Run `items` in batches; on out-of-memory halve the batch and retry from the failed one.

    Returns one result per item (None where a batch of one still ran out of memory) and
    the batch size it was halved to (None if it never was). Other errors propagate.
    """
    results: list[R | None] = [None] * len(items)
    size, halved_to, position = max(1, min(batch_size, len(items))), None, 0
    while position < len(items):
        batch = items[position:position + size]
        try:
            outputs = run(batch)
        except Exception as error:
            if not is_oom(error):
                raise
            on_oom()
            if size == 1:
                position += 1  # this item fails in this mode; the caller falls back
            size = halved_to = max(1, size // 2)
            continue
        results[position:position + len(batch)] = list(outputs)
        position += len(batch)
    return results, halved_to
