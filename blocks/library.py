"""MediaLibrary block: where a library's media lives and how to reach it, editable in the Prefect UI.

The block holds no secret: S3 credentials stay in a prefect-aws `AwsCredentials`
block that this one names, so they are stored encrypted by Prefect, shown masked,
and never appear in this block, its logs or a flow run's parameters.
"""

from __future__ import annotations

from typing import cast

from prefect.blocks.core import Block
from pydantic import Field, field_validator

from tasks.locations import location_kind
from tasks.media.library import open_source
from tasks.media.s3 import S3Access, is_s3
from tasks.media.sources import MediaSource

LIBRARY_PREFIX = "media-library/"


class MediaLibrary(Block):
    """A media library: a folder on the workers, or an S3 prefix plus the credentials to list and read it."""

    _block_type_name = "Media Library"
    _block_type_slug = "media-library"
    _description = "A media folder or s3://bucket/prefix to transcribe, and how workers reach it."

    source: str = Field(
        description="Folder path (as the workers see it) or s3://BUCKET/PREFIX of the media files."
    )
    aws_credentials_block: str | None = Field(
        default=None,
        description="Name of a saved prefect-aws 'AWS Credentials' block for s3:// sources;"
        " empty = the worker's default AWS chain (environment, profile, instance role).",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint such as MinIO (http(s)://HOST:PORT); empty = AWS S3.",
    )

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        location_kind(value, "source")  # a folder or s3://BUCKET/PREFIX, else a one-line ValueError
        return value

    def s3_access(self) -> S3Access:
        return S3Access(self.aws_credentials_block, self.endpoint_url)

    def open(self) -> MediaSource:
        """The library as a MediaSource (S3 with this block's credentials)."""
        return open_source(self.source, access=self.s3_access())


def resolve_library(source: str) -> tuple[str, S3Access | None]:
    """`media-library/NAME` → the saved block's location and S3 access; anything else as it is.

    The access holds only the credentials block's name: workers load the secret themselves.
    """
    if not source.startswith(LIBRARY_PREFIX):
        return source, None
    name = source.removeprefix(LIBRARY_PREFIX)
    try:
        library = cast(MediaLibrary, MediaLibrary.load(name))  # sync context: the block, not a coroutine
    except ValueError as error:
        hint = "save one, or pass a folder or an s3:// URI"
        raise ValueError(f"source: no MediaLibrary block named {name!r}; {hint}") from error
    return library.source, library.s3_access() if is_s3(library.source) else None
