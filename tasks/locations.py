"""What a SOURCE or DIR string names: a local folder, an s3:// prefix, or a saved MediaLibrary block.

The one place that tells them apart; sources, outputs, the CLI and the run
configuration all ask here. No heavy imports: the CLI checks before Prefect starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

S3_SCHEME = "s3://"
LIBRARY_PREFIX = "media-library/"  # a saved MediaLibrary block, by name (blocks/library.py)

Kind = Literal["local", "s3", "library"]


def location_kind(value: str, name: str, blocks: bool = False) -> Kind:
    """The kind of `value`, or a one-line ValueError naming the parameter `name`."""
    if blocks and value.startswith(LIBRARY_PREFIX):
        return "library"
    if value.startswith(S3_SCHEME):
        from tasks.media.s3 import parse_s3_uri

        parse_s3_uri(value, name)
        return "s3"
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise ValueError(f"{name}: {scheme}:// is not supported (use a folder or s3://BUCKET/PREFIX): {value}")
    if not value.strip():
        raise ValueError(f"{name}: empty")
    return "local"


def check_location(value: str, name: str, must_exist: bool) -> Kind:
    """`location_kind` plus what can be checked from here: the folder exists, the aws extra is installed."""
    kind = location_kind(value, name, blocks=must_exist)
    if kind == "s3":
        from tasks.media.s3 import require_aws

        try:
            require_aws()
        except RuntimeError as error:
            raise ValueError(f"{name}: {error}") from None
    elif kind == "local":
        path = Path(value)
        if must_exist and not path.is_dir():
            raise ValueError(f"{name}: not a folder: {value}")
        if path.exists() and not path.is_dir():
            raise ValueError(f"{name}: exists and is not a folder: {value}")
    return kind
