"""The CLI contract: exit codes, one-line usage errors, and a real run in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.media_factory import build_bad
from transcribe_all.cli import main


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["run", "examples/library"], "--out"),
        (["run", "no/such/folder", "--out", "x"], "SOURCE"),
        (["run", "examples/library", "--out", "x", "--shards", "0"], "--shards"),
        (["run", "examples/library", "--out", "x", "--shards", "many"], "--shards"),
        (["run", "examples/library", "--out", "x", "--engine", "whisperx"], "--engine"),
        (["run", "examples/library", "--out", "x", "--model", "/no/such/model"], "--model"),
        (["run", "examples/library", "--out", "x", "--engine", "nemo"], "--model"),  # no silent download
        (["run", "examples/library", "--out", "x", "--hardware", "tpu-v9"], "--hardware"),
        (["run", "examples/library", "--out", "x", "--shards", "2", "--shard-minutes", "5"], "--shards"),
        (["run", "examples/library", "--out", "x", "--beam-size", "-1"], "--beam-size"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_usage_errors_are_one_line_naming_the_parameter(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("transcribe-all: error: ")
    assert names in err


def run_cli(args: list[str], api_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    return subprocess.run(
        [sys.executable, "-m", "transcribe_all.cli", *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=300, check=False,
    )


def direct_texts(library: Path) -> dict[str, str]:
    """Each file's text from a direct faster-whisper call on the same model (float32 greedy, one file at
    a time): what the default engine must give back, batching notwithstanding (accuracy first)."""
    from faster_whisper import WhisperModel

    from tasks.engines import EngineConfig, resolve_model

    model = WhisperModel(resolve_model(EngineConfig()), device="cpu", compute_type="float32")
    options = {"beam_size": 1, "language": "en", "temperature": 0.0, "condition_on_previous_text": False}
    files = sorted(p for p in library.rglob("*") if p.is_file())
    return {p.relative_to(library).as_posix(): " ".join(s.text.strip() for s in model.transcribe(str(p), **options)[0])
            for p in files}


@pytest.mark.slow
def test_exit_codes_of_real_runs(prefect_api: str, tmp_path: Path, example_library: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    library = Path(shutil.copytree(example_library, tmp_path / "library"))
    done = run_cli(["run", str(library), "--out", str(tmp_path / "out")], prefect_api, root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "6 ok, 0 failed" in done.stdout
    rows = pd.read_parquet(tmp_path / "out" / "manifest")
    assert dict(zip(rows["source"], rows["text"], strict=True)) == direct_texts(library)  # the CLI costs no WER
    build_bad(library / "bad")
    with_failures = run_cli(["run", str(library), "--out", str(tmp_path / "out")], prefect_api, root)
    assert with_failures.returncode == 3, with_failures.stderr[-2000:]
    assert "0 ok, 6 failed, 6 skipped" in with_failures.stdout
    assert "Traceback" not in with_failures.stderr
