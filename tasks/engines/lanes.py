"""Lanes: a CTranslate2 model's replicas on the CPU, side by side, each with its share of the cores.

On a CPU, one Whisper encoder pass on N threads is slower than N passes on one thread each: the
encoder's attention, softmax and norms do not split well across threads, and a wider batch does
not help either (its attention scores leave the cache). Timed on 2 cores, tiny.en, float32, 30 s
windows: one replica on 2 threads, 0.17 s a window one at a time and 0.19 s four at a time; two
replicas on 1 thread each, one window each at once, 0.15 s. The decoder's batch, split in two, gains
too. So a CPU model is loaded as `lanes` replicas (CTranslate2's `inter_threads`; they share the
weights) and the engine keeps both busy: it submits one call per lane from its own Python thread
(CTranslate2 releases the GIL), as CTranslate2's documentation asks for data parallelism on CPU. The
whole engine, one lane against two, on tiny.en and base: `bench/bench_lanes.py`, results in
bench/results/lanes_cpu.md (1.19-1.31x on real prompts, 1.10-1.28x on a 10-min file).

Every row is still computed on its own, so a window's tokens do not depend on which lane or
batch it went through (`tests/test_neighbours.py` compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, TypeVar

from tasks.settings import cpu_cores

CPU_LANES = 2  # replicas on a CPU with at least 2 cores to give them
DEFAULT_THREADS = 4  # CTranslate2's own default intra_threads, shared by the lanes when none is set

T = TypeVar("T")
R = TypeVar("R")


def cpu_lanes(cpu_threads: int, device: str) -> tuple[int, int]:
    """(replicas, threads each) for a model on `device`: on the CPU, `cpu_threads` shared by CPU_LANES
    replicas when there are threads for them; elsewhere one replica, as asked. `cpu_threads` 0 means
    what CTranslate2 takes by itself, the worker's cores up to DEFAULT_THREADS: a big machine's cores
    are left to the decoders and to more workers unless a worker asks for them."""
    if device != "cpu":
        return 1, cpu_threads
    total = cpu_threads or min(cpu_cores(), DEFAULT_THREADS)
    lanes = CPU_LANES if total >= CPU_LANES else 1
    return lanes, total // lanes


@cache
def _threads(count: int) -> ThreadPoolExecutor:
    """One pool of `count` threads per process, shared by every model with that many lanes (they only wait
    on CTranslate2; a lane's call never submits to a pool itself)."""
    return ThreadPoolExecutor(count, thread_name_prefix="ct2-lane")


class Lanes:
    """Calls spread over a model's replicas: one Python thread per lane, results in the order given."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._pool = _threads(self.count) if self.count > 1 else None

    @classmethod
    def of(cls, whisper: Any) -> Lanes:
        """The lanes of a loaded faster-whisper model (its CTranslate2 replicas; one on a GPU)."""
        model = getattr(whisper, "model", None)
        on_cpu = getattr(model, "device", "") == "cpu"
        return cls(int(getattr(model, "num_workers", 1)) if on_cpu else 1)

    def map(self, call: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._pool is None or len(items) < 2:
            return [call(item) for item in items]
        return list(self._pool.map(call, items))

    def split(self, rows: int) -> list[list[int]]:
        """`rows` row indices dealt to the lanes in turn (rows sorted by length stay balanced); only
        lanes that get a row."""
        return [list(range(lane, rows, self.count)) for lane in range(min(self.count, rows))]
