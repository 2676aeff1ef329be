"""After every run: update the search index, rebuild the site when asked, publish run history.

The index update reads only the runs it has not seen (tasks/output/search.py), so a run
that transcribed nothing costs a directory listing. The site plays media from the SOURCE
the newest run recorded in its runs row, unless `site --source` or `--media-base-url`
said otherwise (those are kept in the index), so `transcribe-all site DIR` rebuilds the
same site the nightly run does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.artifacts import create_link_artifact, create_table_artifact

from tasks.locations import location_kind
from tasks.output.archive_store import archive_root, refresh_index, runs_folder, ship
from tasks.output.history import HISTORY_RUNS, read_runs, table_rows
from tasks.output.layout import OutputLayout, output_layout
from tasks.output.parts import DELETE, CorruptPartError, naming_unreadable
from tasks.output.search import IndexUpdate, connect
from tasks.output.site import SITE_DIR, SiteBuild, build_site, publish_site
from tasks.output.site_media import MediaLinks
from tasks.output.storage import LocalOutput


@dataclass(frozen=True, slots=True)
class ArchiveRefresh:
    index: IndexUpdate
    site: SiteBuild | None
    runs: list[dict[str, object]]  # the last runs, oldest first


def refresh_archive(out: str, *, site: bool = False, source: str | None = None,
                    media_base_url: str | None = None, copy_media: bool | None = None) -> ArchiveRefresh:
    """Bring DIR's index up to date; with `site`, rebuild DIR/site/ (uploaded for an s3:// DIR)."""
    layout = output_layout(out)
    db_path, update = refresh_index(layout)
    folder = runs_folder(layout)
    runs = _read_runs(folder)
    built = None
    if site:
        links = site_links(db_path, SiteSettings(source, media_base_url, copy_media), last_run_source(folder),
                           local_dir=_is_local(layout))
        built = build_archive_site(layout, db_path, runs, links)
    return ArchiveRefresh(update, built, runs)


def build_archive_site(layout: OutputLayout, db_path: Path, runs: list[dict[str, object]],
                       links: MediaLinks) -> SiteBuild:
    root = archive_root(layout)
    built = build_site(db_path, root / SITE_DIR, links, runs)
    if not _is_local(layout):
        publish_site(lambda paths: ship(layout, paths), layout.delete, root, root / SITE_DIR)
    return built


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """What a `site` command or a run gave; None: keep what the index remembers."""

    source: str | None = None  # an absolute local SOURCE; replaces a remembered --media-base-url
    media_base_url: str | None = None
    copy_media: bool | None = None


def site_links(db_path: Path, given: SiteSettings, run_source: str | None, local_dir: bool) -> MediaLinks:
    """Where the players' media comes from: a base URL given now or before, else a SOURCE given now or
    before (`--source`), else the SOURCE the newest run scanned. Given settings are remembered."""
    with connect(db_path) as db, db:
        if given.source is not None:  # a SOURCE given now means: play from it, not from an older base URL
            db.execute("DELETE FROM meta WHERE key = 'site_media_base_url'")
        for key, value in (("site_source", given.source), ("site_media_base_url", given.media_base_url),
                           ("site_copy_media", None if given.copy_media is None else str(int(given.copy_media)))):
            if value is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        kept = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'site_%'").fetchall())
    source = kept.get("site_source") or run_source
    local = source if source and "://" not in source else None
    # A local SOURCE's keys are `%XX`-encoded names; an S3 SOURCE's are its raw keys.
    encoded = source is None or local is not None
    # An s3:// DIR's site is uploaded: links into a local folder would not be.
    return MediaLinks(local if local_dir else None, kept.get("site_media_base_url"), encoded,
                      kept.get("site_copy_media") == "1")


def last_run_source(folder: Path) -> str | None:
    """The SOURCE the newest run that recorded one scanned (runs rows before this column have none)."""
    parts = sorted((p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))), reverse=True) \
        if folder.is_dir() else []
    for part in parts:
        try:
            if "source" not in pq.read_schema(part).names:
                continue
            found = pq.read_table(part, columns=["source"]).column("source").to_pylist()
        except (pa.ArrowException, OSError) as error:
            raise CorruptPartError(part, error, DELETE) from None
        if found and found[0]:
            return str(found[0])
    return None


def recorded_source(source: str) -> str:
    """SOURCE as a run records it: a local folder made absolute, a URI as it is."""
    return str(Path(source).resolve()) if location_kind(source, "source") == "local" else source


def local_source_root(source: str) -> str | None:
    """An absolute SOURCE folder for the site's media; None for s3:// or a library block."""
    return str(Path(source).resolve()) if location_kind(source, "source", blocks=True) == "local" else None


@task(name="refresh-archive", retries=1, retry_delay_seconds=[10])
def refresh_archive_task(out: str, base_url: str | None = None, site: bool = False,
                         media_base_url: str | None = None) -> ArchiveRefresh:
    """Search index (always), site (when asked), run history and site link in the Prefect UI.

    The site's SOURCE is the one this run recorded in its runs row (`last_run_source`)."""
    done = refresh_archive(out, site=site, media_base_url=media_base_url)
    if done.runs:
        create_table_artifact(key="transcribe-run-history", table=table_rows(done.runs),
                              description=f"The last {len(done.runs)} runs, newest first")
    if base_url and (site or _has_site(out)):
        create_link_artifact(key="transcribe-archive-site", link=f"{base_url}/outputs/{SITE_DIR}/index.html",
                             link_text="Search and browse the archive", description="The archive's static site")
    return done


def _read_runs(folder: Path) -> list[dict[str, object]]:
    with naming_unreadable(lambda: sorted(folder.glob("*.parquet")), ["run_id"], DELETE):
        return read_runs(folder, HISTORY_RUNS)


def _is_local(layout: OutputLayout) -> bool:
    return isinstance(layout.store, LocalOutput)


def _has_site(out: str) -> bool:
    return location_kind(out, "out") == "local" and (Path(out) / SITE_DIR / "index.html").is_file()
