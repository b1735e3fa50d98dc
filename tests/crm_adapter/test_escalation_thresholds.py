"""Per-tier escalation thresholds (crm_adapter.policy), read from the environment."""
from __future__ import annotations

import logging

import pytest

from crm_adapter.policy import escalation_threshold, parse_tier_map

DEFAULTS = {"core": 1, "potential": 2, "low": 2, "unknown": 2}


def test_defaults_core_escalates_sooner_on_anger() -> None:
    env: dict[str, str] = {}
    assert escalation_threshold("upset", "core", env) == 1
    assert [escalation_threshold("upset", t, env) for t in ("potential", "low", None, "")] == [2] * 4
    assert [escalation_threshold("fallback", t, env) for t in ("core", "low", None)] == [2] * 3


def test_unknown_tier_value_uses_the_unknown_entry() -> None:
    env = {"KEFU_ESCALATE_UPSET_TURNS": "unknown:5"}
    assert escalation_threshold("upset", "platinum", env) == 5


def test_override_keeps_unmentioned_tiers() -> None:
    parsed, problems = parse_tier_map(" core : 3 , low:1,", DEFAULTS)
    assert parsed == {"core": 3, "potential": 2, "low": 1, "unknown": 2} and problems == []


@pytest.mark.parametrize("text", ["core:0", "core:x", "vip:1", "core", "core:21", "core:1.5"])
def test_bad_entries_are_reported_and_ignored(text: str) -> None:
    parsed, problems = parse_tier_map(text, DEFAULTS)
    assert parsed == DEFAULTS and len(problems) == 1


def test_bad_environment_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crm_adapter.policy"):
        assert escalation_threshold("fallback", "core",
                                    {"KEFU_ESCALATE_AFTER_FALLBACKS": "core:-7"}) == 2
    assert "KEFU_ESCALATE_AFTER_FALLBACKS" in caplog.text


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        escalation_threshold("weather", "core", {})
