"""In-process progress events, so the CLI can draw a bar while the flow runs.

Prefect's progress artifact serves the UI; this serves a terminal. Listeners are
plain callables; with none registered, reporting costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, int, float], None]  # (event, files, audio seconds)
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def report(event: str, files: int, audio_s: float) -> None:
    """`planned` once with the work to do, then `done` after every batch."""
    for listener in _listeners:
        listener(event, files, audio_s)
