"""Helper processes die with the process they serve, even when it is SIGKILLed.

A SIGKILL runs no clean-up: without this, the CLI's temporary Prefect server (~220 MB) and
its decoder processes were orphaned to init and lived on. Two mechanisms, one per kind:
- a direct child (the temporary server) calls `die_with_parent(pid)` first thing: on Linux
  the kernel sends it SIGKILL when its parent dies (`prctl(PR_SET_PDEATHSIG)`); elsewhere a
  thread checks every second. The parent may die before the setting takes effect, so
  `getppid()` is checked once more after it.
- a decoder's parent is not its owner but multiprocessing's fork server, which only exits
  once every decoder has. It gets the read end of a pipe whose write end only its owner
  holds (`owner_lifeline()`), and a thread that ends the process at end-of-file: the kernel
  closes the owner's end when the owner dies, whoever reaps it and whenever (a pid check
  would see a dead but unreaped owner as alive).

Run as `python -m tasks.lifeline PARENT_PID MODULE ARGS...` it is `python -m MODULE ARGS...`
that dies with PARENT_PID: how the CLI starts Prefect's temporary server.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext

_PR_SET_PDEATHSIG = 1
CHECK_S = 1.0
_lifelines: dict[int, tuple[Connection, Connection]] = {}  # owner pid → (read end, write end), kept open
_lock = threading.Lock()


def die_with_parent(parent: int) -> None:
    """End this process when `parent` (its parent) dies; at once if it already has."""
    if not _death_signal(signal.SIGKILL):
        threading.Thread(target=_watch_parent, args=(parent,), name="lifeline", daemon=True).start()
    if os.getppid() != parent:  # it died before the signal was set: nobody would send it
        os._exit(1)


def _death_signal(signum: int) -> bool:
    """Ask the kernel for `signum` when the parent dies (Linux); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(CHECK_S)
    os._exit(1)


def owner_lifeline(context: BaseContext) -> Connection:
    """The read end of this process's lifeline, to hand to a child (`exit_with_owner`); the write end
    stays here, open until this process ends."""
    with _lock:
        if os.getpid() not in _lifelines:
            _lifelines[os.getpid()] = context.Pipe(duplex=False)
        return _lifelines[os.getpid()][0]


def exit_with_owner(lifeline: Connection) -> None:
    """In a child: end this process when the owner's end of `lifeline` closes (the owner died)."""
    threading.Thread(target=_watch_pipe, args=(lifeline,), name="lifeline", daemon=True).start()


def _watch_pipe(lifeline: Connection) -> None:
    try:
        while True:
            lifeline.recv_bytes()  # nothing is ever sent: this returns only at end-of-file
    except (EOFError, OSError):
        os._exit(1)


def main(argv: list[str]) -> None:
    parent, module, *args = argv
    die_with_parent(int(parent))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
