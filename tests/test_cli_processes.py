"""Nothing the CLI starts outlives it, even a SIGKILL (issue 19).

`transcribe-all run` as a new user runs it (no PREFECT_API_URL: the CLI's own temporary
Prefect server), on a library the fake engine takes seconds per file over. Once its
decoders run, the CLI's own pid gets SIGKILL, which runs no clean-up at all: the server,
the fork server, the decoders and the resource tracker must all be gone within seconds
(tasks/lifeline.py), and the next run must work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.media_factory import speech, write_audio

ROOT = Path(__file__).resolve().parent.parent


def command(library: Path, out: Path, *extra: str) -> list[str]:
    return [str(Path(sys.executable).with_name("transcribe-all")), "run", str(library), "--out", str(out),
            "--engine", "fake", "--canary", "off", *extra]


def decoders_running(cli: psutil.Process) -> list[psutil.Process]:
    """The CLI's process tree once a decoder (a grandchild, under the fork server) and the server run."""
    tree = cli.children(recursive=True)
    direct = {child.pid for child in tree if child.ppid() == cli.pid}
    has_server = any("uvicorn" in " ".join(child.cmdline()) for child in tree if child.pid in direct)
    return tree if has_server and any(child.pid not in direct for child in tree) else []


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


OWNER = """
import os, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from tasks.media import prefetch

server = subprocess.Popen([sys.executable, "-m", "tasks.lifeline", str(os.getpid()), "http.server", "0",
                           "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
pool = ProcessPoolExecutor(1, mp_context=prefetch._CONTEXT, **prefetch._worker_options())
print(server.pid, pool.submit(os.getpid).result(), flush=True)
time.sleep(600)
"""


def test_helpers_end_when_their_owner_is_killed_even_before_it_is_reaped() -> None:
    """A decoder watches its owner's end of a pipe, the server has the kernel's death signal: neither
    waits for the dead owner to be reaped (here it is a zombie until the end)."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    helpers = [psutil.Process(int(pid)) for pid in owner.stdout.readline().split()]
    assert len(helpers) == 2 and all(alive(p) for p in helpers)
    os.kill(owner.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert psutil.Process(owner.pid).status() == psutil.STATUS_ZOMBIE  # not reaped yet, and yet:
    assert not [p.pid for p in helpers if alive(p)]
    owner.wait()


@pytest.mark.slow
def test_sigkill_of_the_cli_leaves_no_process_behind_and_the_next_run_works(tmp_path: Path) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    for n in range(4):  # ~3.5 s of audio each, 2 s of "inference" per second: seconds in the engine
        samples = np.concatenate([speech() * (0.5 + 0.1 * n), np.zeros(1600 * n, np.float32)])
        write_audio(library / f"clip_{n}.wav", samples, 16_000)
    env = {**os.environ, "TRANSCRIBE_ALL_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PREFECT_API_URL", None)
    run = subprocess.Popen(command(library, out, "--engine-option", "seconds_per_audio_second=2"), cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    cli = psutil.Process(run.pid)
    deadline = time.monotonic() + 240
    while not (tree := decoders_running(cli)):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-2000:]
        time.sleep(0.2)
    assert len(tree) >= 4, [p.cmdline()[:4] for p in tree]  # server, fork server, decoder, resource tracker

    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=10)
    gone_by = time.monotonic() + 5
    while (left := [p for p in tree if alive(p)]) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not left, [(p.pid, " ".join(p.cmdline())[:100]) for p in left]

    after = subprocess.run(command(library, out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
                           check=False)
    assert after.returncode == 0, after.stderr[-3000:]
    assert "4 ok, 0 failed" in after.stdout and "Traceback" not in after.stderr
