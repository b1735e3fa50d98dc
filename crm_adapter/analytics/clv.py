"""Customer lifetime value, two ways (see docs/analytics.md).

* simple: purchases per year x average order value x expected lifetime in
  years -- revenue, undiscounted, the figure staff can check by hand;
* discounted: sum over t = 1..T of margin x expected annual spend x
  retention^t / (1 + r)^t -- profit, weighted by the chance the customer is
  still buying in year t and by the time value of money.

Both take the customer's last ``window_days`` of counted, net-of-refund
spend as the expected future rate: what they did last year is the best
plain guess of next year, and a customer who bought nothing in the window is
worth nothing forward (their past spend is history, not value).
"""
from __future__ import annotations

from .settings import Settings


def annual_rate(frequency: int, monetary: float, settings: Settings) -> tuple[float, float]:
    """(purchases per year, average order value) from the window's orders."""
    years = settings.window_days / 365.0
    per_year = frequency / years
    aov = monetary / frequency if frequency > 0 else 0.0
    return per_year, aov


def clv_simple(per_year: float, aov: float, lifetime_years: float) -> float:
    return max(per_year, 0.0) * max(aov, 0.0) * max(lifetime_years, 0.0)


def clv_discounted(
    annual_spend: float, margin: float, retention: float, discount_rate: float, horizon_years: int
) -> float:
    spend = max(annual_spend, 0.0)
    return sum(
        margin * spend * retention**t / (1.0 + discount_rate) ** t for t in range(1, horizon_years + 1)
    )


def customer_clv(frequency: int, monetary: float, settings: Settings) -> tuple[float, float]:
    """(simple, discounted) CLV of one customer, rounded to the fen."""
    per_year, aov = annual_rate(frequency, monetary, settings)
    simple = clv_simple(per_year, aov, settings.lifetime_years)
    discounted = clv_discounted(
        per_year * aov, settings.margin, settings.retention, settings.discount_rate, settings.horizon_years
    )
    return round(simple, 2), round(discounted, 2)
