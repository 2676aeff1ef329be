"""Media on the site as a user meets it: `transcribe-all run`, then `transcribe-all site DIR`, served with
DIR as the web root (`python -m http.server -d DIR`); every player of every hostile name loads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks.media.sources import encode_name
from tasks.output.site_pages import page_name
from tests.archive_factory import search_json
from tests.media_factory import write_audio
from tests.site_http import get, player_urls, serve

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# The names whose players were dead: `%`, bytes that are not UTF-8, control characters; and company.
NAMES = [b"100%.wav", b"caf\xe9 \xff.wav", b"tab\there.wav", b"new\nline.wav", b"a%41b.wav", b"50% off #1?.wav",
         "ünïcödé 漢字 & 'q'.wav".encode(), b"sub dir/%zz;x+y.mp3"]


def write_library(root: Path, names: list[bytes]) -> dict[bytes, bytes]:
    """A short distinct tone per name (written under a plain name, then renamed to the raw bytes)."""
    made = {}
    for n, name in enumerate(names):
        raw = os.fsencode(root) + b"/" + name
        os.makedirs(os.path.dirname(raw), exist_ok=True)
        plain = root / f".tmp-{n}.wav"
        tone = 0.3 * np.sin(np.arange(8000) * (0.05 + 0.01 * n)).astype(np.float32)
        write_audio(plain, tone, 16_000)
        os.rename(plain, raw)
        made[name] = Path(os.fsdecode(raw)).read_bytes()
    return made


def run_cli(api_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    done = subprocess.run([sys.executable, "-m", "transcribe_all.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def site(out: Path, *options: str) -> str:
    """`transcribe-all site DIR [options]`, as a user types it; its summary line."""
    stdout = subprocess.run([sys.executable, "-m", "transcribe_all.cli", "site", str(out), *options],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert stdout.returncode == 0, stdout.stderr
    return stdout.stdout


def source_key(name: bytes) -> str:
    return encode_name(os.fsdecode(name))


@pytest.fixture(scope="module")
def archive(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[bytes, bytes]]:
    """A real run of the fake engine over the hostile names, then `site DIR` with no options."""
    top = tmp_path_factory.mktemp("media")
    library, out = top / "library", top / "out"
    made = write_library(library, NAMES)
    run_cli(prefect_api, "run", str(library), "--out", str(out), "--engine", "fake", "--canary", "off", "--no-vad")
    assert f"{len(NAMES)} players, media linked from {library.resolve()}" in site(out)
    return library, out, made


def test_site_with_no_options_plays_every_name_with_dir_as_the_web_root(
        archive: tuple[Path, Path, dict[bytes, bytes]]) -> None:
    _, out, made = archive
    with serve(out) as base:
        for name, data in made.items():
            page = page_name(source_key(name))
            media, track = player_urls(out / "site" / "files" / page, f"{base}/site/files/{page}")
            assert media is not None and media.startswith(f"{base}/site/media/"), (name, media)
            assert get(media) == (200, data), name
            assert track is not None and get(track)[0] == 200 and get(track)[1].startswith(b"WEBVTT"), name


def test_a_base_url_is_encoded_once_from_the_real_names_and_source_takes_over_again(
        archive: tuple[Path, Path, dict[bytes, bytes]]) -> None:
    library, out, made = archive
    with serve(library, raw_names=True) as media_server:  # decodes %XX to bytes, as nginx does
        assert "media from" in site(out, "--media-base-url", f"{media_server}/lib")
        hundred = (out / "site" / "files" / page_name(source_key(b"100%.wav"))).read_text(encoding="utf-8")
        assert f'src="{media_server}/lib/100%25.wav"' in hundred  # not 100%2525.wav
        latin = (out / "site" / "files" / page_name(source_key(b"caf\xe9 \xff.wav"))).read_text(encoding="utf-8")
        assert f'src="{media_server}/lib/caf%E9%20%FF.wav"' in latin
        assert not (out / "site" / "media").exists() or not any((out / "site" / "media").iterdir())
    with serve(library.parent, raw_names=True) as media_server:
        site(out, "--media-base-url", f"{media_server}/library")
        for name, data in made.items():
            page = page_name(source_key(name))
            media, _ = player_urls(out / "site" / "files" / page, f"http://x/site/files/{page}")
            assert media is not None and get(media) == (200, data), (name, media)
    # --source after a base URL: every page plays from site/media/ again (no need to delete the index)
    summary = site(out, "--source", str(library))
    assert re.search(r"[1-9]\d* pages written", summary) and "media linked from" in summary
    page = page_name(source_key(b"100%.wav"))
    media, _ = player_urls(out / "site" / "files" / page, f"http://x/site/files/{page}")
    assert media is not None and media.startswith("http://x/site/media/")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_every_player_loads_in_a_browser_and_a_dead_one_says_so(
        archive: tuple[Path, Path, dict[bytes, bytes]]) -> None:
    from playwright.sync_api import sync_playwright

    library, out, _ = archive
    site(out, "--source", str(library))
    with serve(out) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        for name in NAMES:
            page.goto(f"{base}/site/files/{page_name(source_key(name))}")
            page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=20_000)
            assert page.evaluate("document.getElementById('player').duration") == pytest.approx(0.5, abs=0.05)
            assert page.locator(".media-error").is_hidden()
        # The media moves away after the site was built: the player says it cannot play, and why.
        dead = library / "tab\there.wav"
        dead.rename(library / "moved.wav")
        try:
            page = browser.new_context().new_page()  # a fresh cache: the first visit never loaded this media
            page.goto(f"{base}/site/files/{page_name(source_key(b'tab' + bytes([9]) + b'here.wav'))}")
            page.wait_for_selector(".media-error:not([hidden])", timeout=20_000)
            shown = page.locator(".media-error").inner_text()
            assert shown.startswith("This media cannot be played (the file was not found") and "/site/media/" in shown
        finally:
            (library / "moved.wav").rename(dead)
        browser.close()


def test_a_file_gone_from_source_leaves_search_and_the_site(prefect_api: str, tmp_path: Path) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    write_library(library, [b"stays.wav", b"goes 100%.wav"])
    run_cli(prefect_api, "run", str(library), "--out", str(out), "--engine", "fake", "--canary", "off", "--no-vad")
    site(out)
    gone = source_key(b"goes 100%.wav")
    words = next(h["text"] for h in search_json(str(out), "clip", "--limit", "10") if h["source"] == gone)
    assert [h["source"] for h in search_json(str(out), str(words).split()[-1])] == [gone]
    (library / "goes 100%.wav").unlink()
    run_cli(prefect_api, "run", str(library), "--out", str(out), "--engine", "fake", "--canary", "off", "--no-vad")
    assert search_json(str(out), str(words).split()[-1]) == []  # its removed row takes it out of search
    assert [h["source"] for h in search_json(str(out), "clip")] == ["stays.wav"]
    summary = site(out)
    assert "1 files" in summary and "1 removed" in summary
    assert not (out / "site" / "files" / page_name(gone)).exists()
    assert sorted(p.name for p in (out / "site" / "media").iterdir()) == [
        page_name("stays.wav").removesuffix(".html") + ".wav"]
    assert "goes" not in (out / "site" / "index.html").read_text(encoding="utf-8")
