"""The CLI's temporary Prefect server, started so that it cannot outlive the CLI.

Without PREFECT_API_URL, Prefect starts a temporary API server (uvicorn, ~220 MB) the first
time anything needs the API, from whichever thread asks, and stops it at exit. A SIGKILLed
CLI runs no exit hook, so the server lived on. The CLI therefore starts it itself, from the
main thread, before the flow: the same server object Prefect would make (every later
`SubprocessASGIServer()` returns it), with its command run under `tasks.lifeline`, which
makes the kernel kill the server when the CLI dies (`tasks.lifeline.die_with_parent`). Main thread, because the kernel's
"parent died" is the death of the thread that started the child.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any


def start_temporary_server() -> None:
    """Start Prefect's temporary API server tied to this process (nothing when PREFECT_API_URL is set)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return  # the user's own server (from the environment or a Prefect profile)
    from prefect.server.api import server as server_module

    with _lifeline_commands(server_module):
        server_module.SubprocessASGIServer().start()


@contextmanager
def _lifeline_commands(module: ModuleType) -> Iterator[None]:
    """Within the block, `module`'s `Popen([python, -m, X, ...])` runs `python -m tasks.lifeline PID X ...`."""
    real: ModuleType = getattr(module, "subprocess")  # noqa: B009 - mypy does not know the module's names
    setattr(module, "subprocess", _LifelineSubprocess(real))  # noqa: B010
    try:
        yield
    finally:
        setattr(module, "subprocess", real)  # noqa: B010


class _LifelineSubprocess:
    """`subprocess`, but `Popen` of a `python -m MODULE` command dies with this process."""

    def __init__(self, real: ModuleType) -> None:
        self._real = real

    def Popen(self, args: list[str], **options: Any) -> subprocess.Popen[Any]:
        if list(args[:2]) != [sys.executable, "-m"]:  # not the command this was written for: run it as it is
            return self._real.Popen(args, **options)  # type: ignore[no-any-return]
        return subprocess.Popen([sys.executable, "-m", "tasks.lifeline", str(os.getpid()), *args[2:]], **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
