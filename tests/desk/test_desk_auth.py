"""Who gets in and what they may do: sessions, CSRF, roles, security headers,
and the admin command line — against the running desk process."""
from __future__ import annotations

import subprocess
import sys
import uuid

import requests

from bot.settings import ROOT
from crm_adapter.servicedesk import MSG_LOCKED, MSG_LOGIN

from .conftest import PASSWORD, DeskClient, desk_url, new_username

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _new_escalation(stack_desk, sender: str = "") -> int:
    crm = stack_desk._crm
    view = crm.create_escalation(None, "rest", sender or f"auth-{uuid.uuid4().hex[:8]}", "request_human",
                                 f"test:{uuid.uuid4().hex}")
    return view.id


def test_login_sets_a_strict_httponly_cookie_scoped_to_the_desk(stack, stack_desk):
    username = new_username()
    stack_desk.create_staff(username, "小周", "agent", PASSWORD)
    client = DeskClient(desk_url(stack))
    response = client.login(username)
    assert response.status_code == 302 and response.headers["Location"] == "/desk/"
    cookie = response.headers["Set-Cookie"]
    assert "kefu_desk=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/desk" in cookie and "Secure" not in cookie  # KEFU_DESK_COOKIE_SECURE is off
    me = client.get("/desk/api/me").json()
    assert me["username"] == username and me["role"] == "agent" and me["csrf_token"]
    page = client.get("/desk/")
    assert page.status_code == 200 and "小周" in page.text


def test_bad_password_is_refused_without_a_session(stack, stack_desk):
    username = new_username()
    stack_desk.create_staff(username, "小周", "agent", PASSWORD)
    client = DeskClient(desk_url(stack))
    response = client.login(username, "wrong-password-1")
    assert response.status_code == 401
    assert MSG_LOGIN in response.text
    assert "kefu_desk" not in response.headers.get("Set-Cookie", "")
    assert client.get("/desk/api/me").status_code == 401
    assert client.login("nobody-" + username).status_code == 401


def test_repeated_failures_lock_the_account(stack, stack_desk):
    username = new_username()
    stack_desk.create_staff(username, "小周", "agent", PASSWORD)
    client = DeskClient(desk_url(stack))
    for _ in range(5):
        assert client.login(username, "wrong-password-1").status_code == 401
    response = client.login(username)  # the right password, too late
    assert response.status_code == 401 and MSG_LOCKED in response.text
    assert client.get("/desk/api/me").status_code == 401


def test_logout_ends_the_session_and_needs_the_csrf_token(stack, make_agent):
    client = make_agent()
    cookie = client.http.cookies.get("kefu_desk", path="/desk")
    refused = client.http.post(f"{client.base}/desk/logout", allow_redirects=False, timeout=30)
    assert refused.status_code == 403
    assert client.get("/desk/api/me").status_code == 200  # still signed in
    # The logout form sends the token as a form field.
    response = client.http.post(f"{client.base}/desk/logout", data={"csrf_token": client.csrf},
                                allow_redirects=False, timeout=30)
    assert response.status_code == 302 and response.headers["Location"] == "/desk/login"
    replay = requests.get(f"{client.base}/desk/api/me", cookies={"kefu_desk": cookie}, timeout=30)
    assert replay.status_code == 401


def test_forged_and_expired_cookies_are_refused(stack, stack_desk, make_agent):
    base = desk_url(stack)
    forged = requests.get(f"{base}/desk/api/queue", cookies={"kefu_desk": "forged-" + uuid.uuid4().hex}, timeout=30)
    assert forged.status_code == 401
    page = requests.get(f"{base}/desk/", cookies={"kefu_desk": "x" * 500}, allow_redirects=False, timeout=30)
    assert page.status_code == 302 and page.headers["Location"] == "/desk/login"
    client = make_agent()
    stolen = client.http.cookies.get("kefu_desk", path="/desk")
    stack_desk.set_password(client.username, "a-brand-new-password")  # ends every session of that account
    assert requests.get(f"{base}/desk/api/queue", cookies={"kefu_desk": stolen}, timeout=30).status_code == 401


def test_posts_without_or_with_a_wrong_csrf_token_change_nothing(stack, stack_desk, make_agent):
    client = make_agent()
    escalation_id = _new_escalation(stack_desk)
    for token in (None, "wrong-token", ""):
        response = client.post(f"/desk/api/conversations/{escalation_id}/claim", csrf=token)
        assert response.status_code == 403
        assert "刷新页面" in response.json()["error"]
        response = client.post(f"/desk/api/conversations/{escalation_id}/note", {"text": "不该留下"}, csrf=token)
        assert response.status_code == 403
    assert stack_desk.conversation(escalation_id).status == "pending"
    assert [e.kind for e in stack_desk.timeline(escalation_id)] == ["created"]
    # Another user's token is no good either.
    other = make_agent()
    assert client.post(f"/desk/api/conversations/{escalation_id}/note", {"text": "x"},
                       csrf=other.csrf).status_code == 403
    assert client.post(f"/desk/api/conversations/{escalation_id}/note", {"text": "可以"}).status_code == 200


def test_agents_cannot_open_manager_pages(stack, make_agent):
    agent = make_agent("agent")
    assert agent.get("/desk/manager").status_code == 403
    assert agent.get("/desk/api/manager/overview").status_code == 403
    refused = agent.post("/desk/api/manager/canned", {"code": "/hack", "title": "x", "body": "y"})
    assert refused.status_code == 403
    assert all(c["code"] != "/hack" for c in agent.get("/desk/api/canned").json()["canned"])
    manager = make_agent("manager")
    assert manager.get("/desk/manager").status_code == 200
    overview = manager.get("/desk/api/manager/overview").json()
    assert {"pending", "open", "agents_online"} <= set(overview["stats"])
    assert any(s["username"] == agent.username for s in overview["staff"])


def test_unauthenticated_pages_redirect_and_the_api_says_401(stack):
    base = desk_url(stack)
    for path in ("/desk/", "/desk/c/1", "/desk/manager"):
        response = requests.get(base + path, allow_redirects=False, timeout=30)
        assert response.status_code == 302 and response.headers["Location"] == "/desk/login", path
    for path in ("/desk/api/queue", "/desk/api/conversations/1", "/desk/events"):
        assert requests.get(base + path, timeout=30).status_code == 401, path
    assert requests.post(base + "/desk/api/conversations/1/claim", timeout=30).status_code == 401


def test_security_headers_on_every_kind_of_response(stack, make_agent):
    client = make_agent()
    responses = [
        requests.get(desk_url(stack) + "/desk/login", timeout=30),
        requests.get(desk_url(stack) + "/desk/static/desk.js", timeout=30),
        requests.get(desk_url(stack) + "/desk/", allow_redirects=False, timeout=30),
        requests.get(desk_url(stack) + "/desk/no-such-page", timeout=30),
        client.get("/desk/"),
        client.get("/desk/api/queue"),
        client.post("/desk/api/conversations/999999/note", {"text": "x"}),
    ]
    for response in responses:
        csp = response.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp, response.url
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
    page = client.get("/desk/").text
    assert "<script>" not in page and "style=" not in page  # no inline script or style for the CSP to block
    assert "http://" not in page.replace(desk_url(stack), "") and "https://" not in page


def _admin(stack, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**stack.settings.child_env(), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "bot.desk.admin", *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def test_admin_cli_creates_a_user_who_can_log_in(stack, stack_desk):
    username = new_username("cli")
    done = _admin(stack, "create-user", username, "--role", "manager", "--name", "陈主管", "--max-open", "3",
                  "--password-env", "DESK_PW", env_extra={"DESK_PW": "cli-password-123"})
    assert done.returncode == 0, done.stderr
    client = DeskClient(desk_url(stack))
    assert client.login(username, "cli-password-123").status_code == 302
    assert client.get("/desk/manager").status_code == 200
    listed = _admin(stack, "list")
    assert any(line.startswith(f"{username}\t陈主管\tmanager") for line in listed.stdout.splitlines())
    assert _admin(stack, "disable", username).returncode == 0
    assert client.get("/desk/api/me").status_code == 401


def test_admin_cli_refuses_cleanly(stack, stack_desk):
    username = new_username("cli")
    no_tty = _admin(stack, "create-user", username, "--role", "agent", "--name", "小林")
    assert no_tty.returncode == 2 and "--password-env" in no_tty.stderr and "Traceback" not in no_tty.stderr
    short = _admin(stack, "create-user", username, "--role", "agent", "--name", "小林", "--password-env", "PW",
                   env_extra={"PW": "short"})
    assert short.returncode == 2 and "密码至少需要" in short.stderr and "Traceback" not in short.stderr
    assert all(s.username != username for s in stack_desk.list_staff())


def test_admin_cli_canned_replies(stack):
    code = "/t" + uuid.uuid4().hex[:6]
    added = _admin(stack, "canned-add", code, "退款说明", "退款将在1-3个工作日内原路退回。")
    assert added.returncode == 0, added.stderr
    assert f"{code}\t退款说明\t退款将在1-3个工作日内原路退回。" in _admin(stack, "canned-list").stdout
