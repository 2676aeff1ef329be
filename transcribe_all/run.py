"""Run the transcribe-library flow in this process, showing each stage, then a summary."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from transcribe_all.exit_codes import EXIT_FILES_FAILED, EXIT_OK, EXIT_RUN_FAILED

if TYPE_CHECKING:
    from tasks.run_config import RunConfig

ShowStage = Callable[[str | None], None]  # names the stage on the bar; None stops the bar

# What the bar says while a stage has no count of its own (events from tasks/progress.py).
STAGES = {"checking": "checking the configuration", "scanning": "scanning the library",
          "finishing": "merging the manifest and recording the run", "canary": "scoring the WER canary"}


def run_in_process(config: RunConfig, started: float | None = None) -> int:
    """Run the flow here (Prefect's environment is already prepared: cli.main) and print its summary.

    `started`: when the command began (`time.monotonic()`), so the summary shows its own time."""
    started = time.monotonic() if started is None else started
    console = Console(stderr=True)
    console.print(f"[bold]transcribe-all[/] {escape(config.source)} → {escape(config.out)} (engine {config.engine})",
                  soft_wrap=True)
    with _progress_bar(console) as show, _ctrl_c(console), _lease_notices(console):
        show("starting Prefect")
        from flows.transcribe_library import transcribe_library  # imports prefect: after the env is set
        from tasks.engines.base import EngineError
        from transcribe_all.temporary_server import start_temporary_server

        try:
            start_temporary_server()  # from this (the main) thread, so that it dies with this process
            metrics = transcribe_library(**config.model_dump())
        except (EngineError, ValueError, OSError, RuntimeError) as error:
            show(None)
            # one line, unwrapped
            console.print(f"[red]transcribe-all: run failed:[/] {escape(str(error))}", soft_wrap=True)
            return EXIT_RUN_FAILED
    Console().print(_summary(metrics, config.out, time.monotonic() - started))
    return EXIT_FILES_FAILED if metrics.files_failed else EXIT_OK


def _ctrl_c(console: Console) -> AbstractContextManager[None]:
    from tasks.output.lease import release_held_leases
    from transcribe_all.interrupt import stop_child_processes, stop_on_interrupt, stop_temporary_server

    def say(line: str) -> None:
        console.print(f"[yellow]transcribe-all: {escape(line)}[/]", soft_wrap=True)

    # the decoders twice: the flow keeps running while the others stop, and may start one meanwhile
    cleanups = [release_held_leases, stop_child_processes, stop_temporary_server, stop_child_processes]
    return stop_on_interrupt(say, cleanups)


@contextmanager
def _lease_notices(console: Console) -> Iterator[None]:
    """Show the run lease's waiting message (another run is writing to DIR) on the terminal."""
    import logging

    from tasks.output.lease import log

    class Say(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            console.print(f"[yellow]transcribe-all: {escape(record.getMessage())}[/]", soft_wrap=True)

    handler = Say(logging.WARNING)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)


@contextmanager
def _progress_bar(console: Console) -> Iterator[ShowStage]:
    """A bar that names the stage; while transcribing: file k of n and minutes of audio done."""
    from tasks.progress import subscribe

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("starting", total=None)
        todo = {"files": 0, "audio_s": 0.0, "done_files": 0, "done_s": 0.0}

        def show(stage: str | None) -> None:
            if stage is None:
                progress.stop()
            else:
                progress.update(bar, description=stage)

        def on_event(event: str, files: int, audio_s: float) -> None:
            if event == "planned":
                todo.update(files=files, audio_s=audio_s)
                progress.update(bar, total=files or None, completed=0)
            elif event == "done":
                todo["done_files"] += files
                todo["done_s"] += audio_s
                progress.advance(bar, files)
            else:
                show(STAGES.get(event, event))
                return
            show(f"transcribing file {min(todo['done_files'] + 1, todo['files'])} of {todo['files']} "
                 f"({todo['done_s'] / 60:.1f} of {todo['audio_s'] / 60:.1f} min of audio)"
                 if todo["done_files"] < todo["files"] else f"transcribed {todo['files']} files")

        unsubscribe = subscribe(on_event)
        try:
            yield show
        finally:
            unsubscribe()


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.4f}"


def _summary(m: object, out: str, command_s: float) -> Table:
    from tasks.output.metrics import RunMetrics
    from tasks.output.reporting import rtfx_text, utilisation_text

    assert isinstance(m, RunMetrics)
    table = Table(title=f"run {m.run_id}", show_header=False)
    for label, value in [
        ("files", f"{m.files_ok} ok, {m.files_failed} failed, {m.files_skipped} skipped ({m.files_total} total)"),
        ("audio", f"{m.audio_s / 60:,.2f} min transcribed"),
        ("time", (f"{command_s:,.1f} s this command so far (Prefect's start included); {m.wall_s:,.1f} s the"
                  " flow's wall time")),
        ("speed", f"RTFx {rtfx_text(m)} (audio ÷ the flow's wall time)"),
        ("stages", (f"scan {m.scan_s:.1f} s, waiting on decode {m.decode_s:.1f} s, inference {m.inference_s:.1f} s, "
                   f"write {m.write_s:.1f} s")),
        ("workers", (f"{m.workers} worker{'' if m.workers == 1 else 's'} held {m.worker_s:,.1f} s"
                     f" ({m.worker_hours:.4f} worker hours, {m.gpu_hours:.4f} GPU hours); utilisation"
                     f" {utilisation_text(m)} (inference ÷ held time)")),
        ("cost", (f"{_money(m.cost_usd)} on {m.hardware}; per audio hour {_money(m.cost_per_audio_hour_usd)}"
                 f" on-demand, {_money(m.spot_cost_per_audio_hour_usd)} spot")),
        ("quality", f"{m.files_flagged} files flagged; WER canary "
                    + ("off" if m.canary_wer is None else f"{m.canary_wer:.3f} (threshold {m.canary_threshold})")),
        ("outputs", f"{out}/manifest, {out}/runs, {out}/transcripts"),
    ]:
        table.add_row(label, value)
    return table
