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

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

HISTORY_RUNS = 30
TABLE_COLUMNS = ("run_id", "started_at", "files_total", "files_ok", "files_failed", "files_skipped",
                 "files_flagged", "audio_s", "wall_s", "rtfx", "worker_s", "utilisation", "workers", "cost_usd",
                 "spot_cost_usd", "cost_per_audio_hour_usd", "spot_cost_per_audio_hour_usd", "canary_wer", "hardware",
                 "engine", "model")


def read_runs(folder: Path, last: int = HISTORY_RUNS) -> list[dict[str, object]]:
    """The newest `last` run rows, oldest first; [] when no run has finished."""
    parts = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))) if folder.is_dir() else []
    if not parts:
        return []
    # Rows written before a column existed lack it: read them all under the union of their schemas (as nulls).
    schema = pa.unify_schemas([pq.read_schema(part) for part in parts])
    rows: list[dict[str, object]] = ds.dataset(parts, format="parquet", schema=schema).to_table().to_pylist()
    rows.sort(key=lambda r: (str(r["started_at"]), str(r["run_id"])))
    return rows[-last:]


def table_rows(runs: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """The run-history artifact: newest first, plain values (timestamps as ISO text)."""
    def plain(value: object) -> object:
        return value.isoformat() if hasattr(value, "isoformat") else value

    return [{c: plain(run.get(c)) for c in TABLE_COLUMNS} for run in reversed(runs)]


def run_labels(run_ids: Sequence[str]) -> list[str]:
    """Short, distinct labels: `01-03 02:00:07` from `20260103T020007Z-…`; the run's suffix where the
    second is shared (or the id is not a timestamp), so runs started together stay apart."""
    def short(run_id: str) -> str:
        stamp = run_id.split("-", 1)[0]
        if len(stamp) == 16 and stamp[8] == "T":
            return f"{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"
        return run_id

    labels = [short(r) for r in run_ids]
    return [f"{label} {r.split('-', 1)[-1][:4]}" if labels.count(label) > 1 else label
            for label, r in zip(labels, run_ids, strict=True)]


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


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where a chart's plot area sits in its SVG, and its value scale."""

    width: int
    height: int
    peak: float
    runs: int
    series: int
    left: int = 56
    top: int = 28
    bottom: int = 34

    @property
    def plot_w(self) -> float:
        return self.width - self.left - 10

    @property
    def plot_h(self) -> float:
        return self.height - self.bottom - self.top

    def y(self, value: float) -> float:
        return self.top + self.plot_h - self.plot_h * value / self.peak

    def x(self, run: int, k: int = 0) -> float:
        group = self.plot_w / max(self.runs, 1)
        return self.left + run * group + group * 0.1 + k * self.bar

    @property
    def bar(self) -> float:
        return self.plot_w / max(self.runs, 1) * 0.8 / max(self.series, 1)


def svg_chart(chart: Chart, run_ids: Sequence[str], width: int = 640, height: int = 220) -> str:
    """A grouped bar chart, one group per run (oldest left); missing values leave a gap."""
    values = [v for s in chart.series for v in s.values if v is not None]
    f = _Frame(width, height, max([*values, chart.threshold or 0.0]) or 1.0, len(run_ids), len(chart.series))
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<title>{escape(chart.title)}</title>',
             f'<text x="{f.left}" y="16" class="chart-title">{escape(chart.title)} ({escape(chart.unit)})</text>',
             f'<line x1="{f.left}" y1="{f.y(0)}" x2="{width - 10}" y2="{f.y(0)}" stroke="#888"/>',
             f'<text x="{f.left - 6}" y="{f.top + 4}" text-anchor="end" class="tick">{f.peak:.3g}</text>',
             f'<text x="{f.left - 6}" y="{f.y(0)}" text-anchor="end" class="tick">0</text>']
    for k, series in enumerate(chart.series):
        parts += [f'<rect x="{f.x(i, k):.1f}" y="{f.y(v):.1f}" width="{f.bar:.1f}" height="{f.y(0) - f.y(v):.1f}" '
                  f'fill="{series.color}"><title>{escape(run_ids[i])}: {escape(series.label)} {v:.4g}</title></rect>'
                  for i, v in enumerate(series.values) if v is not None]
        parts.append(f'<rect x="{width - 150}" y="{6 + 12 * k}" width="9" height="9" fill="{series.color}"/>'
                     f'<text x="{width - 137}" y="{14 + 12 * k}" class="legend">{escape(series.label)}</text>')
    if not any(values):  # say so, rather than draw an empty frame
        parts.append(f'<text x="{f.left + f.plot_w / 2:.0f}" y="{f.top + f.plot_h / 2:.0f}" text-anchor="middle" '
                     f'class="legend">{"0 in every run" if values else "no data in these runs"}</text>')
    if chart.threshold is not None:
        y = f.y(chart.threshold)
        parts.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#c0392b" '
                     f'stroke-dasharray="5,4"><title>threshold {chart.threshold:.3g}</title></line>')
    step = max(1, -(-len(run_ids) // 5))
    shown = range(0, len(run_ids), step)
    labels = run_labels([run_ids[i] for i in shown])
    parts += [f'<text x="{f.x(i) + f.plot_w / max(f.runs, 1) * 0.4:.1f}" y="{height - 12}" text-anchor="middle" '
              f'class="tick">{escape(label)}</text>' for i, label in zip(shown, labels, strict=True)]
    return "".join([*parts, "</svg>"])
