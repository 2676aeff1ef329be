"""`python -m http.server` plus byte ranges: browsers seek in media only when the server answers Range.

The standard library's server ignores `Range` and always sends the whole file, so a player on a page
it serves cannot seek (Chromium snaps `currentTime` back to 0). nginx, caddy, S3 and CDNs answer ranges.
Usage: python -m tests.range_server PORT DIRECTORY
"""

from __future__ import annotations

import os
import re
import sys
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class RangeHandler(SimpleHTTPRequestHandler):
    def send_head(self):  # type: ignore[no-untyped-def]
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if not wanted or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        start, end = int(wanted[1]), min(int(wanted[2] or size - 1), size - 1)
        if start >= size:
            self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            return None
        handle = open(path, "rb")  # noqa: SIM115 - the base class closes it after copying
        handle.seek(start)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return _Limited(handle, end - start + 1)

    def log_message(self, format: str, *args: object) -> None:
        return None


class _Limited:
    """A file object that reads at most `left` bytes (copyfile reads to EOF)."""

    def __init__(self, handle, left: int) -> None:  # type: ignore[no-untyped-def]
        self._handle, self._left = handle, left

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._handle.read(n)
        self._left -= len(data)
        return bytes(data)

    def close(self) -> None:
        self._handle.close()


if __name__ == "__main__":
    port, directory = int(sys.argv[1]), sys.argv[2]
    ThreadingHTTPServer(("127.0.0.1", port), partial(RangeHandler, directory=directory)).serve_forever()
