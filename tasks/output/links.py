"""Links from manifest rows to transcript files, for outputs served as static files.

With a base URL, a row's `transcript_url` is `{base_url}/outputs/{transcript_path}`:
serve DIR under `/outputs/` (README: `python -m http.server`, nginx `alias`).
No Prefect or pyarrow import here: the CLI checks `--base-url` before Prefect starts.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit


def transcript_url(base_url: str | None, transcript_path: str | None) -> str | None:
    """`{base_url}/outputs/{transcript_path}`, percent-encoded; None when either is missing."""
    if not base_url or not transcript_path:
        return None
    return f"{base_url.rstrip('/')}/outputs/{quote(transcript_path)}"


def check_base_url(base_url: str | None) -> str | None:
    """A usable base URL or a one-line error naming the parameter."""
    if base_url is None:
        return None
    parsed = urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
        raise ValueError(f"base_url: expected http(s)://HOST[/PATH], got {base_url!r}")
    return base_url.rstrip("/")
