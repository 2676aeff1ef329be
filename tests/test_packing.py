"""Packing short clips into one window, and splitting words back without leakage."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.engines.packing import build_pack, plan_packs, split_pack
from tasks.records import Segment, Word


@given(st.lists(st.floats(min_value=0.2, max_value=20.0), min_size=1, max_size=60))
@settings(max_examples=100, deadline=None)
def test_packs_fit_the_window_and_use_every_clip_once(durations: list[float]) -> None:
    packs = plan_packs(durations, window_s=28.0, gap_s=1.0)
    assert sorted(i for p in packs for i in p) == list(range(len(durations)))
    for pack in packs:
        assert sum(durations[i] for i in pack) + 1.0 * (len(pack) - 1) <= 28.0 + 1e-9


def test_words_return_to_the_clip_that_holds_them() -> None:
    clips = [np.ones(16_000 * 3, np.float32), np.ones(16_000 * 2, np.float32), np.ones(16_000 * 4, np.float32)]
    pack = build_pack(clips, [2, 0, 1], gap_s=1.0)  # clip 2 at 0 s, clip 0 at 5 s, clip 1 at 9 s
    assert pack.offsets == (0.0, 5.0, 9.0) and len(pack.samples) == 16_000 * 11
    words = [Word(0.1, 0.5, " alpha"), Word(3.6, 3.9, " beta"), Word(4.7, 5.4, " gamma"),
             Word(7.0, 7.9, " delta"), Word(9.2, 9.8, " epsilon"), Word(10.5, 11.3, " zeta")]
    # the model's segments respect the clip boundaries, so the split is trusted
    segments = [(Segment(0.1, 3.9, "a b"), words[:2]), (Segment(4.7, 7.9, "g d"), words[2:4]),
                (Segment(9.2, 11.3, "e z"), words[4:])]
    split = split_pack(pack, segments, gap_s=1.0, language="en")
    assert split is not None
    first, second, third = split
    assert first.text == "alpha beta"  # clip 2 (0–4 s); beta sits in its trailing half-gap
    assert second.text == "gamma delta"  # clip 0 (5–8 s)
    assert third.text == "epsilon zeta"  # clip 1 (9–11 s)
    assert [w.start for w in second.words] == [0.0, 2.0]  # on the clip's own clock, clamped at 0
    assert all(0.0 <= w.start <= w.end <= 2.0 for w in third.words)
    assert third.segments == (Segment(0.2, 2.0, "epsilon zeta"),)


def test_a_segment_across_a_boundary_or_drifting_words_make_the_split_untrusted() -> None:
    clips = [np.ones(16_000 * 3, np.float32), np.ones(16_000 * 3, np.float32)]
    pack = build_pack(clips, [0, 1], gap_s=1.0)  # clip 0: 0–3 s, clip 1: 4–7 s
    clean = [(Segment(0.2, 2.8, "a b"), [Word(0.2, 1.0, " a"), Word(1.5, 2.8, " b")]),
             (Segment(4.1, 6.5, "c"), [Word(4.1, 6.5, " c")])]
    split = split_pack(pack, clean, gap_s=1.0, language="en")
    assert split is not None and [t.text if t else None for t in split] == ["a b", "c"]
    across = [(Segment(0.2, 6.5, "a b c"), [Word(0.2, 1.0, " a"), Word(5.0, 6.5, " c")])]
    assert split_pack(pack, across, gap_s=1.0, language="en") == [None, None]  # both decoded alone
    drifting = [(Segment(0.2, 2.8, "a b"), [Word(0.2, 1.0, " a"), Word(4.5, 5.0, " b")])]
    assert split_pack(pack, drifting, gap_s=1.0, language="en") == [None, None]
    squeezed = [(Segment(4.1, 4.6, "a whole sentence squeezed into half a second"), [Word(4.1, 4.6, " a")])]
    # drifted timestamps (too much text for the time): nothing in the window is trusted
    assert split_pack(pack, squeezed, gap_s=1.0, language="en") is None


def test_only_the_clips_a_bad_segment_touches_are_decoded_alone() -> None:
    clips = [np.ones(16_000 * 3, np.float32) for _ in range(3)]
    pack = build_pack(clips, [0, 1, 2], gap_s=1.0)  # 0–3 s, 4–7 s, 8–11 s
    segments = [(Segment(0.2, 6.5, "a b c"), [Word(0.2, 1.0, " a"), Word(1.5, 2.0, " b"), Word(5.0, 6.5, " c")]),
                (Segment(8.2, 10.5, "d e"), [Word(8.2, 9.0, " d"), Word(9.5, 10.5, " e")])]
    split = split_pack(pack, segments, gap_s=1.0, language="en")
    assert split is not None and split[:2] == [None, None]  # run together: no words may leak between them
    assert split[2] is not None and split[2].text == "d e" and split[2].words[0].start == 0.2
