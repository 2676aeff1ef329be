"""`transcribe-all search` and `transcribe-all site`: find and browse what the runs transcribed.

Both refresh DIR's search index from the manifest first (only runs it has not read),
so they are always current and rebuild a missing or corrupt index by themselves.
Neither starts Prefect. Exit codes as for `run`: 0 done (a search with no match too),
2 a usage error (one line), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sqlite3
import sys
from dataclasses import asdict
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_archive_commands(subparsers: Any) -> None:
    """Add `search` and `site` to the CLI's subcommands."""
    search = subparsers.add_parser("search", help="full-text search over the latest transcript of every file")
    search.add_argument("dir", metavar="DIR", help="output folder or s3://BUCKET/PREFIX of earlier runs")
    search.add_argument("query", metavar="QUERY", help='words (all must match); "quoted words" match as a phrase; '
                        "a query starting with - goes after --: search DIR -- -refund")
    search.add_argument("--limit", type=_limit, default=20, metavar="N",
                        help=f"at most N hits (default 20, at most {MAX_LIMIT:,})")
    search.add_argument("--json", action="store_true", help="print a JSON array of hits")
    site = subparsers.add_parser("site", help="build the static site DIR/site/ (archive, file pages, runs)")
    site.add_argument("dir", metavar="DIR", help="output folder or s3://BUCKET/PREFIX of earlier runs")
    site.add_argument("--source", metavar="SOURCE",
                      help="the media folder the players play from, linked into DIR/site/media/ "
                           "(default: the last --source given, else the SOURCE of the newest run)")
    site.add_argument("--media-base-url", metavar="URL",
                      help="where SOURCE's files are served (http(s)://..., S3 or a CDN); --source replaces it")
    site.add_argument("--copy-media", action=argparse.BooleanOptionalAction, default=None,
                      help="copy media files into DIR/site/media/ instead of linking them (remembered; "
                           "for servers that do not follow symbolic links)")


MAX_LIMIT = 20_000  # tasks/output/search.py ranks at most RANK_WINDOW matches: more hits cannot exist


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text[:40]!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        shown = text if len(text) <= 40 else text[:20] + "…"
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_LIMIT:,}, got {shown}")
    return value


def leading_dash_hint(argv: list[str], message: str) -> str:
    """argparse's error for `search DIR -refund` (an unknown option, QUERY missing), with the way out."""
    if not argv or argv[0] != "search" or not ("QUERY" in message or "unrecognized arguments" in message):
        return message
    # `-refund` is a word; `--limt` is a mistyped option, which argparse's own message names well.
    dashed = [a for a in argv[1:] if a.startswith("-") and not a.startswith("--") and a != "-h"]
    if not dashed:
        return message
    word = dashed[0]
    typed = shlex.quote(word) if word.isprintable() else ascii(word)  # the line stays one line
    return (f"QUERY: {ascii(word) if not word.isprintable() else repr(word)} reads as an option; to search for "
            f"words that start with -, put the query after --: transcribe-all search DIR -- {typed}")


def run_archive_command(args: argparse.Namespace) -> int:
    """Run `search` or `site`; errors are one line on stderr."""
    try:
        _check(args)
    except ValueError as error:
        print(f"transcribe-all: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    from pyarrow import ArrowException

    from tasks.output.search import QueryError
    from tasks.output.site import SiteError

    try:
        return _search(args) if args.command == "search" else _site(args)
    except QueryError as error:
        print(f"transcribe-all: error: QUERY: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, SiteError, RuntimeError, sqlite3.DatabaseError, ArrowException) as error:
        print(f"transcribe-all: {args.command} failed: {error}", file=sys.stderr)
        return EXIT_FAILED


def _check(args: argparse.Namespace) -> None:
    from pathlib import Path

    from tasks.locations import location_kind
    from tasks.output.links import check_base_url

    if location_kind(args.dir, "DIR") == "local" and not (Path(args.dir) / "manifest").is_dir():
        raise ValueError(f"DIR: no manifest/ folder in {args.dir} (give the --out folder of a run)")
    if args.command == "site":
        try:
            check_base_url(args.media_base_url)
        except ValueError:
            raise ValueError(f"--media-base-url: expected http(s)://HOST[/PATH], got {args.media_base_url!r}") from None
        if args.source and "://" not in args.source and not Path(args.source).is_dir():
            raise ValueError(f"--source: not a folder: {args.source}")


def _search(args: argparse.Namespace) -> int:
    from tasks.output.archive_store import refresh_index
    from tasks.output.layout import output_layout
    from tasks.output.search import fts_query, search

    fts_query(args.query)  # a query with no words is a usage error before any work
    db_path, _ = refresh_index(output_layout(args.dir))
    hits = search(db_path, args.query, args.limit)
    if args.json:
        print(json.dumps([{**asdict(hit), "text": hit.plain_text()} for hit in hits], indent=1))
    else:
        _print_table(hits)
    return EXIT_OK


def _print_table(hits: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from tasks.output.search import MARK_CLOSE, MARK_OPEN
    from tasks.output.site_pages import clock, display_name

    console = Console(highlight=False, soft_wrap=False)
    if not hits:
        console.print("no match")
        return
    table = Table("file", "at", "text", "score", show_lines=False)
    for hit in hits:
        text = Text()
        for n, piece in enumerate(hit.text.replace(MARK_CLOSE, MARK_OPEN).split(MARK_OPEN)):
            text.append(piece, style="bold reverse" if n % 2 else "")  # odd pieces sit between the markers
        table.add_row(Text(display_name(hit.source)), f"{clock(hit.start)}–{clock(hit.end)}", text,
                      f"{hit.score:.2f}")
    console.print(table)


def _site(args: argparse.Namespace) -> int:
    from tasks.output.archive import local_source_root, refresh_archive

    source = local_source_root(args.source) if args.source else None
    done = refresh_archive(args.dir, site=True, source=source, media_base_url=args.media_base_url,
                           copy_media=args.copy_media)
    assert done.site is not None
    print(f"site: {done.site.files:,} files, {done.site.pages_written:,} pages written, "
          f"{done.site.pages_removed:,} removed, {done.site.media} → {args.dir.rstrip('/')}/site/index.html")
    return EXIT_OK
