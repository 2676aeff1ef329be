"""Run history: the last runs from DIR/runs/, as a table (Prefect artifact) and as charts (site).

Charts are inline SVG written here rather than matplotlib PNGs: five bar charts need
about sixty lines, add no run-time dependency, scale with the page, stay sharp, and
work from `file://`. Every label goes through `html.escape`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pyarrow.dataset as ds

HISTORY_RUNS = 30
TABLE_COLUMNS = ("run_id", "started_at", "files_total", "files_ok", "files_failed", "files_skipped",
                 "files_flagged", "audio_s", "wall_s", "rtfx", "cost_usd", "spot_cost_usd",
                 "cost_per_audio_hour_usd", "spot_cost_per_audio_hour_usd", "canary_wer", "hardware", "engine",
                 "model")


def read_runs(folder: Path, last: int = HISTORY_RUNS) -> list[dict[str, object]]:
    """The newest `last` run rows, oldest first; [] when no run has finished."""
    parts = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))) if folder.is_dir() else []
    if not parts:
        return []
    rows: list[dict[str, object]] = ds.dataset(parts, format="parquet").to_table().to_pylist()
    rows.sort(key=lambda r: (str(r["started_at"]), str(r["run_id"])))
    return rows[-last:]


def table_rows(runs: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """The run-history artifact: newest first, plain values (timestamps as ISO text)."""
    def plain(value: object) -> object:
        return value.isoformat() if hasattr(value, "isoformat") else value

    return [{c: plain(run.get(c)) for c in TABLE_COLUMNS} for run in reversed(runs)]


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: tuple[float | None, ...]
    color: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    series: tuple[Series, ...]
    threshold: float | None = None  # a dashed line (the canary's WER threshold)


def charts(runs: Sequence[dict[str, object]]) -> list[Chart]:
    def col(name: str, scale: float = 1.0) -> tuple[float | None, ...]:
        return tuple(None if r.get(name) is None else float(r[name]) * scale for r in runs)  # type: ignore[arg-type]

    thresholds = [t for t in col("canary_threshold") if t is not None]
    return [
        Chart("Audio transcribed", "hours", (Series("audio hours", col("audio_s", 1 / 3600), "#3b6ea8"),)),
        Chart("Speed", "× real time", (Series("RTFx", col("rtfx"), "#4d9a6b"),)),
        Chart("Cost per audio hour", "USD", (Series("on-demand", col("cost_per_audio_hour_usd"), "#b5573b"),
                                              Series("spot", col("spot_cost_per_audio_hour_usd"), "#e0a458"))),
        Chart("Canary WER", "WER", (Series("canary WER", col("canary_wer"), "#7a5aa6"),),
              thresholds[-1] if thresholds else None),
        Chart("Failed and flagged files", "files", (Series("failed", col("files_failed"), "#c0392b"),
                                                    Series("flagged", col("files_flagged"), "#d4ac0d"))),
    ]


def svg_chart(chart: Chart, run_ids: Sequence[str], width: int = 640, height: int = 220) -> str:
    """A grouped bar chart, one group per run (oldest left); missing values leave a gap."""
    left, bottom, top = 56, 34, 28
    plot_w, plot_h = width - left - 10, height - bottom - top
    values = [v for s in chart.series for v in s.values if v is not None] + [chart.threshold or 0.0]
    peak = max(values, default=0.0) or 1.0
    group = plot_w / max(len(run_ids), 1)
    bar = group * 0.8 / max(len(chart.series), 1)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<title>{escape(chart.title)}</title>',
             f'<text x="{left}" y="16" class="chart-title">{escape(chart.title)} ({escape(chart.unit)})</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#888"/>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="tick">{peak:.3g}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>']
    for k, series in enumerate(chart.series):
        for i, value in enumerate(series.values):
            if value is None:
                continue
            h = plot_h * value / peak
            x = left + i * group + group * 0.1 + k * bar
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{series.color}"><title>{escape(run_ids[i])}: {escape(series.label)} '
                         f'{value:.4g}</title></rect>')
        parts.append(f'<rect x="{width - 150}" y="{6 + 12 * k}" width="9" height="9" fill="{series.color}"/>'
                     f'<text x="{width - 137}" y="{14 + 12 * k}" class="legend">{escape(series.label)}</text>')
    if chart.threshold is not None:
        y = top + plot_h - plot_h * chart.threshold / peak
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#c0392b" '
                     f'stroke-dasharray="5,4"><title>threshold {chart.threshold:.3g}</title></line>')
    step = max(1, len(run_ids) // 6)
    for i in range(0, len(run_ids), step):
        parts.append(f'<text x="{left + (i + 0.5) * group:.1f}" y="{height - 12}" text-anchor="middle" '
                     f'class="tick">{escape(run_ids[i][:13])}</text>')
    parts.append("</svg>")
    return "".join(parts)
