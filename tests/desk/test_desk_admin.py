"""The first admin account `make run` creates, on a fresh seeded CRM (no servers)."""
from __future__ import annotations

import stat

from bot.desk.admin import ADMIN_PASSWORD_FILE, ensure_admin
from bot.desk.rasa_client import turn_from_event


def test_first_start_creates_admin_with_a_private_password_file(crm, tmp_path):
    path = ensure_admin(crm, tmp_path / "var")
    assert path == tmp_path / "var" / ADMIN_PASSWORD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    token, session = crm.desk.login("admin", password)
    assert token and session.staff.role == "admin"
    assert ensure_admin(crm, tmp_path / "var") is None  # there is an account now: nothing new
    assert path.read_text().strip() == password


def test_no_admin_when_staff_exist(crm, tmp_path):
    crm.desk.create_staff("lead", "组长", "manager", "lead-password-1")
    assert ensure_admin(crm, tmp_path) is None
    assert not (tmp_path / ADMIN_PASSWORD_FILE).exists()
    assert [s.username for s in crm.desk.list_staff()] == ["lead"]


def test_transcript_turns_tell_customer_bot_and_agent_apart():
    user = turn_from_event({"event": "user", "text": "你好", "timestamp": 1.0})
    bot = turn_from_event({"event": "bot", "text": "您好！", "timestamp": 2.0, "metadata": {"model_id": "m"}})
    agent = turn_from_event({"event": "bot", "text": "我是客服", "timestamp": 3.0,
                             "metadata": {"agent": "wang", "agent_name": "王小明"}})
    assert (user.who, bot.who, agent.who) == ("customer", "bot", "agent")
    assert agent.agent_name == "王小明"
    assert turn_from_event({"event": "action", "name": "action_listen"}) is None
    assert turn_from_event({"event": "bot", "text": None, "data": {"buttons": [{"title": "是"}, {"title": "否"}]},
                            "timestamp": 4.0}).text == "是 / 否"
