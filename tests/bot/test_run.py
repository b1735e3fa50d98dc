"""`make run`'s supervisor: starts both servers, answers, and stops cleanly on Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from bot.run import free_port
from bot.settings import ROOT
from tests.conftest import MODEL, seeded_crm_url


def test_supervisor_runs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    rasa_port, action_port, web_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEFU_VAR_DIR": str(tmp_path),
           "KEFU_RASA_PORT": str(rasa_port), "KEFU_ACTION_PORT": str(action_port),
           "KEFU_WEB_PORT": str(web_port),
           "KEFU_CRM_URL": seeded_crm_url(tmp_path), "KEFU_MODEL": str(MODEL),
           "KEFU_TRACKER_DB": str(tmp_path / "tracker.sqlite3"),
           "KEFU_EVENTS_DB": str(tmp_path / "events.sqlite3")}
    # Started the way a background job of a script starts (`make run &`): with SIGINT
    # ignored, which every child inherits unless the supervisor undoes it. Its own
    # session, so that a failure below can clean up the whole tree.
    proc = subprocess.Popen([sys.executable, "-m", "bot.run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
                            start_new_session=True)
    output = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            output.append(line)
            if "Kefu is running" in line:
                break
        assert any("Kefu is running" in line for line in output), "".join(output[-50:])
        assert requests.get(f"http://127.0.0.1:{web_port}/widget/", timeout=10).ok  # the chat widget
        # Keep reading so the servers never block on a full pipe.
        threading.Thread(target=lambda: [output.append(l) for l in proc.stdout], daemon=True).start()
        token = (tmp_path / "rasa_token").read_text().strip()  # generated, mode 600
        assert oct((tmp_path / "rasa_token").stat().st_mode & 0o777) == "0o600"
        # So is the secret the action server asks of the Rasa server (bot/action_auth.py).
        assert len((tmp_path / "action_token").read_text().strip()) >= 32
        assert oct((tmp_path / "action_token").stat().st_mode & 0o777) == "0o600"
        # And the one the desk and scheduler sign their calls to Rasa with (bot/rasa_auth.py).
        assert len((tmp_path / "rasa_jwt_secret").read_text().strip()) >= 32
        assert oct((tmp_path / "rasa_jwt_secret").stat().st_mode & 0o777) == "0o600"
        jwt_secret = (tmp_path / "rasa_jwt_secret").read_text().strip()
        from bot import rasa_auth
        assert requests.get(f"http://127.0.0.1:{rasa_port}/status", headers=rasa_auth.bearer(jwt_secret, "test"),
                            timeout=10).ok
        reply = requests.post(f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook",
                              json={"sender": "demo-zhangwei", "message": "满多少包邮"}, timeout=60)
        assert "99" in reply.text
        # The HTTP API refuses requests without the token.
        assert requests.get(f"http://127.0.0.1:{rasa_port}/status", timeout=10).status_code == 401
        assert requests.get(f"http://127.0.0.1:{rasa_port}/status", params={"token": token},
                            timeout=10).ok
        # The care scheduler is part of the stack and leads (it is the only one).
        deadline = time.monotonic() + 60
        while not any("care scheduler: leader" in line for line in output) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert any("care scheduler: leader" in line for line in output), "".join(output[-50:])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the servers too, or they outlive the test
            raise
    assert code == 0
    for port in (rasa_port, action_port, web_port):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            raise AssertionError(f"port {port} still answers after Ctrl-C")
        except requests.ConnectionError:
            pass
