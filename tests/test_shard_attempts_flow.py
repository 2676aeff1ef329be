"""Shard attempts recorded by real flow runs on one machine (the CLI's path), and rows whose speech fits.

The pool path (a worker, 4 shards queued on it) is tests/test_e2e_cost.py.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pytest
from prefect import flow

from tasks.media.library import open_source
from tasks.media.scan import scan_library
from tasks.output.shard_attempts import read_shard_attempts
from tasks.output.shard_plans import write_shard_plan
from tasks.records import Shard
from tasks.run_config import RunConfig, RunRef

pytestmark = pytest.mark.slow


def test_a_run_on_one_machine_records_each_shard_and_is_billed_for_its_wall_time(
    prefect_api: str, tmp_path: Path, example_library: Path
) -> None:
    from flows.transcribe_library import transcribe_library

    out = tmp_path / "out"
    m = transcribe_library(source=str(example_library), out=str(out), engine="fake", shards=2,
                           engine_options={"seconds_per_audio_second": "0.05"})
    attempts = read_shard_attempts(out, m.run_id)
    assert sorted(a.shard_id for a in attempts) == [0, 1] and {a.status for a in attempts} == {"completed"}
    assert {(a.pool, a.hardware, a.worker) for a in attempts} == {("", "cpu", attempts[0].worker)}
    assert sum(a.audio_s for a in attempts) == pytest.approx(m.audio_s) and sum(a.files_ok for a in attempts) == 6
    assert all(a.inference_s >= 0.05 * 3 and a.worker_s >= a.inference_s + a.model_load_s for a in attempts)
    # one machine held for the whole flow: its wall time, one worker, priced as the cpu instance
    assert (m.worker_s, m.workers, m.hardware) == (m.wall_s, 1, "cpu")
    assert m.cost_usd == pytest.approx(m.wall_s / 3600 * m.price_per_hour_usd) and m.cost_usd > 0
    assert m.utilisation == pytest.approx(m.inference_s / m.wall_s)
    rows = ds.dataset(out / "manifest", partitioning="hive").to_table().to_pylist()
    # the example m4a and mp4 decode longer than their headers say, and the mp3 and flac are all speech
    assert all(r["speech_s"] is not None and 0 < r["speech_s"] <= r["duration_s"] for r in rows), rows


def test_failed_attempts_are_recorded_too(prefect_api: str, tmp_path: Path, example_library: Path) -> None:
    """A shard whose engine cannot load fails on both tries: both held the machine, both are recorded."""
    from flows.transcribe_library import run_shard_here

    out = tmp_path / "out"
    items = tuple(scan_library(open_source(str(example_library)))[:2])
    ref = write_shard_plan(out, "run-f", Shard(0, items))
    config = RunConfig.parse({"source": str(example_library), "out": str(out), "engine": "ctranslate2",
                              "model": str(tmp_path / "no-such-model")})

    @flow
    def one_shard() -> None:
        run_shard_here(ref, config, RunRef("run-f", "cfg", str(example_library)))

    with pytest.raises(Exception, match="no such file or folder"):
        one_shard()
    attempts = read_shard_attempts(out, "run-f")
    assert [a.status for a in attempts] == ["failed", "failed"]
    assert all("no such file or folder" in (a.error or "") and a.worker_s > 0 for a in attempts)
