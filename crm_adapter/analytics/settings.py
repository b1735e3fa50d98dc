"""The analytics' tunable numbers, with the defaults docs/analytics.md justifies.

Checked once when a `Settings` is built, so that a bad configuration is
refused with a Chinese message before any row is read or written.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

from ..errors import InvalidInput


@dataclass(frozen=True)
class Settings:
    # RFM
    window_days: int = 365
    bins: int = 5
    # Value tiers on the R+F+M score sum (None: 80 % / 53 % of the maximum, i.e. 12 and 8 of 15).
    core_min_sum: Optional[int] = None
    potential_min_sum: Optional[int] = None
    # CLV
    lifetime_years: float = 3.0
    retention: float = 0.8
    discount_rate: float = 0.10
    margin: float = 0.30
    horizon_years: int = 5
    # Lifecycle
    new_days: int = 90
    loyal_min_orders: int = 4
    loyal_min_tenure_days: int = 180
    at_risk_factor: float = 1.5
    churned_factor: float = 3.0
    min_interval_days: float = 7.0
    default_interval_days: float = 90.0
    # Churn risk: logistic of a*(gap/interval - at_risk_factor) + signals
    risk_slope: float = 2.0
    risk_per_complaint: float = 0.6
    risk_complaint_cap: int = 3
    risk_low_csat: float = 1.0
    risk_tolerance: float = 0.05
    complaint_window_days: int = 90
    csat_window_days: int = 180

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise InvalidInput(f"分析参数不正确（{what}），请检查配置。")

        need(isinstance(self.bins, int) and 2 <= self.bins <= 20, "bins")
        need(isinstance(self.window_days, int) and 1 <= self.window_days <= 3650, "window_days")
        need(0.0 <= self.retention <= 1.0, "retention")
        need(0.0 <= self.discount_rate <= 1.0, "discount_rate")
        need(0.0 <= self.margin <= 1.0, "margin")
        need(isinstance(self.horizon_years, int) and 1 <= self.horizon_years <= 50, "horizon_years")
        need(0.0 <= self.lifetime_years <= 50.0, "lifetime_years")
        need(0.0 < self.at_risk_factor < self.churned_factor, "at_risk_factor/churned_factor")
        need(self.min_interval_days > 0 and self.default_interval_days > 0, "interval_days")
        need(0.0 < self.risk_tolerance < 1.0 and self.risk_slope > 0, "risk")
        need(self.new_days >= 0 and self.loyal_min_orders >= 2 and self.loyal_min_tenure_days >= 0, "lifecycle")
        need(self.complaint_window_days > 0 and self.csat_window_days > 0, "signal windows")
        top = 3 * self.bins
        need(3 <= self.core_threshold <= top, "core_min_sum")
        need(3 <= self.potential_threshold <= self.core_threshold, "potential_min_sum")
        for name in ("lifetime_years", "retention", "discount_rate", "margin", "at_risk_factor"):
            need(math.isfinite(float(getattr(self, name))), name)

    @property
    def core_threshold(self) -> int:
        return self.core_min_sum if self.core_min_sum is not None else round(3 * self.bins * 0.8)

    @property
    def potential_threshold(self) -> int:
        if self.potential_min_sum is not None:
            return self.potential_min_sum
        return round(3 * self.bins * 8 / 15)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT = Settings()
