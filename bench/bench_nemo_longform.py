"""Peak memory and RTFx versus audio length for the nemo engine's full, local and buffered modes.

The model has Parakeet-TDT-0.6B-v3's geometry (24 x 1024 FastConformer, 8 heads,
128 mels, TDT durations 0..4) with random weights: it measures cost, not accuracy.
It is saved once as `.nemo`; each row then runs in a fresh process that loads it
through the engine, warms up, and transcribes one file of noise in one forced mode.

Memory: on CPU the peak resident set of the row's process above what it held after
loading and warm-up (Linux `VmHWM`, reset through /proc/self/clear_refs); on CUDA
`torch.cuda.max_memory_allocated` over the same span. The heap is trimmed before the
baseline (`malloc_trim`): otherwise memory freed while loading (the .nemo is unpacked and
copied) stays in the process, is reused, and hides the growth. glibc's allocator is left
as in production (a fixed mmap threshold gave ~40% lower peaks but ran 2.3x slower).

    python bench/bench_nemo_longform.py --rows full:1,5 local:1,5 buffered:1,5,20 \\
        --out bench/results/nemo_longform_cpu.md
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_ROWS = ["full:1,5,20,60", "local:1,5,20,60", "buffered:1,5,20,60"]
RATE = 16_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, help="MODE:MINUTES[,MINUTES...] ...")
    parser.add_argument("--minutes", help="override the minutes of every row, e.g. 1,5,20,60")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--row-timeout", type=float, default=1800, help="seconds before a row is abandoned")
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    parser.add_argument("--model", type=Path, help="a .nemo to reuse instead of building one")
    parser.add_argument("--_row", help=argparse.SUPPRESS)  # internal: run one row in this process
    args = parser.parse_args()
    if args._row:
        mode, minutes = args._row.split(":")
        print(json.dumps(run_row(args.model, mode, float(minutes), args.device)))
        return
    from bench.common import commit_stamp, stamped

    commit = commit_stamp()
    rows = [(mode, float(m)) for spec in args.rows for mode, ms in [spec.split(":")]
            for m in (args.minutes or ms).split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(Path(tmp))
        results = [run_in_subprocess(model, mode, minutes, args) for mode, minutes in rows]
    table = stamped(render(results, args.device), commit)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)


def build_model(folder: Path) -> Path:
    """Save the Parakeet-geometry model once (in a child process, so this one stays small)."""
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]);"
            "from tests.nemo_tiny import PARAKEET_0_6B, save_tiny_nemo;"
            "print(save_tiny_nemo(Path(sys.argv[1]), PARAKEET_0_6B))")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(folder), str(ROOT)], check=True, capture_output=True,
                         text=True)
    path = Path(out.stdout.strip().splitlines()[-1])
    print(f"built {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return path


def run_in_subprocess(model: Path, mode: str, minutes: float, args: argparse.Namespace) -> dict[str, object]:
    command = [sys.executable, __file__, "--_row", f"{mode}:{minutes}", "--model", str(model),
               "--device", args.device]
    print(f"running {mode} at {minutes:g} min ...", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.row_timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "minutes": minutes, "status": f"timeout after {args.row_timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1][:120]
        return {"mode": mode, "minutes": minutes, "status": f"failed: {tail}"}
    row: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {row}", file=sys.stderr, flush=True)
    return row


def run_row(model: Path, mode: str, minutes: float, device: str) -> dict[str, object]:
    import numpy as np
    import torch

    from tasks.engines.base import EngineConfig
    from tasks.engines.nemo_parakeet import NemoParakeet
    from tasks.records import Clip

    engine = NemoParakeet(EngineConfig(engine="nemo", device=device, extra=(("mode", mode),)), str(model))
    rng = np.random.default_rng(0)
    engine.transcribe([Clip("warmup", (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32))])
    clip = Clip("bench", (0.1 * rng.standard_normal(int(minutes * 60 * RATE))).astype(np.float32))
    cuda = engine.device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    started = time.perf_counter()
    (transcript,) = engine.transcribe([clip])
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    row: dict[str, object] = {
        "mode": mode, "minutes": minutes, "status": "ok" if transcript.info["mode"] == mode else
        f"fell back: {transcript.info.get('fallback')}", "wall_s": round(wall, 1),
        "rtfx": round(clip.duration_s / wall, 2), "peak_rss_mb": round(_status_kb("VmHWM") / 1024),
        "peak_delta_mb": round((_status_kb("VmHWM") - base) / 1024), "words": len(transcript.words),
        "threads": torch.get_num_threads(),
    }
    if cuda:
        row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return row


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}: this benchmark measures memory on Linux only")


def render(rows: list[dict[str, object]], device: str) -> str:
    import nemo
    import torch

    gpu = any("gpu_peak_mb" in r for r in rows)
    head = ["mode", "minutes", "wall s", "RTFx", "peak RSS MB", "peak over loaded MB"] + (
        ["GPU peak MB"] if gpu else []) + ["words", "status"]
    lines = [
        f"# nemo engine, long-form cost ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", "",
        (f"Machine: {platform.node()}, {_cpu_name()}, {_cores()} cores, {_mem_gb():.0f} GiB RAM; "
         f"device {device}; Python {platform.python_version()}, torch {torch.__version__}, "
         f"nemo_toolkit {nemo.__version__}; torch threads {rows[0].get('threads', '?') if rows else '?'}."),
        "Model: Parakeet-TDT-0.6B-v3 geometry, random weights (cost, not accuracy); input: noise.", "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [r["mode"], f"{r['minutes']:g}", r.get("wall_s", "-"), r.get("rtfx", "-"), r.get("peak_rss_mb", "-"),
                 r.get("peak_delta_mb", "-")] + ([r.get("gpu_peak_mb", "-")] if gpu else []) + [
                 r.get("words", "-"), r["status"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _mem_gb() -> float:
    return _status_meminfo("MemTotal") / 2**20


def _status_meminfo(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
