"""The site's HTML pages as plain functions of typed rows. Every piece of text goes through `_e`.

Sources are untrusted: names can hold `<script>`, quotes or bytes that are not UTF-8 (a
lone surrogate in Python). `display_name` shows such bytes as `\\xNN`; links are
percent-encoded from the raw bytes, so they still reach the file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".ogv")
LIST_PAGE_ROWS = 500


@dataclass(frozen=True, slots=True)
class FileEntry:
    source: str
    status: str
    error: str | None
    duration_s: float | None
    language: str | None
    flags: tuple[str, ...]
    content_id: int | None  # None: no transcript (failed, or never transcribed)
    transcript_path: str | None
    page: str  # file name of its page under site/files/


def _e(text: object) -> str:
    return escape(display_name(str(text)), quote=True)


def display_name(text: str) -> str:
    """Text for people: bytes that are not UTF-8 shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def url_path(path: str) -> str:
    """A relative URL for a path with any characters, from its raw bytes."""
    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def page_name(source: str) -> str:
    """`<slug of the path>-<8 hex of its hash>.html`: recognisable, unique, safe on any file system."""
    raw = source.encode("utf-8", "surrogateescape")
    ascii_name = unicodedata.normalize("NFKD", raw.decode("utf-8", "replace")).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-").lower()[:80] or "file"
    return f"{slug}-{hashlib.sha256(raw).hexdigest()[:8]}.html"


def shown_status(entry: FileEntry) -> str:
    """A file skipped by its latest run (unchanged) shows as ok: its transcript is the earlier run's."""
    return "ok" if entry.status == "skipped" and entry.content_id is not None else entry.status


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def layout(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)}</title><link rel="stylesheet" href="{up}assets/site.css">'
            f'<script src="{up}assets/site.js" defer></script></head><body>'
            f'<header><nav><a href="{up}index.html">Archive</a><a href="{up}runs.html">Runs</a></nav></header>'
            f"<main>{body}</main></body></html>\n")


def search_form(action: str) -> str:
    return (f'<form class="search" action="{action}" method="get" role="search">'
            '<input name="q" type="search" placeholder="Search everything that was said" aria-label="search">'
            '<button type="submit">Search</button></form>')


def listing_page(entries: Sequence[FileEntry], page: int, pages: int, total: int) -> str:
    """index.html (page 1, with live search) or list/N.html: one slice of the archive, in source order."""
    depth = 0 if page == 1 else 1
    up = "../" * depth
    rows = "".join(
        f'<tr><td class="src"><a href="{up}files/{url_path(f.page)}">{_e(f.source)}</a></td>'
        f"<td>{clock(f.duration_s)}</td><td>{_e(f.language or '')}</td>"
        f'<td class="status-{_e(f.status)}" title="{_e(f.error or "")}">{_e(shown_status(f))}</td>'
        f"<td>{''.join(f'<span class=flag>{_e(flag)}</span>' for flag in f.flags)}</td></tr>"
        for f in entries)
    def link(n: int) -> str:
        return f"{up}index.html" if n == 1 else f"{up}list/{n}.html"
    pager = " ".join(filter(None, [
        f'<a href="{link(page - 1)}">← previous</a>' if page > 1 else "",
        f"page {page} of {pages}",
        f'<a href="{link(page + 1)}">next →</a>' if page < pages else ""]))
    results = '<div id="results" aria-live="polite"></div>' if page == 1 else ""
    body = (f"<h1>Archive</h1>{search_form(f'{up}index.html')}{results}"
            f'<p class="meta">{total:,} files</p><div class="pager">{pager}</div>'
            "<table><thead><tr><th>file</th><th>duration</th><th>language</th><th>status</th><th>flags</th></tr>"
            f'</thead><tbody>{rows}</tbody></table><div class="pager">{pager}</div>')
    return layout("Archive" if page == 1 else f"Archive, page {page}", body, depth)


def file_page(entry: FileEntry, segments: Sequence[tuple[float, float, str]], media_url: str | None,
              vtt_url: str | None, note: str | None = None) -> str:
    """One file: the player, its captions track and the transcript; every segment's time seeks the player.

    Without a player, `note` says why. A player whose media fails to load says so in `.media-error`
    (site.js fills it from the element's `error` event).
    """
    player = f'<p class="note">{_e(note)}</p>' if note else ""
    if media_url is not None:
        tag = "video" if entry.source.lower().endswith(VIDEO_EXTENSIONS) else "audio"
        track = (f'<track kind="captions" src="{_e(vtt_url)}" srclang="{_e(entry.language or "en")}" '
                 'label="transcript" default>') if vtt_url else ""
        player = (f'<{tag} id="player" controls preload="metadata" src="{_e(media_url)}">{track}</{tag}>'
                  '<p class="media-error" role="alert" hidden></p>')
    items = "".join(
        f'<li data-start="{start:.3f}" data-end="{end:.3f}"><a class="t" href="#t={start:.3f}" data-pagefind-ignore '
        f'data-start="{start:.3f}">{clock(start)}</a><span>{_e(text)}</span></li>'
        for start, end, text in segments)
    flags = "".join(f"<span class=flag>{_e(flag)}</span>" for flag in entry.flags)
    error = f'<p class="status-failed">{_e(entry.error)}</p>' if entry.status == "failed" else ""
    body = (f'{search_form("../index.html")}<article data-pagefind-body>'
            f'<h1 data-pagefind-meta="title">{_e(entry.source)}</h1>'
            f'<p class="meta" data-pagefind-ignore>{clock(entry.duration_s)} · '
            f'{_e(entry.language or "language unknown")}'
            f" · {_e(shown_status(entry))} {flags}</p>{error}<div data-pagefind-ignore>{player}</div>"
            f'<ol class="segments">{items}</ol></article>')
    return layout(entry.source, body, 1)


def runs_page(table: Sequence[dict[str, object]], svgs: Sequence[str]) -> str:
    """runs.html: the charts, then the table (newest first)."""
    if not table:
        return layout("Runs", "<h1>Runs</h1><p>No run has finished yet.</p>", 0)
    columns = list(table[0])
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{_e(_cell(row[c]))}</td>" for c in columns) + "</tr>" for row in table)
    body = (f"<h1>Runs</h1><p class=\"meta\">The last {len(table)} runs, oldest on the left.</p>"
            f'<div class="charts">{"".join(svgs)}</div><h2>Table</h2>'
            f'<div class="table-scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')
    return layout("Runs", body, 0)


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
