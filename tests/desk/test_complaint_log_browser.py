"""The complaint log in headless Chromium: a manager's whole review, an agent refused, inert text."""
from __future__ import annotations

import time

from tests.browser import browser_factory, chromium  # noqa: F401
from tests.desk.complaint_stack import PASSWORD, XSS, ComplaintStack, bot_event, complaint_stack, user_event  # noqa: F401
from tests.desk.conftest import new_username


def _login(page, base: str, username: str) -> None:
    page.goto(f"{base}/desk/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/desk/")


def test_manager_reviews_a_complaint(complaint_stack: ComplaintStack, browser_factory, tmp_path) -> None:  # noqa: F811
    stack = complaint_stack
    crm = stack.crm
    manager = new_username("manager")
    crm.desk.create_staff(manager, "李主管", "manager", PASSWORD)
    ticket = crm.create_complaint(None, "quality", "收到的杯子是碎的", "socketio", "web-b1", "k1").ticket_number
    crm.create_complaint(None, "price", XSS, "socketio", "web-b2", "k2")
    stack.trackers["web-b1"] = [user_event("杯子碎了怎么办", time.time() - 30),
                                bot_event("抱歉，已为您登记投诉", time.time() - 20)]
    browser = browser_factory({"width": 1366, "height": 768})
    page = browser.page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _login(page, stack.url, manager)
    page.click("#nav-complaints")
    page.select_option("#f-category", "quality")
    page.click("#f-apply")
    rows = page.locator("#complaint-table tbody tr[data-ticket]")
    assert rows.count() == 1
    page.click(f"tr[data-ticket='{ticket}'] a.open-complaint")
    assert page.locator("#transcript [data-from=customer]").inner_text().startswith("客户")
    assert "杯子碎了怎么办" in page.locator("#transcript").inner_text()
    page.select_option("#status-select", "closed")
    page.click("#status-submit")
    assert "必须填写原因" in page.locator("#action-error").inner_text()
    page.select_option("#status-select", "closed")
    page.fill("#status-reason", "已补发新杯子")
    page.click("#status-submit")
    page.wait_for_selector("#complaint-status[data-status=closed]")
    assert "已补发新杯子" in page.locator("#timeline").inner_text()
    page.goto(f"{stack.url}/desk/complaints")
    with page.expect_download() as download:
        page.click("#export-csv")
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    assert "收到的杯子是碎的" in saved.read_text("utf-8-sig")
    # the XSS string is shown as text, nothing ran
    assert "<script>" in page.locator("#complaint-table").inner_text()
    page.screenshot(path=str(tmp_path / "log.png"))
    assert dialogs == []
    browser.assert_local_only()


def test_agent_is_refused(complaint_stack: ComplaintStack, browser_factory) -> None:  # noqa: F811
    agent = new_username("agent")
    complaint_stack.crm.desk.create_staff(agent, "小王", "agent", PASSWORD)
    page = browser_factory().page()
    _login(page, complaint_stack.url, agent)
    assert page.locator("#nav-complaints").count() == 0
    response = page.goto(f"{complaint_stack.url}/desk/complaints")
    assert response.status == 403 and "没有权限" in page.content()
