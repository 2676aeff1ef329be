"""Links from manifest rows to transcript files, for outputs served as static files.

With a base URL, a row's `transcript_url` is `{base_url}/outputs/{transcript_path}`:
serve DIR under `/outputs/` (README: `python -m http.server`, nginx `alias`). Every path
segment is percent-encoded on its own (`/` only between segments), and the base URL is
checked strictly: these links end up in HTML and spreadsheets, so nothing raw gets in.
No Prefect or pyarrow import here: the CLI checks `--base-url` before Prefect starts.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, urlsplit

_FORBIDDEN = set("\"'`<>\\{}|^")


def transcript_url(base_url: str | None, transcript_path: str | None) -> str | None:
    """`{base_url}/outputs/{transcript_path}`, each segment percent-encoded; None when either is missing."""
    if not base_url or not transcript_path:
        return None
    path = "/".join(quote(segment, safe="") for segment in transcript_path.split("/"))
    return f"{base_url.rstrip('/')}/outputs/{path}"


def check_base_url(base_url: str | None) -> str | None:
    """A usable base URL or a one-line error naming the parameter.

    Only http(s)://HOST[:PORT][/PATH]: no credentials, query or fragment; no quotes, spaces,
    control characters, backslashes or `<>`.
    """
    if base_url is None:
        return None
    shown = ascii(base_url)  # the error line stays one line whatever the value holds
    bad = sorted({ch for ch in base_url if ch in _FORBIDDEN or ch.isspace() or unicodedata.category(ch)[0] == "C"})
    if bad:
        raise ValueError(f"base_url: quotes, spaces, control characters and {{}}<>\\|^` are not allowed, got {shown}")
    parsed = urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise ValueError(f"base_url: expected http(s)://HOST[/PATH], got {shown}")
    if "@" in parsed.netloc:
        raise ValueError(f"base_url: credentials (user:password@) are not allowed in a public link, got {shown}")
    return base_url.rstrip("/")
