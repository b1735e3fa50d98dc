"""The customer model behind differentiated service (issue 3), over the SQL CRM.

What it computes, each rule in its own module (docs/analytics.md has the
whole story, with the assumptions and the defaults' reasons):

* `rfm` -- recency (time of the last counted order), frequency (counted
  orders in the last ``window_days``, default 365) and monetary (their spend
  net of refunds), scored 1..``bins`` (default 5) by population quantiles
  with ties sharing a score (minimum-rank rule); value tiers 核心 core /
  潜力 potential / 低价值 low on the R+F+M sum (defaults 12+ / 8+ of 15);
* `clv` -- simple (purchases per year x AOV x lifetime years) and
  discounted (sum of margin x annual spend x retention^t / (1+r)^t) CLV;
* `lifecycle` -- stages 潜在/新客/成长/忠诚/流失风险/已流失 against the
  customer's own median repurchase interval, churn risk in [0, 1] as an
  explainable logistic, and the moment time alone changes either;
* `facts` -- what the tables say: counted orders are paid/shipped/delivered,
  refunds are subtracted, bad rows (negative totals, future dates, deleted
  customers) are excluded and counted;
* `refresh` -- incremental (changed customers + rows due for review +
  population re-binning) or full recomputation into ``customer_metrics``;
* `kpis` -- retention, repurchase, churn, CLV by tier, CSAT, NPS, complaint
  rate and resolution time, cross-sell, tier upgrades, AOV;
* `segments` -- optional K-means segments with Chinese labels;
* `profile` -- one customer's profile for `CRM.customer_profile`.

Command line: ``python -m crm_adapter.analytics refresh [--full] | kpis | segments``.
Nothing here imports Rasa.
"""
from __future__ import annotations

from .settings import Settings

__all__ = ["Settings"]
