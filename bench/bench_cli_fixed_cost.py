"""The CLI's fixed cost: wall time of `transcribe-all run` when there is little or nothing to do.

Each row is a fresh `transcribe-all run` process on this machine, as a user types it,
with Prefect's state kept between runs (as on a user's machine):

    first run        examples/library into an empty DIR (the temporary Prefect API starts cold)
    no-op rerun      the same again: every file skipped
    one new file     one file added to the library since the last run

    python bench/bench_cli_fixed_cost.py [--repeat 3] [--code PATH]

`--code PATH` runs the CLI from another checkout (e.g. a `git worktree` of an older commit), to
compare before and after on the same machine in one sitting. Prints a markdown table (median of
`--repeat`). Targets (issue 11): no-op rerun ≤ 10 s, one new file ≤ 15 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed_run(code: Path, library: Path, out: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "transcribe_all.cli", "run", str(library), "--out", str(out)],
                          cwd=code, env={**env, "PYTHONPATH": str(code)}, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def measure(code: Path, repeat: int) -> dict[str, float]:
    rows: dict[str, list[float]] = {"first run": [], "no-op rerun": [], "one new file": []}
    for _ in range(repeat):
        work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env["TRANSCRIBE_ALL_CACHE_DIR"] = str(work / "cache")  # Prefect's state and the canary cache
        library = Path(shutil.copytree(ROOT / "examples" / "library", work / "library"))
        extra = min(library.rglob("*.wav"))
        held = Path(shutil.move(extra, work / extra.name))
        rows["first run"].append(timed_run(code, library, work / "out", env))
        rows["no-op rerun"].append(timed_run(code, library, work / "out", env))
        shutil.copy(held, library / "new-file.wav")
        rows["one new file"].append(timed_run(code, library, work / "out", env))
        shutil.rmtree(work, ignore_errors=True)
    return {name: statistics.median(values) for name, values in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--code", type=Path, action="append", help="a checkout to run the CLI from (repeatable)")
    args = parser.parse_args()
    codes = args.code or [ROOT]
    from bench.common import commit_stamp

    print("Measured at " + "; ".join(f"{code}: {commit_stamp(code.resolve())}" for code in codes) + ".\n")
    results = {str(code): measure(code.resolve(), args.repeat) for code in codes}
    print(f"| scenario (median of {args.repeat}, s) | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in next(iter(results.values())):
        print(f"| {name} | " + " | ".join(f"{r[name]:.1f}" for r in results.values()) + " |")


if __name__ == "__main__":
    main()
