"""Hardware profiles: what an hour of a worker costs, on-demand and spot.

Defaults are public list prices (USD per instance-hour, us-east-1, checked 2025):
- g6.xlarge (1× NVIDIA L4, 4 vCPU): $0.805 on-demand; spot $0.374 (a typical
  recent spot price; spot moves, so save your own figure in a HardwareProfile block).
- h100: one H100 80GB SXM on a GPU cloud, $2.99/h on-demand (Lambda's 1× H100 list
  price); spot/interruptible $2.00/h is an estimate. AWS p5.48xlarge is 8 GPUs for
  $55.04/h on-demand after the June 2024 price cut, $6.88 per GPU: profile `p5-per-gpu`.
- cpu: priced as AWS c7i.2xlarge (8 vCPU Intel Sapphire Rapids, 16 GiB, Linux): $0.357 on-demand;
  spot $0.14 (a typical recent spot price, about 60 % off; it moves). A CPU worker with a few
  decoder processes and an engine on the remaining cores fits it; pricing CPU runs as a real
  instance lets cost per audio hour compare CPU with GPU. On your own machine, save a
  HardwareProfile block named `cpu` with your own figures (or 0).
Per instance-hour: a run's worker hours × these prices; GPU hours are worker hours × `gpus`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pricing:
    name: str
    price_per_hour_usd: float
    spot_price_per_hour_usd: float
    gpus: int = 0
    instance: str = ""  # the machine the prices are for


BUILTIN_PROFILES: dict[str, Pricing] = {
    p.name: p
    for p in (
        Pricing("cpu", 0.357, 0.14, 0, "AWS c7i.2xlarge (8 vCPU, 16 GiB)"),
        Pricing("g6.xlarge", 0.805, 0.374, 1, "AWS g6.xlarge (1× L4, 4 vCPU)"),
        Pricing("g6.2xlarge", 0.9776, 0.4487, 1, "AWS g6.2xlarge (1× L4, 8 vCPU)"),
        Pricing("h100", 2.99, 2.00, 1, "1× H100 80GB SXM (Lambda list price)"),
        Pricing("p5-per-gpu", 6.88, 3.10, 1, "AWS p5.48xlarge ÷ 8 GPUs"),
    )
}


def builtin_profile(name: str) -> Pricing:
    try:
        return BUILTIN_PROFILES[name]
    except KeyError:
        choices = ", ".join(BUILTIN_PROFILES)
        raise ValueError(
            f"hardware: unknown profile {name!r}; choose one of {choices} or save a HardwareProfile block"
        ) from None
