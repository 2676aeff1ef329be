"""The NeMo engine's pure logic: mode choice, chunk plans, stitching, batch halving. No NeMo needed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tasks.engines.base import EngineConfig
from tasks.engines.nemo_longform import (
    Chunk,
    LongformPolicy,
    choose_mode,
    mode_limits,
    next_mode,
    plan_chunks,
    run_halving,
    segment_words,
    stitch_words,
)
from tasks.engines.options import NemoOptions, engine_options, validate_options
from tasks.records import Word

RATE = 16_000
GB = 10**9


def test_policy_defaults_match_the_issue() -> None:
    policy = LongformPolicy()
    assert (policy.chunk_s, policy.left_s, policy.right_s) == (20.0, 5.0, 3.0)
    assert (policy.full_max_s, policy.local_max_s, policy.reference_gb) == (1440.0, 10800.0, 80.0)


def test_policy_reads_and_validates_extra_options() -> None:
    extra = validate_options("nemo", {"chunk_s": "10", "left_s": 2, "local_left": "128"})
    policy = engine_options(EngineConfig(engine="nemo", extra=extra), NemoOptions)
    assert (policy.chunk_s, policy.left_s, policy.local_left, policy.right_s) == (10.0, 2.0, 128, 3.0)
    with pytest.raises(ValueError, match="chunk_s: Input should be a valid number"):
        validate_options("nemo", {"chunk_s": "long"})
    with pytest.raises(ValueError, match="chunk_s: must be positive"):
        validate_options("nemo", {"chunk_s": "-1"})
    with pytest.raises(ValueError, match="mode"):
        LongformPolicy(mode="sliding")
    with pytest.raises(ValueError, match="chunk_s"):
        LongformPolicy(chunk_s=0)


@pytest.mark.parametrize(
    ("duration_s", "free_bytes", "expected"),
    [
        (60, None, "full"),
        (1440, None, "full"),
        (1441, None, "local"),
        (10800, None, "local"),
        (10801, None, "buffered"),
        (1440, 80 * GB, "full"),
        (1440, 20 * GB, "local"),  # a quarter of the memory: full attention only to half the length
        (3 * 3600, 20 * GB, "buffered"),  # and local attention only to a quarter
        (600, 1 * GB, "buffered"),
    ],
)
def test_choose_mode_by_length_and_free_memory(duration_s: float, free_bytes: int | None, expected: str) -> None:
    assert choose_mode(duration_s, free_bytes, LongformPolicy()) == expected


def test_limits_scale_with_memory_and_precision() -> None:
    policy = LongformPolicy()
    assert mode_limits(80 * GB, policy) == pytest.approx((1440, 10800))
    assert mode_limits(20 * GB, policy) == pytest.approx((720, 2700))
    assert mode_limits(80 * GB, policy, bytes_per_value=4) == mode_limits(40 * GB, policy)


def test_forced_mode_and_fallback_order() -> None:
    assert choose_mode(5, 10**15, LongformPolicy(mode="buffered")) == "buffered"
    assert [next_mode("full"), next_mode("local"), next_mode("buffered")] == ["local", "buffered", None]


@settings(max_examples=200, deadline=None)
@given(
    n_samples=st.integers(0, 4_000_000),
    chunk_s=st.floats(0.5, 30),
    left_s=st.floats(0, 10),
    right_s=st.floats(0, 10),
)
def test_chunk_plan_owns_every_sample_exactly_once(
    n_samples: int, chunk_s: float, left_s: float, right_s: float
) -> None:
    policy = LongformPolicy(chunk_s=chunk_s, left_s=left_s, right_s=right_s)
    plan = plan_chunks(n_samples, policy, RATE)
    assert plan[0].keep_start == 0 and plan[-1].keep_end == n_samples
    for before, after in itertools.pairwise(plan):
        assert before.keep_end == after.keep_start  # tiles: no gap, no overlap
    for chunk in plan:
        assert 0 <= chunk.start <= chunk.keep_start <= chunk.keep_end <= chunk.end <= n_samples
        assert chunk.keep_end - chunk.keep_start <= round(chunk_s * RATE)
        assert chunk.keep_start - chunk.start == min(chunk.keep_start, round(left_s * RATE))
        assert chunk.end - chunk.keep_end == min(n_samples - chunk.keep_end, round(right_s * RATE))


def test_default_plan_for_one_minute() -> None:
    plan = plan_chunks(60 * RATE, LongformPolicy())
    assert [(c.start / RATE, c.keep_start / RATE, c.keep_end / RATE, c.end / RATE) for c in plan] == [
        (0, 0, 20, 23), (15, 20, 40, 43), (35, 40, 60, 60),
    ]


def _words_in_windows(truth: list[Word], plan: tuple[Chunk, ...], jitters: list[float]) -> list[list[Word]]:
    """What a perfect model would hear in each window, on the window's clock, each window off by its jitter."""
    windows = []
    for index, chunk in enumerate(plan):
        low, high = chunk.start / RATE, chunk.end / RATE
        shift = jitters[index % len(jitters)]
        heard = [w for w in truth if w.start >= low and w.end <= high]
        windows.append([Word(max(0.0, w.start - low + shift), w.end - low + shift, w.word) for w in heard])
    return windows


@settings(max_examples=150, deadline=None)
@given(
    gaps=st.lists(st.floats(0.02, 2.0), min_size=1, max_size=120),
    lengths=st.lists(st.floats(0.1, 1.2), min_size=120, max_size=120),
    jitters=st.lists(st.floats(-0.06, 0.06), min_size=1, max_size=8),
)
# found by CI: a 0.1 s word on a window boundary, placed 0.1 s apart by two windows, was kept twice
@example(gaps=[1.0, 1.5, 1.5, 0.5, 0.5], lengths=[1.0, 1.0, 0.5, 0.5, 0.1015625] + [1.0] * 115,
         jitters=[0.0, -0.05859375, 0.046875])
def test_stitching_keeps_each_word_once_on_the_file_clock(
    gaps: list[float], lengths: list[float], jitters: list[float]
) -> None:
    truth, clock = [], 0.0
    for index, gap in enumerate(gaps):
        start = clock + gap
        truth.append(Word(round(start, 3), round(start + lengths[index], 3), f"w{index}"))
        clock = start + lengths[index]
    n_samples = int((clock + 0.5) * RATE)
    plan = plan_chunks(n_samples, LongformPolicy(chunk_s=4, left_s=2, right_s=1.5), RATE)
    stitched = stitch_words(plan, _words_in_windows(truth, plan, jitters), RATE)
    assert [w.word for w in stitched] == [w.word for w in truth]  # none lost, none doubled
    for before, after in itertools.pairwise(stitched):
        assert before.start <= before.end <= after.start <= after.end
    for got, want in zip(stitched, truth, strict=True):
        assert abs(got.end - want.end) <= 0.07 and got.start <= want.start + 0.07
    assert stitched[-1].end <= n_samples / RATE


BOUNDARY_PLAN = (Chunk(0, 6 * RATE, 0, 4 * RATE), Chunk(2 * RATE, 8 * RATE, 4 * RATE, 8 * RATE))


def test_a_boundary_word_both_windows_place_on_the_far_side_is_not_lost() -> None:
    first = [Word(3.0, 3.9, "hello"), Word(3.92, 4.2, "world")]  # midpoint 4.06: the next chunk's
    second = [Word(1.85, 2.02, "world"), Word(2.1, 2.5, "again")]  # file clock 3.85-4.02: midpoint 3.935
    stitched = stitch_words(BOUNDARY_PLAN, [first, second], RATE)
    assert [w.word for w in stitched] == ["hello", "world", "again"]
    assert stitched[1].start >= stitched[0].end


def test_a_boundary_word_both_windows_keep_is_kept_once() -> None:
    first = [Word(3.0, 3.5, "hello"), Word(3.6, 3.98, "world")]  # midpoint 3.79: kept here
    second = [Word(1.7, 2.1, "world"), Word(2.2, 2.5, "again")]  # file clock 3.7-4.1: midpoint 3.9
    stitched = stitch_words(BOUNDARY_PLAN, [first, second], RATE)
    assert [w.word for w in stitched] == ["hello", "world", "again"]
    assert stitched[1] == Word(3.6, 3.98, "world")


def test_segments_split_at_sentence_ends_pauses_and_length() -> None:
    words = [Word(0, 0.5, "Hi."), Word(0.6, 1.0, "so"), Word(1.1, 1.4, "then"), Word(3.0, 3.2, "later")]
    words += [Word(3.3 + i, 3.8 + i, "x") for i in range(20)]
    segments = [segment for segment, _ in segment_words(words, LongformPolicy(segment_gap_s=1.0, segment_max_s=15))]
    assert [s.text for s in segments[:2]] == ["Hi.", "so then"]
    assert segments[2].text.startswith("later")
    assert all(s.end - s.start <= 15 for s in segments)
    assert " ".join(s.text for s in segments).split() == [w.word for w in words]


def test_run_halving_halves_on_oom_and_marks_what_fails_alone() -> None:
    calls: list[int] = []

    def run(batch: list[int]) -> list[str]:
        calls.append(len(batch))
        if len(batch) > 2 or 7 in batch:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return [f"r{i}" for i in batch]

    results, halved_to = run_halving(list(range(10)), 8, run, lambda e: "out of memory" in str(e))
    assert results == ["r0", "r1", "r2", "r3", "r4", "r5", "r6", None, "r8", "r9"]
    assert halved_to == 1 and calls[:3] == [8, 4, 2]


def test_run_halving_reports_no_halving_when_everything_fits() -> None:
    calls: list[int] = []
    results, halved_to = run_halving([1, 2, 3], 8, lambda batch: calls.append(len(batch)) or batch, lambda e: True)
    assert (results, halved_to, calls) == ([1, 2, 3], None, [3])


def test_run_halving_lets_other_errors_through() -> None:
    def run(batch: list[int]) -> list[int]:
        raise ValueError("bad audio")

    with pytest.raises(ValueError, match="bad audio"):
        run_halving([1, 2], 2, run, lambda e: False)
