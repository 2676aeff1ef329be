"""Regenerate docs/site-*.png: three real runs over examples/library, the site, headless Chromium.

    python docs/make_screenshots.py     # ~3 min on 2 cores; needs Debian's chromium and playwright

Runs: the default settings, then beam 2 (a new config: every file redone), then a rerun with
nothing to do, so the run page has real figures. Served by tests/range_server.py (seekable media).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = {"site-index.png": "index.html?q=quick", "site-runs.png": "runs.html"}


def cli(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "transcribe_all.cli", *argv], cwd=ROOT, check=False, timeout=900)


def main() -> None:
    from playwright.sync_api import sync_playwright

    from tasks.output.site_pages import page_name

    top = Path(tempfile.mkdtemp(prefix="site-shots-"))
    media, out = top / "media", top / "out"
    shutil.copytree(ROOT / "examples" / "library", media)
    for extra in ([], ["--beam-size", "2"], []):
        cli("run", str(media), "--out", str(out), *extra)
    cli("site", str(out), "--source", str(media))
    server = subprocess.Popen([sys.executable, "-m", "tests.range_server", "8765", str(top)], cwd=ROOT)
    shots = {**SHOTS, "site-file.png": f"files/{page_name('meetings/standup.wav')}#t=1.000"}
    try:
        time.sleep(1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            for name, path in shots.items():
                page.goto(f"http://127.0.0.1:8765/out/site/{path}")
                page.wait_for_timeout(2500)
                page.screenshot(path=str(ROOT / "docs" / name), full_page=name == "site-runs.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
