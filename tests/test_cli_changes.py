"""Change detection as a user meets it: two files swapped with `mv`, same size and mtime (issue 19).

`transcribe-all run`, then `mv A t; mv B A; mv t B`, then `run` again: the manifest,
the transcripts and `transcribe-all search` must give each name the text of the bytes it
now holds. The fake engine's text ends with a checksum of the samples, so each content
has its own words.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.media_factory import speech, write_audio

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
WHEN_NS = 1_700_000_000 * 10**9


def transcribe_all(api: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("transcribe-all")), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False, env={**os.environ, "PREFECT_API_URL": api})


def latest_rows(out: Path) -> dict[str, dict[str, object]]:
    rows = ds.dataset(out / "manifest", partitioning="hive").to_table().to_pylist()
    return {row["source"]: row for row in sorted(rows, key=lambda row: row["finished_at"])}


def test_swapped_files_of_equal_size_and_mtime_each_keep_their_own_text(prefect_api: str, tmp_path: Path) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    for name, gain in (("A.wav", 0.5), ("B.wav", 0.25)):  # same length, different bytes
        write_audio(library / name, speech() * gain, 16_000)
        os.utime(library / name, ns=(WHEN_NS, WHEN_NS))
    run = ["run", str(library), "--out", str(out), "--engine", "fake", "--canary", "off"]
    first = transcribe_all(prefect_api, *run)
    assert first.returncode == 0, first.stderr[-2000:]
    before = latest_rows(out)
    text = {name: str(before[name]["text"]) for name in ("A.wav", "B.wav")}
    assert text["A.wav"] != text["B.wav"]

    os.rename(library / "A.wav", library / "t.wav")  # mv A t; mv B A; mv t B
    os.rename(library / "B.wav", library / "A.wav")
    os.rename(library / "t.wav", library / "B.wav")
    stats = [(library / name).stat() for name in ("A.wav", "B.wav")]
    assert {(s.st_size, s.st_mtime_ns) for s in stats} == {(stats[0].st_size, WHEN_NS)}  # nothing a stat() of size
    second = transcribe_all(prefect_api, *run)  # and mtime could tell
    assert second.returncode == 0, second.stderr[-2000:]
    assert "0 ok, 0 failed, 2 skipped" in second.stdout  # both contents were transcribed before: not again

    after = latest_rows(out)
    swapped = {"A.wav": "B.wav", "B.wav": "A.wav"}
    for name, was in swapped.items():
        assert after[name]["content_sha256"] == before[was]["content_sha256"], name
        transcript = json.loads((out / str(after[name]["transcript_path"])).read_text())
        assert transcript["text"] == text[was], name
        word = text[was].split()[-1]  # the checksum of the samples
        found = transcribe_all(prefect_api, "search", str(out), word, "--json")
        assert found.returncode == 0, found.stderr[-2000:]
        assert [hit["source"] for hit in json.loads(found.stdout)] == [name]
