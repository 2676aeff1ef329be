"""The WER canary: resolving a labelled set, passing and failing runs, and what a failure leaves."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from flows.transcribe_library import transcribe_library
from tasks.output.manifests import RunContext, finalize_run, read_manifest, write_part
from tasks.output.reporting import run_report
from tasks.quality.canary import CanarySetError, mark_run, resolve_canary
from tasks.records import FileResult, MediaItem, Quality, Transcript
from tests.media_factory import SPEECH, build_guard_clips
from tests.test_cli import run_cli


def labelled_set(root: Path, text: str = "The quick brown fox jumps over the lazy dog.") -> Path:
    """A one-clip labelled set: standup.wav and its reference."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(SPEECH, root / "fox.wav")
    (root / "references.tsv").write_text(f"source\ttext\nfox.wav\t{text}\n", encoding="utf-8")
    return root


def test_resolving_the_canary_parameter(tmp_path: Path) -> None:
    assert resolve_canary(None, None, "ctranslate2") is None
    assert resolve_canary("off", None, "ctranslate2") is None
    assert resolve_canary("shipped", None, "fake") is None  # the fake engine says no words
    shipped = resolve_canary("shipped", None, "ctranslate2")
    assert shipped is not None and len(shipped.references) == 6 and (shipped.folder / "meetings").is_dir()
    own = resolve_canary(str(labelled_set(tmp_path / "own")), None, "ctranslate2")
    assert own is not None and own.references == (("fox.wav", "The quick brown fox jumps over the lazy dog."),)


def test_a_broken_labelled_set_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(CanarySetError, match="canary: not a folder"):
        resolve_canary(str(tmp_path / "nope"), None, "ctranslate2")
    folder = labelled_set(tmp_path / "set")
    (folder / "bad.tsv").write_text("file\ttranscript\nfox.wav\tx\n", encoding="utf-8")
    with pytest.raises(CanarySetError, match="`source` and `text` columns"):
        resolve_canary(str(folder), str(folder / "bad.tsv"), "ctranslate2")
    (folder / "fox.wav").unlink()
    with pytest.raises(CanarySetError, match="1 files listed in .* are not in"):
        resolve_canary(str(folder), None, "ctranslate2")


def test_marking_a_run_flags_only_what_it_transcribed(tmp_path: Path) -> None:
    ctx = RunContext("r1", "fake", "fake", "cfg")
    now = datetime.now(UTC)
    ok = Transcript("hi", (), quality=Quality(flags=("no_speech",), speech_s=0.0))
    results = [FileResult(MediaItem("a.wav", "a.wav", 1, 1, "s1", 1.0), "ok", 0, now, transcript=ok),
               FileResult(MediaItem("b.wav", "b.wav", 1, 1, "s2", 1.0), "failed", 0, now, error="boom"),
               FileResult(MediaItem("c.wav", "c.wav", 1, 1, "s3", 1.0), "skipped", -1, now, done_in_run="r0")]
    write_part(tmp_path, "r1", "part", results, ctx)
    finalize_run(tmp_path, "r1")
    assert mark_run(tmp_path, "r1", "canary_failed") == 1
    assert mark_run(tmp_path, "r1", "canary_failed") == 0  # idempotent
    rows = {r["source"]: r for r in read_manifest(tmp_path, run_id="r1").to_pylist()}
    assert rows["a.wav"]["quality_flags"] == ["no_speech", "canary_failed"]
    assert rows["b.wav"]["quality_flags"] is None and rows["c.wav"]["quality_flags"] is None


def runs(out: Path) -> pd.DataFrame:
    return ds.dataset(out / "runs").to_table().to_pandas()


@pytest.mark.slow
def test_a_run_with_the_shipped_canary_passes_and_records_guards(prefect_api: str, tmp_path: Path) -> None:
    library = tmp_path / "library"
    build_guard_clips(library)
    metrics = transcribe_library(source=str(library), out=str(tmp_path / "out"))
    # tiny.en reads the shipped set at 0.232 with the default 30 s windows (0.290 with audio_context=fit)
    assert metrics.canary_wer is not None and 0.0 < metrics.canary_wer <= 0.25
    assert metrics.canary_threshold == 0.35 and metrics.files_flagged == 3
    assert runs(tmp_path / "out").loc[0, "canary_wer"] == pytest.approx(metrics.canary_wer)
    assert "WER canary 0." in run_report(metrics) and "passed" in run_report(metrics)
    rows = read_manifest(tmp_path / "out").to_pandas().set_index("source")
    assert set(rows["status"]) == {"ok"}
    assert list(rows.loc["silence.wav", "quality_flags"]) == ["no_speech"] and rows.loc["silence.wav", "text"] == ""
    assert list(rows.loc["noise.wav", "quality_flags"]) == ["no_speech"]
    assert "repetition_loop" in rows.loc["looped.wav", "quality_flags"]
    attempts = json.loads(rows.loc["looped.wav", "quality_attempts"])
    assert [a["decode"] for a in attempts] == ["default", "safer"] and sum(a["kept"] for a in attempts) == 1
    document = json.loads((tmp_path / "out" / rows.loc["looped.wav", "transcript_path"]).read_text())
    assert "repetition_loop" in document["quality"]["flags"] and len(document["quality"]["attempts"]) == 2
    middle = rows.loc["silent_middle.wav"]
    assert list(middle["quality_flags"]) == [] and middle["speech_s"] == pytest.approx(8.4, abs=1.0)
    assert "quick" in middle["text"].lower() and "store" in middle["text"].lower()
    assert middle["segments"][-1]["start"] > 40.0  # VAD cut the silence; times are back on the file's clock
    assert json.loads(middle["engine_config"])["beam_size"] == "1"


@pytest.mark.slow
def test_a_canary_over_its_threshold_fails_the_run_after_writing_everything(
    prefect_api: str, tmp_path: Path
) -> None:
    library = labelled_set(tmp_path / "library")
    canary = labelled_set(tmp_path / "canary")
    out = tmp_path / "out"
    state = transcribe_library(source=str(library), out=str(out), canary=str(canary), canary_threshold=0.0,
                               return_state=True)
    assert state.is_failed()
    with pytest.raises(RuntimeError, match=r"canary WER 0\.\d+ FAILED \(threshold 0\.000, 1 files\)"):
        state.result()
    row = read_manifest(out).to_pylist()[0]
    assert (out / row["transcript_path"]).is_file()
    assert row["status"] == "ok" and row["quality_flags"] == ["canary_failed"]
    assert runs(out).loc[0, "canary_wer"] > 0.0 and runs(out).loc[0, "canary_threshold"] == 0.0


@pytest.mark.slow
def test_the_cli_exits_non_zero_with_one_line_when_the_canary_fails(prefect_api: str, tmp_path: Path) -> None:
    library, canary = labelled_set(tmp_path / "library"), labelled_set(tmp_path / "canary", "Nothing like it.")
    done = run_cli(["run", str(library), "--out", str(tmp_path / "out"), "--canary", str(canary)], prefect_api,
                   Path(__file__).resolve().parent.parent)
    assert done.returncode == 1
    failed = [line for line in done.stderr.splitlines() if "run failed" in line]
    assert len(failed) == 1, done.stderr[-3000:]
    assert re.search(r"canary WER \d+\.\d+ FAILED \(threshold 0\.350, 1 files\)", failed[0]), failed[0]
    assert failed[0].endswith("flagged canary_failed") and "Traceback" not in done.stderr
