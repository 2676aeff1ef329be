"""`transcribe-all search`: the FTS5 index over the manifest, through the real CLI and the real S3 API."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.output.search import INDEX_PATH, QueryError, fts_query, search, update_index
from tests.archive_factory import Row, search_json, write_run
from transcribe_all.cli import main

ROOT = Path(__file__).resolve().parent.parent
RUN1, RUN2, RUN3 = "20260101T020000Z-aaaa1111", "20260102T020000Z-bbbb2222", "20260103T020000Z-cccc3333"
HOSTILE = "<img src=x onerror=alert(1)>\"q'.wav"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    write_run(out, RUN1, [
        Row("meetings/standup.wav", [(0.0, 1.6, "The quick brown fox"), (1.6, 3.4, "jumps over the lazy dog.")]),
        Row("podcasts/episode one.opus", [(0.0, 2.0, "Don't stop: the QUICK-thinking Fox!"),
                                          (2.0, 4.0, "Hello, world.")]),
        Row(HOSTILE, [(0.0, 1.0, "<script>alert(2)</script> hostile café")]),
        Row("broken.mp3", status="failed"),
    ], base_url="https://h.example")
    return out


def test_the_console_script_prints_json_and_exits_0_on_no_match(archive: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "transcribe_all.cli", "search", str(archive), "zeppelin", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "[]", "")


def test_phrase_case_and_punctuation(archive: Path) -> None:
    hits = search_json(str(archive), '"brown fox"')
    assert [(h["source"], h["start"], h["end"]) for h in hits] == [("meetings/standup.wav", 0.0, 1.6)]
    assert hits[0]["text"] == "The quick brown fox" and float(hits[0]["score"]) > 0  # type: ignore[arg-type]
    assert hits[0]["transcript_url"] == "https://h.example/outputs/transcripts/meetings/standup.wav.json"
    assert search_json(str(archive), '"fox brown"') == []  # a phrase keeps its order
    # Case and punctuation on either side do not matter: "QUICK-thinking Fox!" and "quick brown fox".
    assert {h["source"] for h in search_json(str(archive), "quick, FOX?")} == {
        "meetings/standup.wav", "podcasts/episode one.opus"}
    assert [h["source"] for h in search_json(str(archive), "dont")] == []
    assert [h["start"] for h in search_json(str(archive), "don't STOP")] == [0.0]
    assert [h["source"] for h in search_json(str(archive), "cafe")] == [HOSTILE]  # diacritics folded too


def test_a_failed_file_has_no_text_to_find(archive: Path) -> None:
    assert search_json(str(archive), "broken") == []  # a failed file has no text to find


def test_ranked_and_limited(archive: Path) -> None:
    write_run(archive, RUN2, [Row("many.wav", [(0.0, 1.0, "fox fox fox fox"), (1.0, 2.0, "a fox")])])
    hits = search_json(str(archive), "fox", "--limit", "2")
    assert len(hits) == 2 and hits[0]["source"] == "many.wav" and hits[0]["start"] == 0.0
    assert hits[0]["score"] >= hits[1]["score"]  # type: ignore[operator]


def test_hostile_file_name_and_text_come_back_verbatim(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [hit] = search_json(str(archive), "script alert")
    assert hit["source"] == HOSTILE and hit["text"] == "<script>alert(2)</script> hostile café"
    assert main(["search", str(archive), "hostile"]) == 0  # the table: markup is printed, not interpreted
    table = capsys.readouterr().out
    assert "<script>alert(2)</script>" in table and "onerror=alert(1)>" in table


def test_table_highlights_the_match(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", str(archive), "lazy"]) == 0
    out = capsys.readouterr().out
    assert "meetings/standup.wav" in out and "lazy" in out and "0:01–0:03" in out
    [hit] = search(archive / INDEX_PATH, "lazy")
    assert hit.text == "jumps over the \x02lazy\x03 dog."


@pytest.mark.parametrize(("argv", "message"), [
    (["search", "DIR", "!!!"], "QUERY: no words to search for"),
    (["search", "DIR", "x", "--limit", "0"], "--limit: must be from 1 to 20,000, got 0"),
    (["search", "DIR", "refund", "--limit", "9223372036854775808"], "--limit: must be from 1 to 20,000"),
    (["search", "DIR", "-refund"], ("'-refund' reads as an option; to search for words that start with -, "
                                    "put the query after --: transcribe-all search DIR -- -refund")),
    (["search", "DIR", "refund", "-x"], "transcribe-all search DIR -- -x"),
    (["search", "/nonexistent/out", "x"], "DIR: no manifest/ folder"),
    (["search", "ftp://host/out", "x"], "DIR: ftp:// is not supported"),
    (["site", "DIR", "--media-base-url", "ftp://x"], "--media-base-url: expected http(s)://"),
])
def test_usage_errors_are_one_line_exit_2(archive: Path, argv: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(archive) if a == "DIR" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_queries_never_reach_fts5_syntax() -> None:
    assert fts_query('alpha "beta  gamma" NOT: OR* (x)') == '"alpha" AND "beta gamma" AND "NOT" AND "OR" AND "x"'
    assert fts_query('"unterminated phrase') == '"unterminated phrase"'
    with pytest.raises(QueryError):
        fts_query('" " -- ...')


def test_updates_read_only_new_runs_and_follow_each_files_latest_transcript(archive: Path) -> None:
    db = archive / INDEX_PATH
    first = update_index(archive, db)
    assert first.rebuilt and first.runs_read == (RUN1,) and first.files == 4
    # Run 2: standup.wav changed; episode one was already done (skipped); a new file twins another's content.
    write_run(archive, RUN2, [
        Row("meetings/standup.wav", [(0.0, 2.0, "A completely new recording")]),
        Row("podcasts/episode one.opus", [(0.0, 2.0, "Don't stop: the QUICK-thinking Fox!"),
                                          (2.0, 4.0, "Hello, world.")], status="skipped", done_in_run=RUN1),
        Row("copy of episode.opus", [(0.0, 2.0, "Don't stop: the QUICK-thinking Fox!"), (2.0, 4.0, "Hello, world.")],
            status="skipped", done_in_run=RUN1),
    ])
    second = update_index(archive, db)
    assert second.runs_read == (RUN2,) and second.rows_read == 3 and not second.rebuilt and second.files == 5
    assert [h.source for h in search(db, "lazy dog")] == []  # the old text of a changed file is gone
    assert [h.source for h in search(db, "completely new")] == ["meetings/standup.wav"]
    assert sorted(h.source for h in search(db, "hello world")) == ["copy of episode.opus", "podcasts/episode one.opus"]
    assert update_index(archive, db).runs_read == ()  # nothing new: nothing read
    with sqlite3.connect(db) as con:  # the replaced content's segments were dropped, not left orphaned
        assert con.execute("SELECT count(*) FROM segments WHERE text LIKE '%lazy%'").fetchone() == (0,)


def test_a_late_merged_older_run_does_not_override_a_newer_transcript(archive: Path) -> None:
    db = archive / INDEX_PATH
    write_run(archive, RUN3, [Row("meetings/standup.wav", [(0.0, 2.0, "Newest words")])])
    update_index(archive, db)
    write_run(archive, RUN2, [Row("meetings/standup.wav", [(0.0, 2.0, "Older words")])])  # a dead run merged late
    assert update_index(archive, db).runs_read == (RUN2,)
    assert [h.source for h in search(db, "newest")] == ["meetings/standup.wav"]
    assert search(db, "older") == []


def test_a_missing_or_corrupt_index_is_rebuilt_from_the_manifest(archive: Path) -> None:
    assert search_json(str(archive), "lazy")  # built on first use
    (archive / INDEX_PATH).write_bytes(b"this is not a database" * 100)
    assert [h["source"] for h in search_json(str(archive), "lazy")] == ["meetings/standup.wav"]
    (archive / INDEX_PATH).unlink()
    assert update_index(archive, archive / INDEX_PATH).rebuilt


def test_an_archive_with_no_run_yet_searches_to_nothing(tmp_path: Path) -> None:
    (tmp_path / "out" / "manifest").mkdir(parents=True)
    assert search_json(str(tmp_path / "out"), "anything") == []


def test_a_config_that_comes_back_finds_its_earlier_text_again(archive: Path) -> None:
    """Run 2 redoes everything under a new config (the old text is dropped), run 3 goes back to the first
    config: its rows are `skipped`, pointing at run 1's ok rows, and their text must be searchable again."""
    db = archive / INDEX_PATH
    update_index(archive, db)
    standup = [(0.0, 1.6, "The quick brown fox"), (1.6, 3.4, "jumps over the lazy dog.")]
    same_bytes = "|".join(text for _, _, text in standup)  # the file did not change, the config did
    write_run(archive, RUN2, [Row("meetings/standup.wav", [(0.0, 3.4, "The quick round fox jumps")],
                                  content=same_bytes)], config_hash="cfg2")
    update_index(archive, db)
    assert search(db, "lazy") == []
    write_run(archive, RUN3, [Row("meetings/standup.wav", standup, status="skipped", done_in_run=RUN1)])
    assert update_index(archive, db).runs_read == (RUN3,)
    assert [(h.source, h.start) for h in search(db, "lazy")] == [("meetings/standup.wav", 1.6)]
    assert search(db, "round") == []


def test_a_file_that_fails_later_keeps_its_last_good_text(archive: Path) -> None:
    db = archive / INDEX_PATH
    write_run(archive, RUN2, [Row("meetings/standup.wav", status="failed")])  # e.g. truncated since
    update_index(archive, db)
    assert [h.source for h in search(db, "lazy")] == ["meetings/standup.wav"]
    with sqlite3.connect(db) as con:  # while the listing shows what the latest run said
        assert con.execute("SELECT status, run_id FROM files WHERE source = ?",
                           (b"meetings/standup.wav",)).fetchone() == ("failed", RUN2)


def test_a_removed_file_is_not_found_until_it_comes_back(archive: Path) -> None:
    db = archive / INDEX_PATH
    update_index(archive, db)
    assert [h.source for h in search(db, "lazy dog")] == ["meetings/standup.wav"]
    write_run(archive, RUN2, [Row("meetings/standup.wav", [(0.0, 1.6, "The quick brown fox"),
                                                           (1.6, 3.4, "jumps over the lazy dog.")], status="removed")])
    update_index(archive, db)
    assert search(db, "lazy dog") == []  # gone from SOURCE: its removed row takes it out of search
    with sqlite3.connect(db) as con:  # and its text, which no other file shares, out of the index
        assert con.execute("SELECT count(*) FROM segments WHERE text LIKE '%lazy%'").fetchone() == (0,)
    write_run(archive, RUN3, [Row("meetings/standup.wav", [(0.0, 1.6, "The quick brown fox"),
                                                           (1.6, 3.4, "jumps over the lazy dog.")],
                                  status="skipped", done_in_run=RUN1)])  # the same bytes are back
    update_index(archive, db)
    assert [h.source for h in search(db, "lazy dog")] == ["meetings/standup.wav"]
