"""Open the `MediaSource` a SOURCE string names: a local folder or an s3:// prefix."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tasks.locations import location_kind
from tasks.media.sources import MediaSource

if TYPE_CHECKING:
    from tasks.media.s3 import S3Access


def open_source(
    uri: str, exclude: tuple[str, ...] = (), access: S3Access | None = None, follow_links_outside: bool = False
) -> MediaSource:
    """The MediaSource for a SOURCE argument: a local folder or `s3://bucket/prefix`.

    `exclude` lists output roots (paths or s3:// URIs) to leave out of the listing.
    """
    if location_kind(uri, "source") == "s3":
        from tasks.media.s3 import S3Access, require_aws

        require_aws()
        from tasks.media.sources_s3 import S3Source

        remote_outputs = tuple(e for e in exclude if location_kind(e, "out") == "s3")
        return S3Source(uri, access or S3Access.from_settings(), remote_outputs)
    from tasks.media.local import LocalSource

    return LocalSource(uri, tuple(Path(e) for e in exclude if location_kind(e, "out") == "local"), follow_links_outside)
