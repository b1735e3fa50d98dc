"""The soak's memory summary: start, end, max and slope per process."""
from __future__ import annotations

from bench.soak import memory_trend


def samples(values: list[float]) -> list[dict]:
    return [{"t_s": 10.0 * i, "rasa": {"rss_mb": v, "cpu_pct": 50.0}} for i, v in enumerate(values)]


def test_steady_growth_has_the_slope_in_mb_per_hour() -> None:
    trend = memory_trend(samples([100.0 + i for i in range(10)]), warm_up_s=0)["rasa"]  # 1 MB per 10 s
    assert trend["slope_mb_per_h"] == 360.0
    assert trend["slope_second_half_mb_per_h"] == 360.0
    assert (trend["rss_start_mb"], trend["rss_end_mb"], trend["rss_max_mb"]) == (100.0, 109.0, 109.0)


def test_warm_up_then_flat_is_flat_in_the_second_half() -> None:
    trend = memory_trend(samples([100.0, 150.0, 200.0, 200.0, 200.0, 200.0, 200.0, 200.0]), warm_up_s=0)["rasa"]
    assert trend["slope_mb_per_h"] > 0
    assert trend["slope_second_half_mb_per_h"] == 0.0
    assert trend["cpu_mean_pct"] == 50.0


def test_start_is_after_the_warm_up() -> None:
    # A process still importing at the first samples (the restarted scheduler).
    trend = memory_trend(samples([9.0, 40.0, 90.0, 90.0, 91.0, 91.0, 91.0, 91.0, 91.0]), warm_up_s=20)["rasa"]
    assert trend["rss_first_sample_mb"] == 9.0
    assert trend["rss_start_mb"] == 90.0 and trend["rss_end_mb"] == 91.0
    assert 0 < trend["slope_mb_per_h"] < 100
