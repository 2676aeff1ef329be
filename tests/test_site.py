"""The static site in a real browser: Debian's Chromium, headless, driven by Playwright, over http.server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tasks.output.archive import refresh_archive
from tasks.output.metrics import RunMetrics, write_run_row
from tasks.output.site_pages import page_name
from tests.archive_factory import Row, write_run
from tests.conftest import _free_port, _wait_for

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = "x/<img src=x onerror=window.__pwned=1>\"q'.wav"
RUNS = ["20260101T020000Z-aaaa1111", "20260102T020000Z-bbbb2222", "20260103T020000Z-cccc3333"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")


def run_row(run_id: str, day: int, wer: float, failed: int) -> RunMetrics:
    start = datetime(2026, 1, day, 2, tzinfo=UTC)
    return RunMetrics(run_id, start, start + timedelta(minutes=30), 10, 8, failed, 10 - 8 - failed, 3600.0 * day,
                      1800.0, 2.0 * day, 1.0, 0.0, 1700.0, 50.0, "g6.xlarge", 1, 0.5, 0.805, 0.374, 0.4, 0.19,
                      0.4 / day, 0.19 / day, "ctranslate2", "tiny.en", "cfg1", files_flagged=day,
                      canary_wer=wer, canary_threshold=0.35)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, example_library: Path) -> Iterator[tuple[str, Path]]:
    """media/ (a copy of two example clips) and out/ side by side, served from their parent."""
    top = tmp_path_factory.mktemp("served")
    media, out = top / "media", top / "out"
    for clip in ("meetings/standup.wav", "podcasts/interview.mp4"):
        (media / clip).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(example_library / clip, media / clip)
    write_run(out, RUNS[0], [
        Row("meetings/standup.wav", [(0.0, 1.5, "The quick brown fox"), (1.5, 3.4, "jumps over the lazy dog.")],
            duration_s=3.44),
        Row("podcasts/interview.mp4", [(0.0, 2.0, "A zebra crossing at noon")], flags=("chars_per_second_low",)),
        Row(HOSTILE, [(0.0, 1.0, "<script>window.__pwned=2</script> hostile lighthouse")]),
        Row("broken.mp3", status="failed"),
    ])
    for n, run_id in enumerate(RUNS):
        write_run_row(out, replace(run_row(run_id, n + 1, 0.2 + 0.1 * n, n), run_id=run_id))
    refresh_archive(str(out), site=True, source=str(media))
    port = _free_port()
    # http.server plus Range: without ranges no browser can seek (tests/range_server.py).
    server = subprocess.Popen([sys.executable, "-m", "tests.range_server", str(port), str(top)],
                              cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait_for(f"http://127.0.0.1:{port}/out/site/index.html", server)
        yield f"http://127.0.0.1:{port}/out/site", out
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--autoplay-policy=no-user-gesture-required"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    # Every seek the player completes, with where it landed: proof of a seek, not of playback reaching it.
    page.add_init_script("window.__seeks = []; document.addEventListener('seeked', e => "
                         "window.__seeks.push(e.target.currentTime), true);")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    assert dialogs == []
    page.close()


def test_a_shared_search_link_runs_on_load(served: tuple[str, Path], page: Any) -> None:
    base, _ = served
    page.goto(f"{base}/index.html?q=zebra")
    page.wait_for_selector("#results .hit a", timeout=20_000)
    links = page.locator("#results .hit a")
    assert links.all_inner_texts() == ["podcasts/interview.mp4"]
    assert page.input_value("input[name=q]") == "zebra"
    assert "zebra" in page.locator("#results .hit mark").first.inner_text().lower()
    links.first.click()
    page.wait_for_selector("video#player", state="attached")  # an .mp4 gets a video player
    assert page.url.endswith("/files/" + page_name("podcasts/interview.mp4"))


def test_the_listing_shows_every_file_with_status_and_flags(served: tuple[str, Path], page: Any) -> None:
    base, _ = served
    page.goto(f"{base}/index.html")
    rows = page.locator("tbody tr")
    assert rows.count() == 4
    text = page.locator("tbody").inner_text()
    assert "broken.mp3" in text and "failed" in text and "chars_per_second_low" in text and "0:03" in text


def test_clicking_a_segment_time_seeks_the_player(served: tuple[str, Path], page: Any) -> None:
    base, _ = served
    page.goto(f"{base}/files/{page_name('meetings/standup.wav')}")
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=20_000)
    assert page.evaluate("document.getElementById('player').currentTime") == 0
    page.locator("a.t").nth(1).click()
    page.wait_for_function("window.__seeks.length > 0", timeout=10_000)
    assert page.evaluate("window.__seeks")[0] == pytest.approx(1.5, abs=0.05)
    assert page.url.endswith("#t=1.500")
    track = page.locator("track").get_attribute("src")
    assert track == "../../transcripts/meetings/standup.wav.vtt"
    assert page.locator("ol.segments li").all_inner_texts()[0].endswith("The quick brown fox")


def test_a_page_opened_at_a_time_starts_there(served: tuple[str, Path], page: Any) -> None:
    base, _ = served
    page.goto(f"{base}/files/{page_name('meetings/standup.wav')}#t=2.000")
    page.wait_for_function("window.__seeks.length > 0", timeout=20_000)
    assert page.evaluate("window.__seeks")[0] == pytest.approx(2.0, abs=0.05)
    assert page.evaluate("document.getElementById('player').paused")  # opening a link does not start playback


def test_the_runs_page_shows_its_charts(served: tuple[str, Path], page: Any) -> None:
    base, _ = served
    page.goto(f"{base}/runs.html")
    charts = page.locator("svg.chart")
    assert charts.count() == 5
    titles = page.locator("svg.chart > title").all_text_contents()
    assert titles == ["Audio transcribed", "Speed", "Cost per audio hour", "Canary WER", "Failed and flagged files"]
    assert page.locator("svg.chart").nth(0).locator("rect").count() >= 3  # a bar per run (+ legend)
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100  # drawn, not an empty element
    assert page.locator("tbody tr").count() == 3


def test_hostile_names_and_text_stay_text(served: tuple[str, Path], page: Any) -> None:
    base, out = served
    page.goto(f"{base}/index.html?q=lighthouse")
    page.wait_for_selector("#results .hit a", timeout=20_000)
    assert page.locator("#results .hit a").inner_text() == HOSTILE
    page.locator("#results .hit a").click()
    page.wait_for_selector("ol.segments li")
    assert page.locator("h1").inner_text() == HOSTILE
    assert "<script>window.__pwned=2</script>" in page.locator("ol.segments").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0 and page.locator("main script").count() == 0
    assert (out / "site" / "files" / page_name(HOSTILE)).name.startswith("x-img-src-x-onerror-window-pwned-1-q-wav-")


@pytest.mark.parametrize("width", [1280, 700, 380])
def test_the_runs_table_scrolls_in_its_box_instead_of_running_off_the_page(served: tuple[str, Path], browser: Any,
                                                                           width: int) -> None:
    base, _ = served
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{base}/runs.html")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing runs off the page
    box = page.locator(".table-scroll")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")  # 18 columns: the box scrolls sideways
    assert box.evaluate("b => getComputedStyle(b).overflowX") == "auto"
    labels = page.locator("svg.chart").first.locator("text.tick").all_text_contents()
    assert "01-03 02:00:00" in labels  # runs are told apart to the second (tasks/output/history.py)
    page.close()
