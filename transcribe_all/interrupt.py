"""Ctrl-C in the CLI: the first stops the run within seconds, keeping what is done; a second is immediate.

Why not let KeyboardInterrupt unwind the flow: the terminal's SIGINT also reaches the
temporary Prefect server (same process group), so the flow engine spends minutes
retrying a dead API while it reports the crash; and while the model runs, the main
thread sits in native code, where a Python signal handler does not run at all.

So the C-level handler only writes the signal number to a wakeup socket
(`signal.set_wakeup_fd`), and a watcher thread acts on it at once: it prints one line,
runs the clean-ups (release the run lease, stop decoder processes and the temporary
server) and ends the process with exit code 130, skipping the interpreter's exit hooks
that would talk to the server. Nothing is lost: every batch is already an atomic Parquet
part under DIR, and the next run merges it and records this run as `interrupted`.
A clean-up that hangs is cut off after `grace_s`; a second Ctrl-C exits at once.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

from transcribe_all.exit_codes import EXIT_INTERRUPTED

GRACE_S = 8.0
_QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


@contextmanager
def stop_on_interrupt(say: Callable[[str], None], cleanups: Sequence[Callable[[], None]],
                      grace_s: float = GRACE_S) -> Iterator[None]:
    """Within the block, Ctrl-C ends the process (exit 130) after `cleanups`, saying so in one line."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only delivered to the main thread's handlers
        return
    # After an interrupt multiprocessing's resource tracker (started later, with these options) removes
    # the decoder pools' semaphores, as it should, and would warn about each one: expected, so quiet.
    if _QUIET_TRACKER not in sys.warnoptions:
        sys.warnoptions.append(_QUIET_TRACKER)
    _start_helpers_deaf_to_ctrl_c()
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # the watcher acts; the main thread carries on
    watcher = threading.Thread(target=_watch, args=(reader, say, cleanups, grace_s), name="ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.set_wakeup_fd(previous_fd)
        writer.close()  # the watcher reads end-of-stream and returns
        watcher.join(timeout=1)
        reader.close()


def _start_helpers_deaf_to_ctrl_c() -> None:
    """multiprocessing's forkserver (which starts the decoder processes) and its resource tracker are
    processes of the terminal's group too. Each ignores SIGINT once it has imported its modules; a Ctrl-C
    in the half second before printed a KeyboardInterrupt traceback from it. Started here with SIGINT
    ignored, a disposition their exec keeps, they never see one."""
    from multiprocessing import forkserver

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def _watch(reader: socket.socket, say: Callable[[str], None], cleanups: Sequence[Callable[[], None]],
           grace_s: float) -> None:
    interrupts = 0
    while True:
        try:
            data = reader.recv(64)
        except OSError:
            return
        if not data:
            return
        for _ in (n for n in data if n == signal.SIGINT):
            interrupts += 1
            if interrupts > 1:
                os._exit(EXIT_INTERRUPTED)
            say("interrupted: stopping now; what is done is kept and the next run merges it"
                " (Ctrl-C again to quit at once)")
            threading.Thread(target=_stop, args=(cleanups, grace_s), name="ctrl-c-stop", daemon=True).start()


def _stop(cleanups: Sequence[Callable[[], None]], grace_s: float) -> None:
    threading.Timer(grace_s, os._exit, (EXIT_INTERRUPTED,)).start()
    for cleanup in cleanups:
        with suppress(Exception):  # one failing clean-up must not keep the others from running
            cleanup()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(EXIT_INTERRUPTED)


def stop_child_processes() -> None:
    """Terminate this process's multiprocessing children (the decoders), then kill what is left."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=2)
        if child.is_alive():
            child.kill()


def stop_temporary_server() -> None:
    """Stop the temporary Prefect API this process started (none when PREFECT_API_URL is set)."""
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(SubprocessASGIServer._instances.values()):  # Prefect keeps one per port
        server.stop()
