"""The benchmarks' shared figures: which commit they name, and WER under both normalisers."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.common import commit_stamp, stamped, wer_pair, whisper_wer


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_commit_stamp_names_head_and_says_when_the_tree_differs(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_COMMIT", raising=False)
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "r.md").write_text("old\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert commit_stamp(tmp_path) == f"commit {head[:12]}"
    (tmp_path / "bench" / "results" / "r.md").write_text("new figures\n")  # writing results is not a change
    assert commit_stamp(tmp_path) == f"commit {head[:12]}"
    (tmp_path / "code.py").write_text("x = 2\n")
    assert commit_stamp(tmp_path) == f"commit {head[:12]} + uncommitted changes"
    monkeypatch.setenv("BENCH_COMMIT", "abc123")  # a tree that travelled without .git
    assert commit_stamp(tmp_path) == "commit abc123"


def test_commit_stamp_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_COMMIT", raising=False)
    assert re.match(r"commit unknown", commit_stamp(tmp_path))


def test_stamped_puts_the_commit_under_the_heading() -> None:
    assert stamped("# Title\n\n| a |", "commit 1") == "# Title\n\nMeasured at commit 1.\n\n| a |"


def test_whisper_normaliser_counts_what_ours_does_not_and_the_reverse() -> None:
    # Whisper's spelling map: British and American spellings are the same word; ours counts them apart.
    ours, whisper = wer_pair(["the colour of the sea"], ["the color of the sea"])
    assert whisper == 0.0
    assert ours == pytest.approx(0.2)
    # Both read spoken numbers and digits alike, and drop punctuation and case.
    assert wer_pair(["Twenty five dollars!"], ["$25"])[1] == 0.0
    assert whisper_wer(["go forward ten meters"], ["go forward ten meters"]) == 0.0
    assert whisper_wer(["go forward ten meters"], ["go back"]) == pytest.approx(0.75)


def test_empty_references_are_left_out() -> None:
    assert whisper_wer(["", "a b"], ["anything", "a b"]) == 0.0
    assert whisper_wer([""], ["x"]) == 0.0
