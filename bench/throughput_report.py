"""The throughput suite's tables and chart (bench/bench_throughput.py measures; this formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import WER_COLUMNS, wer_cells

PEER = "BatchedInferencePipeline"


def best_peer(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest BatchedInferencePipeline row of one part (its batch-size sweep)."""
    peers = [r for r in results if r["row"].startswith(PEER)]
    return max(peers, key=lambda r: r["speed"]) if peers else None


def table(heading: str, results: list[dict[str, Any]]) -> str:
    loop = next((r for r in results if r["row"] == "plain loop"), results[0])
    peer = best_peer(results)
    lines = [heading, "",
             f"| | wall s | audio s / wall s | × plain loop | × best {PEER} | {WER_COLUMNS} | CPU s | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        versus = f"{r['speed'] / peer['speed']:.2f}" if peer else "n/a"
        lines.append(f"| {r['row']} | {r['wall_s']:.1f} | {r['speed']:.1f} | {r['speed'] / loop['speed']:.2f} | "
                     f"{versus} | {wer_cells(r['wer'])} | {r['cpu_s']:.0f} | {r['peak_rss_mib']:.0f} |")
    if peer:
        lines += ["", f"Best {PEER} row of this part: {peer['row']}."]
    ours = next((r for r in results if r["row"] == "transcribe-all"), None)
    if ours:
        lines += ["", (f"transcribe-all stage seconds: scan {ours['scan_s']:.2f}, model waiting on decode "
                       f"{ours['decode_wait_s']:.2f}, inference {ours['inference_s']:.1f}, write {ours['write_s']:.2f}"
                       f" ({ours['files_ok']} files ok).")]
    return "\n".join(lines)


def chart(path: Path, parts: list[tuple[str, list[dict[str, Any]]]], scan: list[dict[str, Any]],
          writer: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not (scan or writer):
        fig, ax = plt.subplots(figsize=(11, 5.2))
        _speed_panel(ax, parts)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        return
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    _speed_panel(axes[0], parts)
    ax = axes[1]
    if scan:
        files = [r["files"] for r in scan]
        ax.plot(files, [r["cold_files_per_s"] for r in scan], "o-", label="cold (hash + probe)")
        ax.plot(files, [r["warm_files_per_s"] for r in scan], "s-", label="incremental (unchanged)")
        ax.axhline(2000, color="grey", linestyle=":", label="target 2,000 files/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("files")
    ax.set_ylabel("files per second")
    ax.set_title("library scan" + ("" if scan else " (not run)"))
    ax = axes[2]
    if writer:
        ax.plot([r["files"] for r in writer], [r["peak_rss_mib"] for r in writer], "o-")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
    ax.set_xlabel("files in the run")
    ax.set_ylabel("peak RSS over baseline, MiB")
    ax.set_title("manifest merge memory" + ("" if writer else " (not run)"))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _speed_panel(ax: Any, parts: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """× plain loop per row, one bar group per part; the label is WER (ours / Whisper's normaliser)."""
    names: list[str] = []
    for _, results in sorted(parts, key=lambda part: -len(part[1])):  # the fullest part's order first
        names += [r["row"] for r in results if r["row"] not in names]
    width = 0.8 / max(1, len(parts))
    for k, (label, results) in enumerate(parts):
        loop = next((r for r in results if r["row"] == "plain loop"), results[0])
        xs = [names.index(r["row"]) + (k - (len(parts) - 1) / 2) * width for r in results]
        bars = ax.bar(xs, [r["speed"] / loop["speed"] for r in results], width, label=label)
        ax.bar_label(bars, labels=[f"{r['wer'][0]:.2f}/{r['wer'][1]:.2f}" for r in results], fontsize=6,
                     rotation=90, padding=2)
    ax.set_xticks(range(len(names)), [_short(n) for n in names], fontsize=7, rotation=30, ha="right")
    ax.axhline(1.0, color="grey", linestyle=":")
    top = max((r["speed"] / next((x for x in res if x["row"] == "plain loop"), res[0])["speed"]
               for _, res in parts for r in res), default=1.0)
    ax.set_ylim(top=top * 1.35)  # room for the WER labels
    ax.set_ylabel("× the plain loop (same run)")
    ax.set_title("ASR speed; labels: WER ours / Whisper normaliser")
    ax.legend(fontsize=7)


def _short(name: str) -> str:
    return name.replace(PEER, "Batched").replace("transcribe-all", "t-a").replace("audio_context=", "ctx ")
