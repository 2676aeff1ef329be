"""The whole flow over a hostile library (real tiny model, real Prefect API): every case gets its row."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from flows.transcribe_library import transcribe_library
from tasks.media import pieces
from tasks.quality.wer import word_error_rate
from tests.hostile_library import NON_UTF8_SOURCE, build_hostile, refuse_locked, unlock
from tests.media_factory import write_audio
from tests.test_pieces import long_speech
from transcribe_all.cli import build_parser

pytestmark = pytest.mark.slow


def manifest(out: Path) -> pd.DataFrame:
    return ds.dataset(out / "manifest", partitioning="hive").to_table().to_pandas()


def test_a_hostile_library_runs_end_to_end(prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, out = tmp_path / "library", tmp_path / "out"
    expected = build_hostile(root, tmp_path / "outside")
    write_audio(root / "long.wav", long_speech(8), 16_000)  # ~39 s: spilled and cut into pieces below
    expected["long.wav"] = "ok"
    monkeypatch.setattr(pieces, "SPILL_AFTER_S", 10.0)
    monkeypatch.setattr(pieces, "PIECE_S", 12.0)
    try:
        with refuse_locked(monkeypatch):
            first = transcribe_library(source=str(root), out=str(out), canary="off")
            second = transcribe_library(source=str(root), out=str(out), canary="off")
    finally:
        unlock(root)
    rows = manifest(out).query(f"run_id == '{first.run_id}'").set_index("source")
    assert set(rows.index) == set(expected)
    # a link inside SOURCE is followed: the same bytes as plain.wav, so one of the two is transcribed
    assert sorted(rows.loc[["inside_link.wav", "plain.wav"], "status"]) == ["ok", "skipped"]
    plain = rows.loc["inside_link.wav", "text"]  # the first in name order is the one transcribed
    for source, want in expected.items():
        row = rows.loc[source]
        if source == "plain.wav":
            continue
        if want == "ok":
            assert row["status"] == "ok", (source, row["error"])
            for suffix in (".json", ".srt", ".vtt"):
                assert (out / f"{row['transcript_path'][: -len('.json')]}{suffix}").is_file()
        else:
            assert row["status"] == "failed" and want in row["error"], (source, row["error"])
    assert (first.files_ok, first.files_failed, first.files_skipped) == (8, 5, 1)

    # the non-UTF-8 name: a valid UTF-8 key, transcribed; its outputs are addressed by content, and say whose
    transcript = json.loads((out / rows.loc[NON_UTF8_SOURCE, "transcript_path"]).read_text(encoding="utf-8"))
    assert transcript["source"] == NON_UTF8_SOURCE
    assert word_error_rate([plain], [rows.loc[NON_UTF8_SOURCE, "text"]]) < 0.5
    # the audio stream chosen, and the note when there were several
    assert rows.loc["100%25 done.wav", "audio_stream"] == 0 and rows.loc["default_second.mkv", "audio_stream"] == 2
    assert rows.loc["two_streams.mkv", "audio_stream"] == 1
    assert "2 audio streams" in json.loads(rows.loc["two_streams.mkv", "engine_config"])["audio_streams"]
    # the long file: one row, transcribed in pieces, its times on the file's clock
    long_row = rows.loc["long.wav"]
    assert json.loads(long_row["engine_config"])["pieces"] == "4"
    assert max(s["end"] for s in long_row["segments"]) > 30.0
    assert word_error_rate([" ".join([plain] * 8)], [long_row["text"]]) < 0.35

    # the next run skips what is done and reports the hostile cases again
    assert (second.files_ok, second.files_skipped, second.files_failed) == (0, 9, 5)


def test_the_cli_passes_follow_links_outside() -> None:
    from tasks.run_config import RunConfig

    args = build_parser().parse_args(["run", "lib", "--out", "out", "--follow-links-outside"])
    assert args.follow_links_outside is True
    plain = vars(build_parser().parse_args(["run", "lib", "--out", "out"]))
    assert "follow_links_outside" not in plain  # not given: RunConfig's own default decides
    assert RunConfig.parse({k: v for k, v in plain.items() if k not in ("command", "verbose")}).follow_links_outside \
        is False
