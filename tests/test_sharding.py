from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.planning.sharding import shard_items
from tasks.records import MediaItem


def items_of(durations: list[float]) -> list[MediaItem]:
    return [MediaItem(f"f{i:05d}.wav", f"/x/f{i}", 1, 0, f"{i:064x}", d) for i, d in enumerate(durations)]


durations_st = st.lists(st.floats(min_value=0.1, max_value=36_000, allow_nan=False), max_size=300)


@given(durations_st, st.integers(min_value=1, max_value=64))
@settings(max_examples=150, deadline=None)
def test_every_file_in_exactly_one_shard(durations: list[float], n: int) -> None:
    items = items_of(durations)
    shards = shard_items(items, n)
    placed = [item.source for shard in shards for item in shard.items]
    assert sorted(placed) == sorted(i.source for i in items)
    assert len(shards) <= n
    assert all(shard.items for shard in shards)
    assert [s.shard_id for s in shards] == list(range(len(shards)))


@given(durations_st, st.integers(min_value=1, max_value=16))
@settings(max_examples=50, deadline=None)
def test_deterministic_whatever_the_input_order(durations: list[float], n: int) -> None:
    items = items_of(durations)
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    assert shard_items(items, n) == shard_items(shuffled, n)


@pytest.mark.parametrize("seed", range(5))
def test_balance_within_five_percent_on_a_thousand_files(seed: int) -> None:
    rng = random.Random(seed)
    # realistic archive: minutes to hours, long-tailed
    durations = [min(36_000.0, rng.lognormvariate(7.0, 1.2)) for _ in range(1000)]
    shards = shard_items(items_of(durations), 8)
    ideal = sum(durations) / 8
    assert max(s.audio_s for s in shards) / ideal <= 1.05


def test_target_length_sets_the_shard_count() -> None:
    shards = shard_items(items_of([600.0] * 30), target_s=3600)
    assert len(shards) == 5
    assert {round(s.audio_s) for s in shards} == {3600}


@pytest.mark.parametrize("kwargs", [{"shards": 0}, {"target_s": -1.0}, {"shards": 2, "target_s": 60.0}, {}])
def test_bad_parameters_name_themselves(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"^(shards|target_s):"):
        shard_items(items_of([1.0]), **kwargs)


def test_fewer_files_than_shards_gives_one_shard_per_file() -> None:
    assert len(shard_items(items_of([5.0, 6.0]), 8)) == 2
    assert shard_items([], 4) == []
