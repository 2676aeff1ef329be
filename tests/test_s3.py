"""S3 sources and outputs against a real S3 API (moto's server mode) on loopback.

Real boto3 and prefect-aws talk HTTP to moto; flows run on the Prefect test API.
moto's server cannot store a key containing a newline (its router rejects `%0A`),
so the flow test uses carriage return and tab keys, and the newline case is checked
on the listing rule that every key goes through.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from tasks.media.library import open_source
from tasks.media.local import LocalSource
from tasks.media.s3 import S3Access, S3Location, parse_s3_uri
from tasks.media.scan import scan_library
from tasks.media.sources_s3 import describe_object
from tasks.output.links import transcript_url
from tasks.settings import worker_settings
from tests.conftest import _free_port, _wait_for

pytest.importorskip("moto")
pytest.importorskip("prefect_aws")

SECRET = "moto-secret-never-logged"
HOSTILE = ["../x.wav", "/abs.wav", "a/../../b.wav", "cr\rx.wav", "tab\tx.wav"]


def upload_library(s3: object, bucket: str, prefix: str, library: Path) -> list[str]:
    sources = sorted(p.relative_to(library).as_posix() for p in library.rglob("*") if p.is_file())
    for source in sources:
        s3.upload_file(str(library / source), bucket, f"{prefix}/{source}")  # type: ignore[attr-defined]
    return sources


def all_keys(s3: object, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def manifest_from_s3(s3: object, bucket: str, prefix: str, into: Path) -> pd.DataFrame:
    """Download the manifest with plain boto3 (not the code under test) and read it with pyarrow."""
    for key in all_keys(s3, bucket):
        if key.startswith(f"{prefix}/manifest/"):
            target = into / key[len(prefix) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))  # type: ignore[attr-defined]
    return ds.dataset(into / "manifest", partitioning="hive").to_table().to_pandas()


@pytest.fixture
def s3_worker(moto_url: str, prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Workers reach S3 through a saved prefect-aws AwsCredentials block, named in their settings."""
    from prefect_aws import AwsClientParameters, AwsCredentials

    name = f"moto-{uuid.uuid4().hex[:8]}"
    AwsCredentials(aws_access_key_id="testing", aws_secret_access_key=SECRET, region_name="us-east-1",
                   aws_client_parameters=AwsClientParameters(endpoint_url=moto_url)).save(name)
    monkeypatch.setenv("TRANSCRIBE_ALL_AWS_CREDENTIALS_BLOCK", name)
    worker_settings.cache_clear()
    yield name
    worker_settings.cache_clear()


# --- listing, sizes, durations ------------------------------------------------------------------


def test_scan_of_a_bucket_matches_the_scan_of_the_folder(
    s3: object, bucket: str, moto_url: str, example_library: Path
) -> None:
    sources = upload_library(s3, bucket, "lib", example_library)
    s3.put_object(Bucket=bucket, Key="lib/out/manifest/x.parquet", Body=b"PAR1")  # type: ignore[attr-defined]
    source = open_source(f"s3://{bucket}/lib", exclude=(f"s3://{bucket}/lib/out",),
                         access=S3Access(endpoint_url=moto_url))
    remote = {item.source: item for item in scan_library(source)}
    local = {item.source: item for item in scan_library(LocalSource(example_library))}
    assert sorted(remote) == sources == sorted(local)  # the output prefix is left out
    for name, item in remote.items():
        assert item.error is None and item.locator == f"lib/{name}"
        assert item.size_bytes == local[name].size_bytes
        assert item.content_sha256 == local[name].content_sha256
        assert item.duration_s == pytest.approx(local[name].duration_s, abs=1e-3)
        assert abs(item.mtime_ns / 1e9 - datetime.now(UTC).timestamp()) < 300
    for around in (f"s3://{bucket}/lib", f"s3://{bucket}", "s3://other/lib/out"):  # not inside: nothing left out
        listed = open_source(f"s3://{bucket}/lib", exclude=(around,), access=S3Access(endpoint_url=moto_url))
        assert len(list(listed.list_files())) == len(sources) + 1


def test_open_streams_and_seeks(s3: object, bucket: str, moto_url: str) -> None:
    body = bytes(range(256)) * 4096
    s3.put_object(Bucket=bucket, Key="p/blob.bin", Body=body)  # type: ignore[attr-defined]
    source = open_source(f"s3://{bucket}/p/", access=S3Access(endpoint_url=moto_url))
    ranges: list[str] = []
    record = lambda params, **_: ranges.append(params["headers"].get("Range"))
    s3.meta.events.register("before-call.s3.GetObject", record)  # type: ignore[attr-defined]
    with source.open("p/blob.bin") as handle:
        assert handle.read(64) == body[:64]
        assert ranges == ["bytes=0-65535"]  # a sniff fetches one small window, not the object
        handle.seek(1000)
        assert handle.read(10) == body[1000:1010]
        handle.seek(0)
        assert handle.read() == body
    s3.put_object(Bucket=bucket, Key="p/empty.wav", Body=b"")  # type: ignore[attr-defined]
    with source.open("p/empty.wav") as handle:
        assert handle.read(64) == b"" and handle.read() == b""
    with pytest.raises(OSError, match="blob-missing"):
        source.open("p/blob-missing.bin").read(1)
    s3.meta.events.unregister("before-call.s3.GetObject", record)  # type: ignore[attr-defined]


@pytest.mark.parametrize("key", [*HOSTILE, "new\nline.wav", "esc\x1b.wav", "a/./b.wav"])
def test_unsafe_keys_are_listed_as_errors(key: str) -> None:
    listed = describe_object(S3Location("b", "lib/"), {"Key": f"lib/{key}", "Size": 3,
                                                       "LastModified": datetime.now(UTC)})
    assert listed is not None and listed.source == key and listed.error is not None
    assert listed.error.startswith("unsafe key, not read")


def test_safe_keys_and_folder_markers() -> None:
    now = datetime.now(UTC)
    good = describe_object(S3Location("b", "lib/"), {"Key": "lib/a b/c.wav", "Size": 3, "LastModified": now})
    assert good is not None
    assert (good.source, good.locator, good.error) == ("a b/c.wav", "lib/a b/c.wav", None)
    assert describe_object(S3Location("b", "lib/"), {"Key": "lib/a/", "Size": 0, "LastModified": now}) is None


@pytest.mark.parametrize(
    ("uri", "message"),
    [("s3://", "no bucket"), ("s3:///x", "no bucket"), ("s3://b/../x", "unsafe prefix"),
     ("gs://b", "not an s3")],
)
def test_bad_s3_uris_name_the_parameter(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^--out: .*{message}"):
        parse_s3_uri(uri, "--out")


def test_upload_keys_never_leave_the_prefix() -> None:
    location = parse_s3_uri("s3://b/out/", "--out")
    assert location.key("transcripts/a b.wav.json") == "out/transcripts/a b.wav.json"
    for relative in ["../x", "/abs", "a/../../b", "new\nline"]:
        with pytest.raises(ValueError, match="unsafe"):
            location.key(relative)


def test_a_missing_aws_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "prefect_aws" else real(name))
    with pytest.raises(RuntimeError, match=r"^s3:// .*aws extra.*prefect_aws.*transcribe-all\[aws\]"):
        open_source("s3://bucket/lib")


def test_transcript_urls_are_encoded() -> None:
    url = transcript_url("https://h.example/base/", "transcripts/podcasts/episode one.opus.json")
    assert url == "https://h.example/base/outputs/transcripts/podcasts/episode%20one.opus.json"
    assert transcript_url(None, "transcripts/a.json") is None and transcript_url("http://h", None) is None


# --- whole flows: S3 in, S3 out ---------------------------------------------------------------------


@pytest.mark.slow
def test_s3_library_to_s3_output_then_rerun_skips_all(
    s3: object, bucket: str, s3_worker: str, example_library: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flows.transcribe_library import transcribe_library

    sources = upload_library(s3, bucket, "lib", example_library)
    out = f"s3://{bucket}/results"
    first = transcribe_library(source=f"s3://{bucket}/lib", out=out, engine="fake", shards=2,
                               base_url="https://media.example/")
    assert (first.files_ok, first.files_failed, first.files_skipped) == (6, 0, 0)
    rows = manifest_from_s3(s3, bucket, "results", tmp_path / "first")
    assert Counter(rows["source"]) == Counter(sources) and set(rows["status"]) == {"ok"}
    keys = set(all_keys(s3, bucket))
    for path, url in zip(rows["transcript_path"], rows["transcript_url"], strict=True):
        assert {f"results/{path[:-5]}{suffix}" for suffix in (".json", ".srt", ".vtt")} <= keys
        assert url == transcript_url("https://media.example", path)
    assert f"results/runs/{first.run_id}.parquet" in keys
    staging = worker_settings().staging_dir
    staged = [p for p in staging.rglob("*") if p.is_file() and "/remote/" not in p.as_posix()]
    assert not staged, "staged copies are removed once uploaded"

    second = transcribe_library(source=f"s3://{bucket}/lib", out=out, engine="fake", shards=2)
    assert (second.files_ok, second.files_skipped) == (0, 6)
    rows = manifest_from_s3(s3, bucket, "results", tmp_path / "second")
    ok = rows.query("status == 'ok'")
    assert Counter(ok["source"]) == Counter(sources)  # every file ok exactly once, across both runs
    assert set(rows.query(f"run_id == '{second.run_id}'")["done_in_run"]) == {first.run_id}
    assert SECRET not in caplog.text


@pytest.mark.slow
def test_hostile_keys_fail_alone_and_write_nothing_outside_the_root(
    s3: object, bucket: str, s3_worker: str, example_library: Path, tmp_path: Path
) -> None:
    from flows.transcribe_library import transcribe_library

    clip = example_library / "meetings" / "standup.wav"
    for key in [*HOSTILE, "good.wav"]:
        s3.upload_file(str(clip), bucket, f"lib/{key}")  # type: ignore[attr-defined]
    before = set(all_keys(s3, bucket))
    staging = worker_settings().staging_dir
    staged_before = set(staging.rglob("*"))
    local_out = tmp_path / "site" / "out"

    for out in (f"s3://{bucket}/results", str(local_out)):
        metrics = transcribe_library(source=f"s3://{bucket}/lib", out=out, engine="fake")
        assert (metrics.files_ok, metrics.files_failed) == (1, len(HOSTILE))

    new_keys = set(all_keys(s3, bucket)) - before
    assert new_keys and all(key.startswith("results/") and ".." not in key for key in new_keys)
    for key in new_keys:
        assert all(ord(ch) >= 32 for ch in key)
    rows = manifest_from_s3(s3, bucket, "results", tmp_path / "remote").set_index("source")
    local_rows = ds.dataset(local_out / "manifest", partitioning="hive").to_table().to_pandas()
    for table in (rows, local_rows.set_index("source")):
        assert Counter(table.index) == Counter([*HOSTILE, "good.wav"])
        assert table.loc["good.wav", "status"] == "ok"
        for key in HOSTILE:
            assert table.loc[key, "status"] == "failed" and table.loc[key, "error"].startswith("unsafe key")
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    local_written = {p for p in written if p.startswith("site/")}
    allowed = ("site/out/manifest/", "site/out/runs/", "site/out/_stages/", "site/out/_plans/", "site/out/shards/",
               "site/out/search/", "site/out/transcripts/", "site/out/._lease.json.lock")
    assert all(p.startswith(allowed) for p in local_written), local_written
    assert len([p for p in local_written if p.startswith("site/out/transcripts/")]) == 3  # good.wav's three
    assert not [p for p in (worker_settings().cache_dir / "downloads").rglob("*") if p.is_file()]
    for path in set(staging.rglob("*")) - staged_before:
        assert path.resolve().is_relative_to(staging.resolve())
        # only the mirror of the manifest, the stage times, the runs rows and the shard attempts stays
        assert path.is_dir() or any(f"/remote/{d}/" in path.as_posix()
                                    for d in ("manifest", "_stages", "runs", "shards")), path


@pytest.mark.slow
def test_local_outputs_with_base_url_are_served_as_links(
    prefect_api: str, tmp_path: Path, example_library: Path
) -> None:
    from flows.transcribe_library import transcribe_library

    library = Path(shutil.copytree(example_library / "podcasts", tmp_path / "library"))
    out = tmp_path / "out"
    port = _free_port()
    transcribe_library(source=str(library), out=str(out), engine="fake", base_url=f"http://127.0.0.1:{port}/")
    rows = ds.dataset(out / "manifest", partitioning="hive").to_table().to_pandas()
    assert len(rows) == 2 and rows["transcript_url"].notna().all()
    site = tmp_path / "site"  # the README's quick look: DIR served under /outputs/
    site.mkdir()
    (site / "outputs").symlink_to(out)
    command = [sys.executable, "-m", "http.server", str(port), "-b", "127.0.0.1", "-d", str(site)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(f"http://127.0.0.1:{port}/", server)
        for path, url in zip(rows["transcript_path"], rows["transcript_url"], strict=True):
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.read() == (out / path).read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_base_url_must_be_http(prefect_api: str, tmp_path: Path, example_library: Path) -> None:
    from flows.transcribe_library import transcribe_library

    with pytest.raises(ValueError, match="^base_url: expected"):
        transcribe_library(source=str(example_library), out=str(tmp_path / "out"), engine="fake", base_url="ftp://h/x")


# --- blocks and the CLI -----------------------------------------------------------------------------


@pytest.mark.slow
def test_media_library_block_reads_s3_through_a_named_credentials_block(
    s3: object, bucket: str, s3_worker: str, example_library: Path
) -> None:
    from blocks.library import MediaLibrary
    from blocks.register import register_all

    assert {"media-library", "hardware-profile", "aws-credentials"} <= set(register_all())
    sources = upload_library(s3, bucket, "lib", example_library)
    MediaLibrary(source=f"s3://{bucket}/lib", aws_credentials_block=s3_worker).save("archive", overwrite=True)
    library = MediaLibrary.load("archive")
    assert sorted(f.source for f in library.open().list_files()) == sources
    assert SECRET not in repr(library) and SECRET not in library.model_dump_json()


def test_media_library_rejects_other_schemes() -> None:
    from pydantic import ValidationError

    from blocks.library import MediaLibrary

    with pytest.raises(ValidationError, match="source"):
        MediaLibrary(source="gs://bucket/x")


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["run", "s3://", "--out", "x"], "SOURCE"),
        (["run", "s3://b/../x", "--out", "x"], "SOURCE"),
        (["run", "examples/library", "--out", "gs://b/x"], "--out"),
        (["run", "examples/library", "--out", "x", "--base-url", "ftp://h"], "--base-url"),
        (["run", "examples/library", "--out", "x", "--base-url", "h.example"], "--base-url"),
    ],
)
def test_cli_usage_errors_for_s3_and_links(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from transcribe_all.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"transcribe-all: error: {names}: ")


def test_listing_follows_pages(s3: object, bucket: str, moto_url: str) -> None:
    """More than one page (1,000 keys) of objects: every one listed once, in key order."""
    keys = [f"many/{n:04d}.wav" for n in range(1005)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))  # type: ignore
    source = open_source(f"s3://{bucket}/many", access=S3Access(endpoint_url=moto_url))
    listed = [f.source for f in source.list_files()]
    assert listed == [key.removeprefix("many/") for key in keys]


@pytest.mark.slow
def test_cli_runs_s3_to_s3_with_the_default_aws_chain_and_an_endpoint(
    s3: object, bucket: str, moto_url: str, prefect_api: str, example_library: Path, tmp_path: Path
) -> None:
    """The user's path: AWS_* variables + TRANSCRIBE_ALL_S3_ENDPOINT_URL, the real default engine."""
    s3.upload_file(str(example_library / "meetings" / "standup.wav"), bucket, "lib/standup.wav")  # type: ignore
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "TRANSCRIBE_ALL_S3_ENDPOINT_URL": moto_url,
           "TRANSCRIBE_ALL_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("TRANSCRIBE_ALL_AWS_CREDENTIALS_BLOCK", None)
    argv = ["run", f"s3://{bucket}/lib", "--out", f"s3://{bucket}/out", "--base-url", "https://h.example"]
    done = subprocess.run([sys.executable, "-m", "transcribe_all.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parent.parent, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = manifest_from_s3(s3, bucket, "out", tmp_path / "manifest")
    assert list(rows["status"]) == ["ok"] and "quick" in rows.loc[0, "text"].lower()
    path = rows.loc[0, "transcript_path"]
    assert path.endswith(f"/{rows.loc[0, 'content_sha256']}.json")
    assert rows.loc[0, "transcript_url"] == f"https://h.example/outputs/{path}"
    assert f"out/{path[:-5]}.srt" in all_keys(s3, bucket)


@pytest.mark.slow
def test_a_media_library_block_brings_its_own_s3_credentials(
    s3: object, bucket: str, moto_url: str, prefect_api: str, example_library: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker has no S3 settings at all: the block's credentials block and endpoint are what work."""
    from prefect_aws import AwsCredentials

    from blocks.library import MediaLibrary
    from flows.transcribe_library import transcribe_library

    monkeypatch.delenv("TRANSCRIBE_ALL_AWS_CREDENTIALS_BLOCK", raising=False)
    monkeypatch.delenv("TRANSCRIBE_ALL_S3_ENDPOINT_URL", raising=False)
    worker_settings.cache_clear()
    AwsCredentials(aws_access_key_id="testing", aws_secret_access_key=SECRET, region_name="us-east-1").save(
        "library-creds", overwrite=True)
    sources = upload_library(s3, bucket, "lib", example_library / "lectures")
    MediaLibrary(source=f"s3://{bucket}/lib", aws_credentials_block="library-creds",
                 endpoint_url=moto_url).save("lectures", overwrite=True)
    metrics = transcribe_library(source="media-library/lectures", out=str(tmp_path / "out"), engine="fake")
    assert metrics.files_ok == len(sources) == 2
    with pytest.raises(ValueError, match="^source: no MediaLibrary block named 'nope'"):
        transcribe_library(source="media-library/nope", out=str(tmp_path / "out"), engine="fake")
