"""The CLI as users run it, in real subprocesses: two runs into one DIR at once, and Ctrl-C.

Real engine (the bundled tiny.en), no canary. The Ctrl-C test starts the CLI's own temporary
Prefect server (no PREFECT_API_URL) in a process group of its own and sends SIGINT to the
whole group, as a terminal does: the server gets it too, which is what used to hang the CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from tests.media_factory import speech, write_audio

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def distinct_clips(library: Path, count: int) -> list[str]:
    """`count` clips of the example speech, each with its own bytes (gain and trailing silence)."""
    base = speech()
    for n in range(count):
        write_audio(library / f"clip_{n:02d}.wav", np.concatenate([base * (0.5 + 0.04 * n),
                                                                  np.zeros(1600 * (n + 1), np.float32)]), 16_000)
    return sorted(f"clip_{n:02d}.wav" for n in range(count))


def cli(library: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "transcribe_all.cli", "run", str(library), "--out", str(out),
                             "--canary", "off", *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def manifest(out: Path) -> pd.DataFrame:
    return ds.dataset(out / "manifest", partitioning="hive").to_table().to_pandas()


def test_two_cli_runs_into_one_dir_transcribe_each_file_once(prefect_api: str, tmp_path: Path) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    sources = distinct_clips(library, 8)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    first = cli(library, out, env)
    time.sleep(1)  # the case: a second run started a second later
    second = cli(library, out, env)
    outputs = [run.communicate(timeout=400) for run in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [err[-2000:] for _, err in outputs]
    rows = manifest(out)
    ok = rows.query("status == 'ok'")
    assert sorted(ok["source"]) == sources  # each file ok exactly once, over both runs
    assert not ok.duplicated(["content_sha256", "config_hash"]).any()
    assert len(set(rows["run_id"])) == 2 and set(rows["status"]) == {"ok", "skipped"}
    # whichever run came second waited for the first (the lease), saying so, then skipped everything
    assert any("is in use by run" in err and "waiting" in err for _, err in outputs)
    again = cli(library, out, env)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr[-2000:]
    assert f"0 ok, 0 failed, {len(sources)} skipped" in stdout


def test_no_wait_stops_at_once_with_one_line_while_another_run_holds_dir(prefect_api: str, tmp_path: Path) -> None:
    from tasks.output.lease import LocalLeaseFile, RunLease

    library, out = tmp_path / "library", tmp_path / "out"
    distinct_clips(library, 1)
    holder = RunLease(LocalLeaseFile(out / "_lease.json"), "a-nightly-run")
    holder.acquire()
    try:
        run = cli(library, out, {**os.environ, "PREFECT_API_URL": prefect_api}, "--no-wait")
        _, stderr = run.communicate(timeout=300)
    finally:
        holder.release()
    assert run.returncode == 1 and "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if "run failed" in line]
    assert "is in use by run a-nightly-run" in line and "--no-wait" in line
    assert not (out / "manifest").exists()


def test_ctrl_c_stops_within_10_s_with_exit_130_and_the_next_run_carries_on(
    prefect_api: str, tmp_path: Path
) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    sources = distinct_clips(library, 12)
    (library / "broken.wav").write_bytes(os.urandom(4096))  # the planner stages a failed row at once
    env = {**os.environ, "TRANSCRIBE_ALL_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PREFECT_API_URL", None)  # the CLI's own temporary server, as a new user runs it
    run = cli(library, out, env, "--beam-size", "5")
    deadline = time.monotonic() + 240
    while not list((out / "_staging").rglob("*.parquet")):  # under the lease, the planner has staged
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-2000:]
        time.sleep(0.2)
    children = _descendants(run.pid)
    assert children, "the temporary server at least"
    started = time.monotonic()
    os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, stderr = run.communicate(timeout=60)
    took = time.monotonic() - started
    assert run.returncode == 130 and took <= 10, (took, stderr[-2000:])
    assert "Traceback" not in stderr and "Error" not in stderr, stderr[-3000:]
    assert len([line for line in stderr.splitlines() if "interrupted" in line]) == 1
    assert not (out / "_lease.json").exists(), "the lease is released"
    time.sleep(2)
    assert not [pid for pid in children if _alive(pid)], "no process of the run is left behind"

    env["PREFECT_API_URL"] = prefect_api
    after = cli(library, out, env)
    _, stderr = after.communicate(timeout=400)
    assert after.returncode == 3, stderr[-2000:]  # broken.wav failed; everything else ok
    rows = manifest(out)
    ok = rows.query("status == 'ok'")
    assert sorted(ok["source"]) == sources and not ok.duplicated(["content_sha256", "config_hash"]).any()
    table = ds.dataset(out / "runs").to_table().to_pandas()
    assert sorted(table["interrupted"]) == [False, True], "the Ctrl-C'd run is recorded by the next"


def _descendants(pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
