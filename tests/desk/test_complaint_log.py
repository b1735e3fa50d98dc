"""The complaint log over HTTP against a real desk and a real SQLite CRM."""
from __future__ import annotations

import csv
import io
import time

import pytest
import requests
from openpyxl import load_workbook

from tests.desk.complaint_stack import PASSWORD, XSS, ComplaintStack, bot_event, complaint_stack, user_event  # noqa: F401
from tests.desk.conftest import DeskClient, new_username


def _client(stack: ComplaintStack, role: str, pii: bool = False) -> DeskClient:
    username = new_username(role)
    stack.crm.desk.create_staff(username, "测试" + role, role, PASSWORD)
    if pii:
        stack.crm.desk.set_pii_access(username, True)
    client = DeskClient(stack.url)
    assert client.login(username).status_code == 302
    return client


def _complaint(stack: ComplaintStack, text: str, sender: str = "web-1", category: str = "logistics",
               phone: str | None = None) -> str:
    return stack.crm.create_complaint(None, category, text, "socketio", sender, f"k-{time.monotonic_ns()}",
                                      contact_phone=phone).ticket_number


def test_agents_are_refused_and_managers_see_the_log(complaint_stack: ComplaintStack) -> None:
    ticket = _complaint(complaint_stack, "快递三天没动")
    agent = _client(complaint_stack, "agent")
    for path in ("/desk/complaints", f"/desk/complaints/{ticket}", "/desk/complaints/export.csv",
                 "/desk/kpis", "/desk/api/kpis"):
        assert agent.get(path).status_code == 403, path
    assert agent.post(f"/desk/complaints/{ticket}/note", {"text": "x"}).status_code == 403
    manager = _client(complaint_stack, "manager")
    page = manager.get("/desk/complaints")
    assert page.status_code == 200 and ticket in page.text and "快递三天没动" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_forged_and_expired_sessions_are_refused(complaint_stack: ComplaintStack) -> None:
    forged = requests.get(f"{complaint_stack.url}/desk/complaints", cookies={"kefu_desk": "forged-token"},
                          allow_redirects=False, timeout=10)
    assert forged.status_code == 302 and forged.headers["Location"] == "/desk/login"
    api = requests.get(f"{complaint_stack.url}/desk/api/kpis", cookies={"kefu_desk": "forged"}, timeout=10)
    assert api.status_code == 401
    manager = _client(complaint_stack, "manager")
    from sqlalchemy import update

    from crm_adapter.models import StaffSession
    with complaint_stack.crm.engine.begin() as conn:  # every session expires
        conn.execute(update(StaffSession).values(expires_at=StaffSession.created_at))
    assert manager.get("/desk/complaints").status_code == 302


def test_filter_search_and_paging_over_http(complaint_stack: ComplaintStack) -> None:
    manager = _client(complaint_stack, "manager")
    quality = _complaint(complaint_stack, "杯子收到就是碎的", category="quality")
    for i in range(55):
        _complaint(complaint_stack, f"第{i}次催物流", sender=f"s{i}")
    page = manager.get("/desk/complaints?category=quality")
    assert quality in page.text and "催物流" not in page.text
    from crm_adapter.complaint_search import refresh
    refresh(complaint_stack.crm.engine, complaint_stack.crm._now())
    found = manager.get("/desk/complaints", params={"q": "杯子"})
    assert quality in found.text and found.text.count('class="open-complaint"') == 1
    first = manager.get("/desk/complaints?category=logistics")
    assert first.text.count('class="open-complaint"') == 50 and 'id="page-next"' in first.text
    bad = manager.get("/desk/complaints?status=nonsense")
    assert bad.status_code == 400 and "筛选条件不正确" in bad.text


def test_detail_transcript_actions_and_audit(complaint_stack: ComplaintStack) -> None:
    manager = _client(complaint_stack, "manager")
    ticket = _complaint(complaint_stack, "退款一直没到账", sender="web-77")
    now = time.time()
    complaint_stack.trackers["web-77"] = [user_event("我要投诉，退款没到", now - 60), bot_event("已为您登记投诉", now - 50),
                                          bot_event("您好，我是王经理", now - 40, agent="wang")]
    page = manager.get(f"/desk/complaints/{ticket}")
    assert page.status_code == 200
    for text in ("我要投诉，退款没到", "已为您登记投诉", "您好，我是王经理", "创建投诉"):
        assert text in page.text
    refused = manager.http.post(f"{manager.base}/desk/complaints/{ticket}/status",
                                data={"csrf_token": manager.csrf, "status": "closed", "reason": ""},
                                allow_redirects=False, timeout=10)
    assert refused.status_code == 400 and "必须填写原因" in refused.text
    no_csrf = manager.http.post(f"{manager.base}/desk/complaints/{ticket}/status",
                                data={"status": "resolved"}, allow_redirects=False, timeout=10)
    assert no_csrf.status_code == 403
    done = manager.http.post(f"{manager.base}/desk/complaints/{ticket}/status",
                             data={"csrf_token": manager.csrf, "status": "closed", "reason": "已线下退款"},
                             allow_redirects=False, timeout=10)
    assert done.status_code == 303
    after = manager.get(f"/desk/complaints/{ticket}")
    assert 'data-status="closed"' in after.text and "已线下退款" in after.text and manager.username in after.text
    assert manager.get("/desk/complaints/TS-NONE").status_code == 404


def test_customer_text_is_inert(complaint_stack: ComplaintStack) -> None:
    manager = _client(complaint_stack, "manager")
    ticket = _complaint(complaint_stack, XSS, sender="web-x")
    complaint_stack.trackers["web-x"] = [user_event(XSS, time.time())]
    for path in ("/desk/complaints", f"/desk/complaints/{ticket}"):
        body = manager.get(path).text
        assert "<script>alert" not in body and "<img src=x" not in body
        assert "&lt;script&gt;" in body
    export = manager.get("/desk/complaints/export.csv")
    assert export.status_code == 200


def test_exports_mask_pii_unless_allowed(complaint_stack: ComplaintStack) -> None:
    _complaint(complaint_stack, "=HYPERLINK(\"http://evil\")", phone="13900139000")
    masked = _client(complaint_stack, "manager")
    csv_response = masked.get("/desk/complaints/export.csv")
    assert csv_response.content.startswith("\ufeff".encode("utf-8"))
    rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "投诉单号" and rows[1][8] == "139****9000"
    assert rows[1][-1].startswith("'=")  # a spreadsheet shows it, never runs it
    allowed = _client(complaint_stack, "admin", pii=True)
    xlsx = allowed.get("/desk/complaints/export.xlsx")
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "投诉单号" and values[1][8] == "13900139000"


def test_kpi_json(complaint_stack: ComplaintStack) -> None:
    _complaint(complaint_stack, "快递太慢")
    manager = _client(complaint_stack, "manager")
    data = manager.get("/desk/api/kpis").json()
    assert data["complaints"] == 1 and "retention_rate" in data["customer"]
    assert any(t["word"] == "快递" for t in data["topics"])
    assert manager.get("/desk/api/kpis?week=bogus").status_code == 400
    page = manager.get("/desk/kpis")
    assert page.status_code == 200 and "/desk/static/vendor/chart.umd.min.js" in page.text
    assert manager.get("/desk/static/vendor/chart.umd.min.js").status_code == 200


def test_weekly_report_writes_markdown_json_and_png(complaint_stack: ComplaintStack, tmp_path, monkeypatch) -> None:
    from bot.desk import report
    from crm_adapter.analytics.complaint_kpis import current_week

    _complaint(complaint_stack, "快递太慢")
    monkeypatch.setenv("KEFU_CRM_URL", complaint_stack.crm.url)
    week = current_week(complaint_stack.crm._now())
    assert report.main(["--week", week, "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / f"report-{week}.md").read_text("utf-8")
    assert "| 投诉数 | 1 |" in text
    pngs = sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    assert len(pngs) == 3 and all((tmp_path / "r" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert report.main(["--week", "2026-99", "--out", str(tmp_path / "bad")]) == 2
