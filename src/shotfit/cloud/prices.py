"""What a launch may cost: SageMaker training's hourly prices and the estimate printed before anything starts.

The table holds on-demand prices of SageMaker *training* instances in us-east-1 (USD per instance-hour),
the list prices of https://aws.amazon.com/sagemaker/pricing/ as collected in :data:`PRICES_CHECKED`
(from public copies of that page, which agreed; the page itself could not be read where this was
written). Prices change and differ between regions: check that page, and give ``--hourly-price`` for
another region or instance type. The estimate is an upper bound: hourly price x time budget x jobs. Managed
spot training bills fewer seconds (``BillableTimeInSeconds``), never more, so for spot jobs the
on-demand figure is the ceiling, not the expected bill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shotfit.errors import ConfigError, ShotfitError

PRICES_CHECKED = "2026-11"  # when the table was collected
PRICES_REGION = "us-east-1"
PRICE_PAGE = "https://aws.amazon.com/sagemaker/pricing/"

# USD per instance-hour, SageMaker training, on-demand, us-east-1, collected 2026-11: check the AWS price page
PRICES: dict[str, float] = {
    # CPU
    "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461, "ml.m5.4xlarge": 0.922,
    "ml.c5.xlarge": 0.204, "ml.c5.2xlarge": 0.408, "ml.c5.4xlarge": 0.816,
    # one NVIDIA T4 (16 GB)
    "ml.g4dn.xlarge": 0.736, "ml.g4dn.2xlarge": 0.94, "ml.g4dn.4xlarge": 1.505,
    # one NVIDIA A10G (24 GB) up to 8xlarge; four on 12xlarge
    "ml.g5.xlarge": 1.408, "ml.g5.2xlarge": 1.515, "ml.g5.4xlarge": 2.03, "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09,
    # one NVIDIA L4 (24 GB)
    "ml.g6.xlarge": 1.127, "ml.g6.2xlarge": 1.222, "ml.g6.4xlarge": 1.654,
    # one NVIDIA V100 (16 GB)
    "ml.p3.2xlarge": 3.825,
}


@dataclass(frozen=True)
class HourlyPrice:
    """An instance type's price per hour and where the number comes from."""

    instance_type: str
    usd: float
    source: str  # "built-in us-east-1 table of 2026-11" or "the hourly price given"


@dataclass(frozen=True)
class CostEstimate:
    """The most a launch can cost in compute: price x budget x jobs (storage and transfer are cents)."""

    price: HourlyPrice
    minutes: float  # the time budget of each job (MaxRuntimeInSeconds)
    jobs: int
    spot: bool

    @property
    def per_job(self) -> float:
        return self.price.usd * self.minutes / 60.0

    @property
    def total(self) -> float:
        """USD, rounded up to the cent: an upper bound stays an upper bound."""
        return math.ceil(round(self.per_job * self.jobs * 100, 6)) / 100

    def check(self, max_cost: float | None) -> None:
        """Refuse (before anything is uploaded or started) an estimate above ``max_cost`` USD."""
        if max_cost is not None and self.total > max_cost:
            raise ShotfitError(f"the cost estimate of {self.total:.2f} USD is above max_cost {max_cost:.2f} USD: "
                               "nothing was started (fewer jobs, fewer minutes, or a cheaper instance_type)",
                               parameter="max_cost")

    def describe(self) -> str:
        """``cost estimate: 5 jobs x 60 min x 1.408 USD/h (ml.g5.xlarge, ...) = at most 7.04 USD``."""
        jobs = f"{self.jobs} job{'s' if self.jobs != 1 else ''}"
        line = (f"cost estimate: {jobs} x {self.minutes:g} min x {self.price.usd:g} USD/h "
                f"({self.price.instance_type}, {self.price.source}) = at most {self.total:.2f} USD")
        if self.spot:
            line += " (the on-demand upper bound; managed spot training usually bills far less)"
        return line


def hourly_price(instance_type: str, override: float | None = None) -> HourlyPrice:
    """The price per hour of ``instance_type``: ``override`` if given, else the built-in table.

    Raises:
        ConfigError: an instance type the table does not know, without an override.
    """
    if override is not None:
        if not (override > 0 and math.isfinite(override)):
            raise ConfigError(f"hourly_price {override} must be a positive number of USD per hour", parameter="hourly_price")
        return HourlyPrice(instance_type, float(override), "the hourly price given")
    if instance_type not in PRICES:
        raise ConfigError(f"no built-in price for instance type '{instance_type}': give an hourly_price in USD "
                          f"(see {PRICE_PAGE}; known: {', '.join(PRICES)})", parameter="hourly_price")
    return HourlyPrice(instance_type, PRICES[instance_type], f"built-in {PRICES_REGION} table of {PRICES_CHECKED}")
