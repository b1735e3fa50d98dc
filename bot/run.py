"""Process supervisor: the action server, the Rasa server, the website
widget server, the agent desk and the care scheduler, started together and stopped together.

`make run` calls this.  It waits until both answer, prints where to talk to
the bot, and on Ctrl-C (or SIGTERM) stops both cleanly.  `--shell` opens
Rasa's terminal chat against the running servers instead.
"""
from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import requests

from bot import settings as settings_mod
from bot.allocator import allocator_env
from bot.settings import ROOT, Settings

logger = logging.getLogger("kefu.run")


def sigint_by_default() -> None:
    """In a child before exec: SIGINT back to its default, so Python turns it into
    KeyboardInterrupt and the child stops when `Stack.stop` asks.

    A background job of a non-interactive shell (`make run &`, a CI runner) starts
    with SIGINT ignored; every child would inherit that, and Python keeps an
    ignored SIGINT ignored, so Ctrl-C and `stop` would go unheard.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Stack:
    """The running processes of one Kefu instance."""

    def __init__(self, settings: Settings, log_dir: Optional[Path] = None) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.named: dict[str, subprocess.Popen] = {}
        self._log_start: dict[str, int] = {}  # where each process's output begins in its log
        self._tmp_dirs: dict[str, Path] = {}  # TMPDIR of each process that has its own (see _spawn)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        out = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
            self._log_start[name] = out.tell()
        env = self.env_for(name)
        if name == "rasa":
            # TensorFlow writes ~40 autograph modules to the temporary folder as it
            # loads the model and removes them at exit; forked Sanic workers exit
            # without running exit hooks, so they stayed in /tmp at every stop.
            env["TMPDIR"] = str(self._own_tmp_dir(name))
        proc = subprocess.Popen(args, cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT if out else None,
                                preexec_fn=sigint_by_default)
        self.procs.append(proc)
        self.named[name] = proc
        return proc

    def env_for(self, name: str) -> dict[str, str]:
        """The environment of the process `name`."""
        env = self.settings.child_env()
        if name == "rasa":  # the one process whose memory grows with traffic (bot/allocator.py)
            env = allocator_env(env)
            # Rasa (not rasa_sdk, which reads ACTION_SERVER_SANIC_WORKERS) forks this many workers.
            env["SANIC_WORKERS"] = str(self.settings.rasa_workers)
        return env

    def _own_tmp_dir(self, name: str) -> Path:
        if name not in self._tmp_dirs:
            self._tmp_dirs[name] = Path(tempfile.mkdtemp(prefix=f"kefu-{name}-"))
        return self._tmp_dirs[name]

    def _remove_tmp_dir(self, name: str) -> None:
        folder = self._tmp_dirs.pop(name, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _commands(self) -> dict[str, list[str]]:
        s = self.settings
        python = str(Path(sys.executable).parent / "python")
        commands = {
            "actions": [python, "-m", "bot.action_server", "--actions", "actions", "--port", str(s.action_port)],
            "rasa": [python, "-m", "bot.rasa_server", "run", "--enable-api", f"--auth-token={s.rasa_token}",
                     "-i", s.host, "-p", str(s.rasa_port), "--model", str(s.model_path),
                     "--endpoints", "endpoints.yml", "--credentials", "credentials.yml",
                     "--cors", "http://127.0.0.1"],
            "web": [python, "-m", "bot.web.server", "--host", s.host, "--port", str(s.web_port),
                    "--socket-url", s.rasa_url],
            "desk": [python, "-m", "bot.desk.server", "--host", s.host, "--port", str(s.desk_port)],
        }
        if s.care_scheduler:
            # Proactive care (bot/scheduler): leader or standby; no port, nothing to poll.
            commands["scheduler"] = [python, "-m", "bot.scheduler", "run"]
        return commands

    def start(self, timeout: float = 180.0) -> None:
        for name, args in self._commands().items():
            self._spawn(name, args)
        self.wait_ready(timeout)

    def stop_process(self, name: str) -> None:
        """Stop one process (tests of what survives a restart); `start_process` brings it back."""
        proc = self.named.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.remove(proc)
        self._remove_tmp_dir(name)

    def start_process(self, name: str, timeout: float = 60.0) -> None:
        self._spawn(name, self._commands()[name])
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        s = self.settings
        deadline = time.monotonic() + timeout
        checks = {
            "action server": f"http://{s.host}:{s.action_port}/health",
            "rasa server": f"{s.rasa_url}/status?token={s.rasa_token}",
            "web server": f"{s.web_url}/health",
            "desk": f"{s.desk_url}/desk/health",
        }
        pending = dict(checks)
        while pending:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"process {proc.args[:3]} exited with {proc.returncode}")
            for name, url in list(pending.items()):
                try:
                    response = requests.get(url, timeout=2)
                    if response.ok and (name != "rasa server" or response.json().get("model_file")):
                        del pending[name]
                except requests.RequestException:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
            if pending:
                time.sleep(0.5)
        self._wait_rasa_workers(deadline)

    def _wait_rasa_workers(self, deadline: float) -> None:
        """With several Rasa workers, wait until each has loaded its model.

        The server answers as soon as one worker is up; the others are still
        loading (~15 s each) and take no messages until then, so a benchmark or
        test started at that point would measure one worker.  Each worker logs
        Rasa's "up and running" line once loaded; without a log (`make run`
        in a terminal) the stack is ready with the first, as Rasa itself is.
        """
        workers = self.settings.rasa_workers
        if workers <= 1 or not self.log_dir or "rasa" not in self.named:
            return
        log = self.log_dir / "rasa.log"
        while True:
            with open(log, "rb") as f:
                f.seek(self._log_start.get("rasa", 0))
                up = f.read().count(b"Rasa server is up and running.")
            if up >= workers:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{up} of {workers} Rasa workers ready")
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        self.named.clear()
        for name in list(self._tmp_dirs):
            self._remove_tmp_dir(name)

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_stack(var_dir: Path, crm_url: str,
                   overrides: Optional[dict[str, str]] = None) -> Stack:
    """A stack on free ports with its own databases under var_dir (not started).

    Tests and benchmarks use it so they never touch the instance `make run` serves.
    `overrides` sets further KEFU_* variables (e.g. the WeChat channel's); the
    WeChat channel stays disabled unless they give it a token, and website
    visitors stay anonymous unless they give a KEFU_WEB_SECRET, and the
    per-sender rate limit is off unless they give KEFU_RATE_PER_MINUTE,
    whatever the calling shell has set.
    """
    settings = settings_mod.load(var_dir, {
        "KEFU_WECHAT_TOKEN": "", "KEFU_WEB_SECRET": "", "KEFU_WEB_ORIGINS": "",
        # Tests drive care delivery themselves; a scheduler only when asked for.
        "KEFU_CARE_SCHEDULER": "0",
        # Tests and load benchmarks send far faster than any person types: the
        # per-sender rate limit is off unless they ask for it (tests/security).
        "KEFU_RATE_PER_MINUTE": "0",
        **(overrides or {}),
        "KEFU_RASA_PORT": str(free_port()), "KEFU_ACTION_PORT": str(free_port()),
        "KEFU_WEB_PORT": str(free_port()), "KEFU_DESK_PORT": str(free_port()),
        "KEFU_RASA_TOKEN": secrets.token_hex(16), "KEFU_CRM_URL": crm_url,
        "KEFU_TRACKER_DB": str(var_dir / "tracker.sqlite3"),
        "KEFU_EVENTS_DB": str(var_dir / "events.sqlite3"),
    })
    return Stack(settings, log_dir=var_dir / "logs")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Run Kefu (action server + Rasa server).")
    parser.add_argument("--shell", action="store_true", help="chat in this terminal")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = settings_mod.load()
    except ValueError as exc:  # a setting that cannot work (KEFU_RASA_WORKERS without Redis, ...)
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    if not settings.model_path.exists():
        print(f"No model at {settings.model_path}; run `make model` first.", file=sys.stderr)
        return 1
    desk_password_file = _ensure_desk_admin(settings)
    stack = Stack(settings, log_dir=None if not args.shell else ROOT / "var" / "logs")
    stopping = False

    def _terminate(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    try:
        stack.start()
        if args.shell:
            return _shell(settings)
        print(
            "\nKefu is running.\n"
            f"  Website: {settings.web_url}/  (demo shop page with the chat widget; "
            + ("signed in as 张伟" if settings.web_secret else "anonymous: set KEFU_WEB_SECRET to sign in as 张伟")
            + f")\n           {settings.web_url}/widget/  (the chat alone)\n"
            f"  REST:   POST {settings.rasa_url}/webhooks/rest/webhook "
            '{"sender": "demo-zhangwei", "message": "我的订单到哪了"}\n'
            f"  API:    {settings.rasa_url} (token in var/rasa_token or $KEFU_RASA_TOKEN)\n"
            f"  Desk:   {settings.desk_url}/desk/  (agents and managers; "
            + (f"first login admin, password in {desk_password_file}"
               if desk_password_file else "accounts: python -m bot.desk.admin list")
            + ")\n"
            "  Demo customers: sender demo-zhangwei (张伟), demo-lina (李娜); anyone else is\n"
            "  anonymous and verifies with order 260101000021 + last four digits 1111.\n"
            "Press Ctrl-C to stop.\n", flush=True)
        while all(p.poll() is None for p in stack.procs):
            time.sleep(1)
        print("A Kefu process exited; stopping.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping Kefu...", flush=True)
        return 0
    finally:
        stack.stop()


def _ensure_desk_admin(settings: Settings) -> Optional[Path]:
    """A first `admin` desk account when there is none (its password file is returned).

    Also names the password file on later starts while it is still there, so
    the banner keeps saying where the first password is until it is removed.
    """
    from bot.desk.admin import ADMIN_PASSWORD_FILE, ensure_admin
    from crm_adapter import CRM
    from crm_adapter.errors import CRMError

    var_dir = Path(settings_mod.VAR)
    crm = CRM(settings.crm_url)
    try:
        created = ensure_admin(crm, var_dir)
    except CRMError as exc:
        logger.warning("could not check the desk accounts: %s", type(exc).__name__)
        return None
    finally:
        crm.dispose()
    existing = var_dir / ADMIN_PASSWORD_FILE
    return created or (existing if existing.exists() else None)


def _shell(settings: Settings) -> int:
    """A small terminal chat over the REST channel (Chinese input works as typed)."""
    sender = input("Sender id [demo-zhangwei]: ").strip() or "demo-zhangwei"
    url = f"{settings.rasa_url}/webhooks/rest/webhook"
    print("Type a message (Ctrl-D to quit).")
    while True:
        try:
            text = input("你: ")
        except EOFError:
            return 0
        for reply in requests.post(url, json={"sender": sender, "message": text}, timeout=30).json():
            print("小K:", reply.get("text", ""))
            for button in reply.get("buttons") or []:
                print(f"   [{button['title']}] {button['payload']}")


if __name__ == "__main__":
    raise SystemExit(main())
