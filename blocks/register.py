"""Register this project's block types with the Prefect API: `python -m blocks.register`.

The same as `prefect block register -m blocks.hardware -m blocks.library`, plus
prefect-aws's `AwsCredentials` when the aws extra is installed, so the UI can
create every block the flows load by name.
"""

from __future__ import annotations

import sys

from prefect.blocks.core import Block

from blocks.hardware import HardwareProfile
from blocks.library import MediaLibrary


def block_types() -> list[type[Block]]:
    types: list[type[Block]] = [HardwareProfile, MediaLibrary]
    try:
        from prefect_aws import AwsCredentials
    except ImportError:
        return types
    return [*types, AwsCredentials]


def register_all() -> list[str]:
    """Register (create or update) every block type; return their slugs."""
    slugs = []
    for block_type in block_types():
        block_type.register_type_and_schema()
        slugs.append(block_type.get_block_type_slug())
    return slugs


def main() -> int:
    for slug in register_all():
        print(f"registered block type {slug}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
