"""Decoding ahead of the model in worker processes: order, bounds, bad files, crashed decoders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tasks.media.audio import decode_audio, probe_duration
from tasks.media.local import LocalSource
from tasks.media.prefetch import WORKER_CRASHED, DecodeAhead, decode_workers
from tasks.records import Clip, Failure, MediaItem
from tests.media_factory import build_bad


def _items(root: Path, names: list[str]) -> list[MediaItem]:
    items = []
    for name in names:
        path = root / name
        try:
            duration: float | None = probe_duration(path)
        except ValueError:
            duration = None
        items.append(MediaItem(name, str(path), path.stat().st_size, 0, duration_s=duration))
    return items


def test_clips_come_back_in_order_equal_to_a_direct_decode(example_library: Path) -> None:
    names = sorted(p.relative_to(example_library).as_posix() for p in example_library.rglob("*") if p.is_file())
    items = _items(example_library, names)
    assert len(items) >= 6
    with DecodeAhead(LocalSource(example_library), items, workers=2) as ahead:
        first, rest = ahead.take(items[:2]), ahead.take(items[2:])
    decoded = [*first.decoded, *rest.decoded]
    assert [c.key for c in decoded if isinstance(c, Clip)] == names
    for item, clip in zip(items, decoded, strict=True):
        assert isinstance(clip, Clip)
        np.testing.assert_array_equal(clip.samples, decode_audio(item.locator, item.duration_s))


def test_a_file_that_cannot_be_decoded_is_its_reason(tmp_path: Path) -> None:
    bad = build_bad(tmp_path)
    truncated = next(name for name, why in bad.items() if "truncat" in why)
    path = tmp_path / truncated
    item = MediaItem(truncated, str(path), path.stat().st_size, 0, duration_s=1000.0)  # the header's claim
    with DecodeAhead(LocalSource(tmp_path), [item], workers=1) as ahead:
        (reason,) = ahead.take([item]).decoded
    assert isinstance(reason, Failure) and str(reason).startswith(("truncated", "decode failed"))


def _logging_decoder(item: MediaItem) -> Clip | str:
    """Notes each decode in the file named by the locator; `crash*` files kill the worker."""
    with open(item.locator, "a") as log:
        log.write(item.source + "\n")
    if item.source.startswith("crash"):
        os._exit(1)
    return Clip(item.source, np.zeros(1600, np.float32))


def _decoded_so_far(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_prefetch_runs_ahead_but_stays_within_its_bound(tmp_path: Path) -> None:
    log = tmp_path / "decoded.txt"
    items = [MediaItem(f"f{n}", str(log), 1, 0, duration_s=1.0) for n in range(10)]
    with DecodeAhead(LocalSource(tmp_path), items, workers=2, ahead_files=3, decoder=_logging_decoder) as ahead:
        deadline = time.monotonic() + 30
        while len(_decoded_so_far(log)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert sorted(_decoded_so_far(log)) == ["f0", "f1", "f2"]  # decoded before anyone asked, and no more
        ahead.take(items[:2])
        while len(_decoded_so_far(log)) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert sorted(_decoded_so_far(log)) == [f"f{n}" for n in range(5)]
        rest = ahead.take(items[2:])
    assert [c.key for c in rest.decoded if isinstance(c, Clip)] == [f"f{n}" for n in range(2, 10)]


def test_the_audio_bound_holds_back_long_files_but_never_stalls(tmp_path: Path) -> None:
    log = tmp_path / "decoded.txt"
    items = [MediaItem(f"f{n}", str(log), 1, 0, duration_s=900.0) for n in range(4)]
    with DecodeAhead(LocalSource(tmp_path), items, workers=2, ahead_s=1000.0, decoder=_logging_decoder) as ahead:
        time.sleep(1.0)
        assert len(_decoded_so_far(log)) <= 2  # 900 s queued, a second file tips it over 1000 s
        taken = [ahead.take([item]).decoded[0] for item in items]
    assert [c.key for c in taken if isinstance(c, Clip)] == ["f0", "f1", "f2", "f3"]


def test_a_file_that_kills_its_decoder_fails_alone(tmp_path: Path) -> None:
    log = tmp_path / "decoded.txt"
    names = ["a", "b", "crash", "c", "d", "e"]
    items = [MediaItem(name, str(log), 1, 0, duration_s=1.0) for name in names]
    with DecodeAhead(LocalSource(tmp_path), items, workers=2, decoder=_logging_decoder) as ahead:
        decoded = [*ahead.take(items[:3]).decoded, *ahead.take(items[3:]).decoded]
    assert decoded[2] == WORKER_CRASHED
    assert [d.key for d in decoded if isinstance(d, Clip)] == ["a", "b", "c", "d", "e"]


def test_batches_must_be_taken_in_the_order_given(tmp_path: Path) -> None:
    items = [MediaItem(f"f{n}", str(tmp_path / "log"), 1, 0, duration_s=1.0) for n in range(3)]
    with (DecodeAhead(LocalSource(tmp_path), items, workers=1, decoder=_logging_decoder) as ahead,
          pytest.raises(ValueError, match="take: expected f0, got f1")):
        ahead.take(items[1:])


def test_worker_count_comes_from_the_cores_unless_configured() -> None:
    assert decode_workers(cores=2) == 1
    assert decode_workers(cores=16) == 8
    assert decode_workers(cores=1) == 1
    assert decode_workers(configured=3, cores=16) == 3


def test_the_cores_are_bounded_by_a_containers_cpu_quota(tmp_path: Path) -> None:
    """A container limited to 2 CPUs on a big host (`docker run --cpus 2`, a pod's CPU limit) sees every core
    of the host; its quota in the cgroup is what it may use (cgroup v2 and v1)."""
    from tasks.settings import cpu_cores

    visible = cpu_cores(tmp_path / "none")  # no cgroup files: the affinity alone
    assert visible >= 1
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert cpu_cores(v2) == min(visible, 2)  # 1.5 CPUs' time: 2 threads
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cpu_cores(v2) == visible
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_cores(v1.parent) == 1
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_cores(v1.parent) == visible


def test_a_script_without_a_main_guard_is_not_run_again_by_the_decoders(tmp_path: Path, example_library: Path) -> None:
    """multiprocessing re-imports `__main__` in new processes: an unguarded script would run twice."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    runs = tmp_path / "runs.txt"
    script.write_text(
        "from pathlib import Path\n"
        "from tasks.media.prefetch import DecodeAhead\n"
        "from tasks.records import MediaItem\n"
        "from tasks.media.local import LocalSource\n"
        f"with open({str(runs)!r}, 'a') as log:\n"
        "    log.write('run\\n')\n"
        f"path = Path({str(example_library / 'meetings' / 'standup.wav')!r})\n"
        "item = MediaItem('standup.wav', str(path), path.stat().st_size, 0, duration_s=None)\n"
        "with DecodeAhead(LocalSource(path.parent), [item], workers=1) as ahead:\n"
        "    print(type(ahead.take([item]).decoded[0]).__name__)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parent.parent,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "Clip"
    assert runs.read_text().split() == ["run"]
