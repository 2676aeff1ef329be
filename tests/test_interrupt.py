"""`stop_on_interrupt` on its own, in real subprocesses sent real SIGINTs (no Prefect: fast).

The CLI end to end (temporary server, decoders, lease) is in tests/test_cli_concurrency.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, time
from transcribe_all.interrupt import stop_on_interrupt

def cleanup():
    print("cleanup started", flush=True)
    time.sleep(float(sys.argv[1]))
    print("cleanup done", flush=True)

with stop_on_interrupt(lambda line: print(line, file=sys.stderr, flush=True), [cleanup], grace_s=float(sys.argv[2])):
    print("ready", flush=True)
    {busy}
print("not reached", flush=True)
"""
# The main thread busy in Python, or blocked in a system call that never returns (the model's case).
PYTHON_BUSY = "while True: sum(range(1000))"
NATIVE_BUSY = "import os; os.read(os.pipe()[0], 1)"


def start(busy: str, cleanup_s: float, grace_s: float) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", SCRIPT.replace("{busy}", busy), str(cleanup_s), str(grace_s)],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def test_the_first_ctrl_c_runs_the_cleanups_then_exits_130_with_one_line() -> None:
    for busy in (PYTHON_BUSY, NATIVE_BUSY):
        process = start(busy, 0.2, 5)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
        assert process.returncode == 130 and time.monotonic() - started < 5
        assert stdout == "cleanup started\ncleanup done\n"
        assert stderr.count("\n") == 1 and stderr.startswith("interrupted: stopping now") and "Traceback" not in stderr


def test_a_second_ctrl_c_exits_at_once_even_while_a_cleanup_runs() -> None:
    process = start(PYTHON_BUSY, 60, 60)
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None and process.stdout.readline() == "cleanup started\n"
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 130 and time.monotonic() - started < 5 and "cleanup done" not in stdout


def test_a_hanging_cleanup_is_cut_off_after_the_grace_period() -> None:
    process = start(NATIVE_BUSY, 60, 1.0)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 130 and 0.9 < time.monotonic() - started < 8
