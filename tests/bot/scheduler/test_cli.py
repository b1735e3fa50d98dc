"""`python -m bot.scheduler` commands against a real database (in-process main())."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.scheduler.__main__ import main
from bot.scheduler.campaigns import CampaignError, load, parse
from crm_adapter import CRM
from tests.crm_adapter import care_fixtures as make


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_list_preview_pause_resume_metrics(crm: CRM, crm_url: str, capsys: pytest.CaptureFixture) -> None:
    make.customer(crm, name="陈晨", birthday=date(1992, 2, 29))
    code, out = cli(capsys, "--url", crm_url, "list")
    assert code == 0 and "birthday" in out and "enabled" in out and "complaint_followup" in out
    code, out = cli(capsys, "--url", crm_url, "preview", "birthday", "--date", "2027-02-28")
    assert code == 0 and "陈晨" in out and "1 would be queued" in out and "dry run" in out
    assert crm.care.counts() == {}  # preview wrote nothing
    assert cli(capsys, "--url", crm_url, "pause", "birthday")[0] == 0
    code, out = cli(capsys, "--url", crm_url, "list")
    assert "paused" in out
    code, out = cli(capsys, "--url", crm_url, "resume", "birthday")
    assert code == 0 and "resumed" in out
    code, out = cli(capsys, "--url", crm_url, "metrics")
    assert code == 0 and "selected" in out
    code, out = cli(capsys, "--url", crm_url, "dead-letters")
    assert code == 0 and "no dead letters" in out
    code, out = cli(capsys, "--url", crm_url, "requeue", "999")
    assert code == 1 and "not a dead" in out


def test_unknown_campaign_and_bad_date_are_refused(crm_url: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--url", crm_url, "preview", "nope"])
    assert "no campaign 'nope'" in str(exc.value)
    with pytest.raises(SystemExit) as exc:
        main(["--url", crm_url, "preview", "birthday", "--date", "2026-13-01"])
    assert "YYYY-MM-DD" in str(exc.value)


def test_campaign_file_mistakes_are_refused_with_the_campaign_named(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    assert len(load()) >= 8
    base = {"name": "x", "audience": "birthday", "purpose": "marketing", "variants": {"A": "{{ name }}你好"}}
    parse({"campaigns": [base]})
    for broken, message in (
        ({**base, "variants": {"A": "{{ nmae }}你好"}}, "nmae"),
        ({**base, "audience": "astrology"}, "audience"),
        ({**base, "purpose": "spam"}, "purpose"),
        ({**base, "run_at": "25:00"}, "run_at"),
        ({**base, "variants": {"C": "hi"}}, "variants"),
        ({**base, "coupon": {"title": "券"}}, "coupon"),
    ):
        with pytest.raises(CampaignError, match=message):
            parse({"campaigns": [broken]})
    with pytest.raises(CampaignError, match="defined twice"):
        parse({"campaigns": [base, base]})
    bad = tmp_path / "campaigns.yml"
    bad.write_text("campaigns: [{name: x, audience: birthday, purpose: marketing, variants: {A: '{{ oops }}'}}]",
                   encoding="utf-8")
    code, out = cli(capsys, "--campaigns", str(bad), "--url", "sqlite://", "list")
    assert code == 2 and "campaign x" in out and "oops" in out
