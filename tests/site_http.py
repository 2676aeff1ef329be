"""Serve a built site as a user would, and read its players' URLs back out of the pages.

`serve(DIR)` is the README's recipe, `python -m http.server -d DIR`, in a thread: the standard
library's server, unchanged. `serve(root, raw_names=True)` decodes `%XX` to bytes, as nginx
does (http.server decodes to UTF-8 text and cannot open a name that is not UTF-8): the model
of a server or CDN behind `--media-base-url`.
"""

from __future__ import annotations

import html
import os
import posixpath
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urljoin

PLAYER = re.compile(r'<(?:audio|video) id="player"[^>]* src="([^"]*)"')
TRACK = re.compile(r'<track [^>]*src="([^"]*)"')


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _RawNames(_Quiet):
    def translate_path(self, path: str) -> str:
        raw = unquote_to_bytes(path.split("?", 1)[0].split("#", 1)[0])
        words = [w for w in posixpath.normpath(raw).split(b"/") if w and w not in (b".", b"..")]
        return os.fsdecode(os.path.join(os.fsencode(self.directory), *words))


@contextmanager
def serve(directory: Path, raw_names: bool = False) -> Iterator[str]:
    """http://127.0.0.1:PORT serving `directory` as its root, for the block."""
    handler = partial(_RawNames if raw_names else _Quiet, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, b""


def player_urls(page: Path, page_url: str) -> tuple[str | None, str | None]:
    """The absolute URLs of a file page's player and captions track (None where it has none)."""
    text = page.read_text(encoding="utf-8")
    media, track = PLAYER.search(text), TRACK.search(text)
    return (urljoin(page_url, html.unescape(media[1])) if media else None,
            urljoin(page_url, html.unescape(track[1])) if track else None)
