"""After every run: update the search index, rebuild the site when asked, publish run history.

The index update reads only the runs it has not seen (tasks/output/search.py), so a run
that transcribed nothing costs a directory listing. The site's SOURCE (for relative
media links) and media base URL are kept in the index, so `transcribe-all site DIR`
rebuilds the same site the nightly run does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_table_artifact

from tasks.locations import location_kind
from tasks.output.archive_store import archive_root, refresh_index, runs_folder, ship
from tasks.output.history import HISTORY_RUNS, read_runs, table_rows
from tasks.output.layout import OutputLayout, output_layout
from tasks.output.search import IndexUpdate, connect
from tasks.output.site import SITE_DIR, MediaLinks, SiteBuild, build_site, publish_site
from tasks.output.storage import LocalOutput


@dataclass(frozen=True, slots=True)
class ArchiveRefresh:
    index: IndexUpdate
    site: SiteBuild | None
    runs: list[dict[str, object]]  # the last runs, oldest first


def refresh_archive(out: str, *, site: bool = False, source: str | None = None,
                    media_base_url: str | None = None) -> ArchiveRefresh:
    """Bring DIR's index up to date; with `site`, rebuild DIR/site/ (uploaded for an s3:// DIR)."""
    layout = output_layout(out)
    db_path, update = refresh_index(layout)
    runs = read_runs(runs_folder(layout), HISTORY_RUNS)
    built = build_archive_site(layout, db_path, runs, source, media_base_url) if site else None
    return ArchiveRefresh(update, built, runs)


def build_archive_site(layout: OutputLayout, db_path: Path, runs: list[dict[str, object]], source: str | None,
                       media_base_url: str | None) -> SiteBuild:
    links = _site_links(db_path, source, media_base_url)
    root = archive_root(layout)
    built = build_site(db_path, root / SITE_DIR, links, runs)
    if not isinstance(layout.store, LocalOutput):
        publish_site(lambda paths: ship(layout, paths), layout.delete, root, root / SITE_DIR)
    return built


def _site_links(db_path: Path, source: str | None, media_base_url: str | None) -> MediaLinks:
    """The given settings, remembered in the index; missing ones come from the last build."""
    with connect(db_path) as db, db:
        for key, value in (("site_source", source), ("site_media_base_url", media_base_url)):
            if value is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        kept = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'site_%'").fetchall())
    return MediaLinks(kept.get("site_source"), kept.get("site_media_base_url"))


def local_source_root(source: str) -> str | None:
    """An absolute SOURCE folder for relative media links; None for s3:// or a library block."""
    return str(Path(source).resolve()) if location_kind(source, "source", blocks=True) == "local" else None


@task(name="refresh-archive", retries=1, retry_delay_seconds=[10])
def refresh_archive_task(out: str, source: str | None = None, base_url: str | None = None, site: bool = False,
                         media_base_url: str | None = None) -> ArchiveRefresh:
    """Search index (always), site (when asked), run history and site link in the Prefect UI."""
    done = refresh_archive(out, site=site, source=local_source_root(source) if source else None,
                           media_base_url=media_base_url)
    if done.runs:
        create_table_artifact(key="transcribe-run-history", table=table_rows(done.runs),
                              description=f"The last {len(done.runs)} runs, newest first")
    if base_url and (site or _has_site(out)):
        create_link_artifact(key="transcribe-archive-site", link=f"{base_url}/outputs/{SITE_DIR}/index.html",
                             link_text="Search and browse the archive", description="The archive's static site")
    return done


def _has_site(out: str) -> bool:
    return location_kind(out, "out") == "local" and (Path(out) / SITE_DIR / "index.html").is_file()
