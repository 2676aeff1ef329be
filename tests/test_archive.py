"""The archive after runs: the index and site on a real S3 API, and the real flow keeping them current."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tasks.output.archive import refresh_archive
from tasks.output.archive_store import refresh_index
from tasks.output.layout import output_layout
from tasks.output.search import search
from tasks.output.site_pages import page_name
from tasks.settings import worker_settings
from tests.archive_factory import Row, search_json, write_run
from transcribe_all.cli import main

RUN1, RUN2 = "20260101T020000Z-aaaa1111", "20260102T020000Z-bbbb2222"


def keys(s3: object, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def upload_tree(s3: object, bucket: str, prefix: str, root: Path) -> None:
    for path in root.rglob("*.parquet"):
        s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")  # type: ignore[attr-defined]


@pytest.fixture
def s3_out(s3: object, bucket: str, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An s3:// DIR holding one run's manifest; the worker reaches moto through the default chain."""
    monkeypatch.setenv("TRANSCRIBE_ALL_S3_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("TRANSCRIBE_ALL_CACHE_DIR", str(tmp_path / "worker-1"))
    monkeypatch.delenv("TRANSCRIBE_ALL_AWS_CREDENTIALS_BLOCK", raising=False)
    worker_settings.cache_clear()
    write_run(tmp_path / "made", RUN1, [Row("calls/a.wav", [(0.0, 2.0, "Refund the customer today")]),
                                        Row("calls/b.wav", [(0.0, 2.0, "Nothing to report")])])
    upload_tree(s3, bucket, "out", tmp_path / "made")
    yield f"s3://{bucket}/out"
    worker_settings.cache_clear()


def test_s3_index_is_kept_in_the_bucket_and_another_worker_only_reads_new_runs(
    s3: object, bucket: str, s3_out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [h["source"] for h in search_json(s3_out, "refund")] == ["calls/a.wav"]
    assert {"out/search/index.sqlite", "out/search/generation"} <= keys(s3, bucket)
    # A second run lands; a fresh worker (empty cache) takes the bucket's index and reads only that run.
    write_run(tmp_path / "made", RUN2, [Row("calls/c.wav", [(0.0, 2.0, "Refund denied")])])
    upload_tree(s3, bucket, "out", tmp_path / "made")
    monkeypatch.setenv("TRANSCRIBE_ALL_CACHE_DIR", str(tmp_path / "worker-2"))
    worker_settings.cache_clear()
    db_path, update = refresh_index(output_layout(s3_out))
    assert update.runs_read == (RUN2,) and not update.rebuilt
    assert sorted(h.source for h in search(db_path, "refund")) == ["calls/a.wav", "calls/c.wav"]
    # Worker 1's copy is now stale: it takes the new one instead of serving old results.
    monkeypatch.setenv("TRANSCRIBE_ALL_CACHE_DIR", str(tmp_path / "worker-1"))
    worker_settings.cache_clear()
    assert len(search_json(s3_out, "refund")) == 2


def test_s3_site_is_uploaded_with_media_links_under_the_base_url(s3: object, bucket: str, s3_out: str) -> None:
    done = refresh_archive(s3_out, site=True, media_base_url="https://media.example/lib")
    assert done.site is not None and done.site.files == 2
    uploaded = keys(s3, bucket)
    page_key = f"out/site/files/{page_name('calls/a.wav')}"
    assert {"out/site/index.html", "out/site/runs.html", page_key, "out/site/pagefind/pagefind.js"} <= uploaded
    page = s3.get_object(Bucket=bucket, Key=page_key)["Body"].read().decode()  # type: ignore[attr-defined]
    assert 'src="https://media.example/lib/calls/a.wav"' in page


@pytest.mark.slow
def test_the_flow_keeps_index_site_and_history_current(
    prefect_api: str, example_library: Path, tmp_path: Path
) -> None:
    """The real flow and model: the site after a run, then a run that transcribes nothing."""
    from prefect.artifacts import Artifact

    from flows.transcribe_library import transcribe_library

    library, out = Path(shutil.copytree(example_library, tmp_path / "library")), tmp_path / "out"
    transcribe_library(source=str(library), out=str(out), canary="off", site=True, base_url="https://h.example")
    hits = search_json(str(out), "QUICK")  # tiny.en hears "The quick round fox…"
    assert [h["source"] for h in hits] == ["meetings/standup.wav"]
    assert hits[0]["transcript_url"] == f"https://h.example/outputs/{hits[0]['transcript_path']}"
    assert hits[0]["transcript_path"].startswith("transcripts/")  # by content x config (tasks/output/layout.py)
    page = (out / "site" / "files" / page_name("meetings/standup.wav")).read_text()
    media = re.search(r'<audio id="player"[^>]* src="([^"]+)"', page)
    assert media and (out / "site" / "files" / media[1]).resolve() == (library / "meetings" / "standup.wav").resolve()
    assert (out / "site" / "pagefind" / "pagefind.js").is_file()

    second = transcribe_library(source=str(library), out=str(out), canary="off")  # everything is already done
    assert second.files_skipped == 6 and second.files_ok == 0
    assert [h["source"] for h in search_json(str(out), "quick")] == ["meetings/standup.wav"]
    history = Artifact.get("transcribe-run-history")
    assert history is not None and len(json.loads(str(history.data))) == 2
    link = Artifact.get("transcribe-archive-site")
    assert link is not None and "https://h.example/outputs/site/index.html" in str(link.data)


def test_site_command_builds_then_rewrites_nothing_and_remembers_source(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    media, out = tmp_path / "media", tmp_path / "out"
    (media / "calls").mkdir(parents=True)
    (media / "calls" / "a.wav").write_bytes(b"RIFF")
    write_run(out, RUN1, [Row("calls/a.wav", [(0.0, 2.0, "Refund the customer today")])])
    assert main(["site", str(out), "--source", str(media)]) == 0
    assert "site: 1 files" in capsys.readouterr().out
    page = out / "site" / "files" / page_name("calls/a.wav")
    linked = page_name("calls/a.wav").removesuffix(".html") + ".wav"
    assert f'src="../media/{linked}"' in page.read_text()  # a link in DIR/site/media/ to the file in SOURCE
    assert (out / "site" / "media" / linked).resolve() == (media / "calls" / "a.wav").resolve()
    stamp = page.stat().st_mtime_ns
    assert main(["site", str(out)]) == 0  # no --source: the one given before
    assert "0 pages written" in capsys.readouterr().out and page.stat().st_mtime_ns == stamp
    assert main(["site", str(out), "--source", str(tmp_path / "missing")]) == 2
    assert "--source: not a folder" in capsys.readouterr().err


def test_copy_media_is_opt_in_and_remembered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    media, out = tmp_path / "media", tmp_path / "out"
    (media / "calls").mkdir(parents=True)
    (media / "calls" / "a.wav").write_bytes(b"RIFF-bytes")
    write_run(out, RUN1, [Row("calls/a.wav", [(0.0, 2.0, "Refund the customer today")])])
    linked = out / "site" / "media" / (page_name("calls/a.wav").removesuffix(".html") + ".wav")
    assert main(["site", str(out), "--source", str(media), "--copy-media"]) == 0
    assert "1 players, media copied from" in capsys.readouterr().out
    assert not linked.is_symlink() and linked.read_bytes() == b"RIFF-bytes"
    assert main(["site", str(out)]) == 0  # remembered; the copy is current, so it is left alone
    assert not linked.is_symlink() and "0 pages written" in capsys.readouterr().out
    assert main(["site", str(out), "--no-copy-media"]) == 0
    assert linked.is_symlink() and linked.resolve() == (media / "calls" / "a.wav").resolve()


def test_names_that_are_not_utf8_survive_and_are_shown_escaped() -> None:
    from tasks.output.search import db_source, py_source
    from tasks.output.site_pages import display_name, url_path

    name = b"calls/caf\xe9.wav".decode("utf-8", "surrogateescape")  # a Latin-1 name on a UTF-8 system
    assert py_source(db_source(name)) == name
    assert display_name(name) == "calls/caf\\xe9.wav" and url_path(name) == "calls/caf%E9.wav"
    assert page_name(name).startswith("calls-caf-wav-") and page_name(name) != page_name("calls/caf.wav")
    assert json.loads(json.dumps({"source": name}))["source"] == name  # --json round-trips it too
