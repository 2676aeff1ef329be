"""Run the transcribe-library flow in this process with a progress bar and a summary."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from transcribe_all.cli import EXIT_FILES_FAILED, EXIT_OK, EXIT_RUN_FAILED
from transcribe_all.settings import prepare_cli_prefect_env, worker_settings


def run_in_process(args: argparse.Namespace) -> int:
    prepare_cli_prefect_env(worker_settings(), args.verbose)
    console = Console(stderr=True)
    console.print(f"[bold]transcribe-all[/] {args.source} → {args.out} (engine {args.engine}); starting Prefect…")
    from flows.transcribe_library import transcribe_library  # imports prefect: after the env is set
    from tasks.engines.base import EngineError

    try:
        with _progress_bar(console):
            metrics = transcribe_library(
                source=args.source, out=args.out, engine=args.engine, model=args.model, hardware=args.hardware,
                shards=args.shards, shard_minutes=args.shard_minutes, beam_size=args.beam_size,
                language=args.language, word_timestamps=args.word_timestamps, pack_short_clips=args.packing,
                base_url=args.base_url,
                vad=not args.no_vad, canary=args.canary, canary_references=args.canary_references,
                **({"canary_threshold": args.canary_threshold} if args.canary_threshold is not None else {}),
            )
    except (EngineError, ValueError, OSError, RuntimeError) as error:
        console.print(f"[red]transcribe-all: run failed:[/] {error}", soft_wrap=True)  # one line, unwrapped
        return EXIT_RUN_FAILED
    Console().print(_summary(metrics, args.out))
    return EXIT_FILES_FAILED if metrics.files_failed else EXIT_OK


@contextmanager
def _progress_bar(console: Console) -> Iterator[None]:
    from tasks.progress import subscribe

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("scanning", total=None)

        def on_event(event: str, files: int, audio_s: float) -> None:
            if event == "planned":
                progress.update(bar, description=f"transcribing {audio_s / 60:.1f} min of audio", total=files)
            else:
                progress.advance(bar, files)

        unsubscribe = subscribe(on_event)
        try:
            yield
        finally:
            unsubscribe()


def _summary(m: object, out: str) -> Table:
    from tasks.output.metrics import RunMetrics

    assert isinstance(m, RunMetrics)
    table = Table(title=f"run {m.run_id}", show_header=False)
    money = lambda v: "n/a" if v is None else f"${v:,.4f}"
    for label, value in [
        ("files", f"{m.files_ok} ok, {m.files_failed} failed, {m.files_skipped} skipped ({m.files_total} total)"),
        ("audio", f"{m.audio_s / 60:,.2f} min transcribed"),
        ("wall time", f"{m.wall_s:,.1f} s (RTFx {m.rtfx:,.1f})"),
        ("stages", (f"scan {m.scan_s:.1f} s, waiting on decode {m.decode_s:.1f} s, inference {m.inference_s:.1f} s, "
                   f"write {m.write_s:.1f} s")),
        ("cost", (f"{money(m.cost_usd)} on {m.hardware}; per audio hour {money(m.cost_per_audio_hour_usd)}"
                 f" on-demand, {money(m.spot_cost_per_audio_hour_usd)} spot")),
        ("quality", f"{m.files_flagged} files flagged; WER canary "
                    + ("off" if m.canary_wer is None else f"{m.canary_wer:.3f} (threshold {m.canary_threshold})")),
        ("outputs", f"{out}/manifest, {out}/runs, {out}/transcripts"),
    ]:
        table.add_row(label, value)
    return table


