"""What a run shows in the Prefect UI: a metrics table, a markdown report, progress."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import cast
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.artifacts import update_progress_artifact as _update_progress

from tasks.output.metrics import RunMetrics


def literal(text: object) -> str:
    """User text (a model path, a source, an error) as an inert markdown code span, on one line.

    Inside a code span markdown renders nothing: no links, emphasis or HTML (`<script>` shows
    as text). The fence is one backtick longer than any run of backticks in the text.
    """
    flat = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    return f"{fence} {flat} {fence}"


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.4f}"


def run_report(m: RunMetrics, warnings: Sequence[str] = ()) -> str:
    """The markdown report of one run; `warnings` (user text) are listed, escaped."""
    return "\n".join(
        [
            f"# transcribe-all run {literal(m.run_id)}",
            "",
            (f"**{m.files_ok} ok, {m.files_failed} failed, {m.files_skipped} skipped** of {m.files_total} files"
            f"{f', {m.files_removed} removed from SOURCE' if m.files_removed else ''};"
            f" {m.audio_s / 3600:.3f} audio hours in {m.wall_s:,.1f} s of flow wall time (RTFx {rtfx_text(m)})."),
            "",
            "| stage | seconds |",
            "|---|---|",
            *(f"| {label} | {getattr(m, name + '_s'):,.2f} |" for name, label in
              (("scan", "scan"), ("decode", "waiting on decode"), ("inference", "inference"), ("write", "write"))),
            "",
            (f"Engine {literal(m.engine)}, model {literal(m.model)},"
             f" config {literal(m.config_hash)}."),
            "",
            _quality_line(m),
            "",
            held_line(m),
            "",
            (f"Cost on {literal(m.hardware)}: {_money(m.cost_usd)} on-demand,"
            f" {_money(m.spot_cost_usd)} spot; per audio hour {_money(m.cost_per_audio_hour_usd)} on-demand,"
            f" {_money(m.spot_cost_per_audio_hour_usd)} spot."),
            *([""] + [f"- **warning**: {literal(w)}" for w in warnings] if warnings else []),
        ]
    )


def rtfx_text(m: RunMetrics) -> str:
    """RTFx, or a dash when nothing was transcribed (0.0 would read as a stalled run)."""
    return "—" if m.rtfx is None else f"{m.rtfx:,.1f}"


def utilisation_text(m: RunMetrics) -> str:
    return "—" if m.utilisation is None else f"{m.utilisation:.0%}"


def held_line(m: RunMetrics) -> str:
    """What the workers were held for: the figure the cost is computed from."""
    return (f"Workers held: {m.workers} worker{'s' if m.workers != 1 else ''} for {m.worker_s:,.1f} s in all"
            f" ({m.worker_hours:.4f} worker hours, {m.gpu_hours:.4f} GPU hours); utilisation"
            f" {utilisation_text(m)} (inference ÷ worker time).")


def _quality_line(m: RunMetrics) -> str:
    flagged = f"Quality: {m.files_flagged} files flagged (see `quality_flags` in the manifest)"
    if m.canary_wer is None or m.canary_threshold is None:
        return f"{flagged}; no WER canary in this run."
    verdict = "passed" if m.canary_wer <= m.canary_threshold else "**FAILED**"
    return f"{flagged}; WER canary {m.canary_wer:.3f} {verdict} (threshold {m.canary_threshold:.3f})."


@task(name="publish-run-report")
def publish_run_report(metrics: RunMetrics, warnings: Sequence[str] = ()) -> None:
    """Table artifact (one row per run, keyed so runs line up) and the markdown report."""
    row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(metrics).items()}
    create_table_artifact(key="transcribe-run-metrics", table=[row], description="Per-run metrics")
    create_markdown_artifact(key="transcribe-run-report", markdown=run_report(metrics, warnings),
                             description="Run report")


def start_progress(description: str) -> UUID | None:
    return cast(UUID, create_progress_artifact(progress=0.0, description=description))  # sync: the id itself


def update_progress(artifact_id: UUID | None, percent: float) -> None:
    if artifact_id is not None:
        _update_progress(artifact_id=artifact_id, progress=min(100.0, percent))
