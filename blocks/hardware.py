"""HardwareProfile block: prices of one kind of worker, editable in the Prefect UI."""

from __future__ import annotations

from typing import cast

from prefect.blocks.core import Block
from pydantic import Field

from tasks.planning.pricing import Pricing, builtin_profile


class HardwareProfile(Block):
    """What an hour of one worker costs. Save one per kind of machine you run."""

    _block_type_name = "Hardware Profile"
    _block_type_slug = "hardware-profile"
    _description = "On-demand and spot prices of one kind of transcription worker."

    price_per_hour_usd: float = Field(ge=0, description="On-demand price of one worker, USD per hour.")
    spot_price_per_hour_usd: float = Field(ge=0, description="Spot price of one worker, USD per hour.")
    gpus: int = Field(default=1, ge=0, description="GPUs per worker (for GPU-hours).")

    def to_pricing(self, name: str) -> Pricing:
        return Pricing(name, self.price_per_hour_usd, self.spot_price_per_hour_usd, self.gpus,
                       f"HardwareProfile block {name!r}")


def resolve_pricing(name: str) -> Pricing:
    """A saved HardwareProfile block of that name wins; else the built-in profile."""
    try:
        block = cast(HardwareProfile, HardwareProfile.load(name))  # sync context: the block itself
    except (ValueError, RuntimeError):
        return builtin_profile(name)
    return block.to_pricing(name)
