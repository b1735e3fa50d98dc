"""The scale-out topology on one machine: real services, free ports, state under var/scaleout/.

    scripts/scaleout.sh start|stop|status     (installs packages, starts PostgreSQL, then this)
    python -m bot.scaleout start --pg-url URL [--rasa 2] [--actions 2] [--schedulers 2]
    python -m bot.scaleout stop | status

What runs (each a plain process; pids and ports in var/scaleout/state.json):

* Redis — Rasa's lock store: one conversation is processed by one server at a time.
* RabbitMQ — Rasa's Pika event broker (durable queue `kefu_events`).
* events sink (bot/events_sink.py) — queue -> the SQL `events` table the desk tails.
* N action servers (rasa_sdk, stateless) behind nginx.
* N Rasa servers (bot.rasa_server) sharing the PostgreSQL tracker store.
* nginx — one address for Rasa's HTTP API, REST and socket.io (ip_hash), one for the actions.
* two care schedulers — the CRM lease makes exactly one the leader.
* one desk, reading the `events` table and talking to Rasa through nginx.

PostgreSQL (scripts/postgres.sh with KEFU_PG_DIR=var/scaleout/pg) holds the
CRM, the trackers (database kefu_tracker) and the broker table (kefu_events).
`start` returns once everything answers; the processes keep running until
`stop`.  Services are started in dependency order and stopped in reverse.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import requests
from sqlalchemy.engine import make_url

from bot import settings as settings_mod
from bot.run import free_port, sigint_by_default
from bot.settings import ROOT

log = logging.getLogger("kefu.scaleout")

STATE_DIR = ROOT / "var" / "scaleout"
STATE_FILE = STATE_DIR / "state.json"
QUEUE = "kefu_events"
TRACKER_DB = "kefu_tracker"
EVENTS_DB = "kefu_events"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "kefu-scaleout.conf"
ENDPOINTS = ROOT / "deploy" / "scaleout" / "endpoints.yml"
CREDENTIALS = ROOT / "credentials.yml"  # the same channels; the REST one takes message ids
# How long a killed Rasa server's conversation lock blocks that customer (Rasa's default is 60 s).
LOCK_LIFETIME_S = 20


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class Topology:
    """Start, stop and inspect the processes recorded in state.json."""

    def __init__(self, state_dir: Path = STATE_DIR) -> None:
        self.dir = state_dir
        self.state_file = state_dir / "state.json"
        self.state: dict[str, Any] = (json.loads(self.state_file.read_text())
                                      if self.state_file.exists() else {"procs": {}})

    # --- bookkeeping -------------------------------------------------
    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self.state, indent=2))

    def _spawn(self, name: str, args: list[str], env: dict[str, str], cwd: Path = ROOT) -> int:
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=sigint_by_default)
        self.state["procs"][name] = proc.pid
        self._save()
        return proc.pid

    def alive(self, name: str) -> bool:
        pid = self.state["procs"].get(name)
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie of ours (same session) is dead too.
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
        except OSError:
            return False

    def _wait(self, what: str, ready: Callable[[], bool], names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name in names:
                if not self.alive(name):
                    tail = (self.dir / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited while starting:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
            time.sleep(0.5)

    # --- start ---------------------------------------------------------
    def start(self, pg_url: str, rasa: int = 2, actions: int = 2, schedulers: int = 2,
              customers: int = 3000, timeout: float = 600.0) -> dict[str, Any]:
        if any(self.alive(n) for n in self.state["procs"]):
            raise RuntimeError("the scale-out topology is already running (python -m bot.scaleout stop)")
        model = ROOT / "models" / "kefu.tar.gz"
        if not model.exists():
            raise RuntimeError(f"no model at {model}; run `make model` first")
        self.state = {"procs": {}, "pg_url": pg_url, "token": secrets.token_hex(16),
                      "jwt_secret": secrets.token_hex(32)}
        # Fresh logs per start (the previous start's kept in logs.prev): what a log
        # says, e.g. which scheduler leads, is about this run.
        logs = self.dir / "logs"
        if logs.exists():
            shutil.rmtree(self.dir / "logs.prev", ignore_errors=True)
            logs.rename(self.dir / "logs.prev")
        pg = make_url(pg_url)
        prepare_databases(pg_url, customers)
        ports = {name: free_port() for name in ("redis", "amqp", "amqp_dist", "epmd", "nginx_rasa",
                                                 "nginx_actions", "desk")}
        ports["rasa"] = [free_port() for _ in range(rasa)]
        ports["actions"] = [free_port() for _ in range(actions)]
        self.state["ports"] = ports
        self._save()

        self._start_redis(ports["redis"])
        self._start_rabbitmq(ports)
        env = self.child_env()
        python = str(Path(sys.executable).parent / "python")
        self._spawn("events-sink", [python, "-m", "bot.events_sink", "--amqp", env["KEFU_AMQP_URL"],
                                    "--queue", QUEUE, "--dialect", "postgresql", "--host", str(pg.host),
                                    "--port", str(pg.port), "--username", str(pg.username),
                                    "--db", EVENTS_DB], env)
        for i, port in enumerate(ports["actions"], 1):
            self._spawn(f"actions-{i}", [python, "-m", "bot.action_server", "--actions", "actions", "--port", str(port)], env)
        self._start_nginx(ports)
        for i, port in enumerate(ports["rasa"], 1):
            self._spawn(f"rasa-{i}", self.rasa_command(i), env)
        for i in range(1, schedulers + 1):
            self._spawn(f"scheduler-{i}", [python, "-m", "bot.scheduler", "run"], env)
        self._spawn("desk", [python, "-m", "bot.desk.server", "--host", "127.0.0.1",
                             "--port", str(ports["desk"])], env)

        token = self.state["token"]
        names = [n for n in self.state["procs"]]
        checks = [f"http://127.0.0.1:{p}/health" for p in ports["actions"]]
        checks += [f"http://127.0.0.1:{p}/status?token={token}" for p in ports["rasa"]]
        checks += [f"http://127.0.0.1:{ports['desk']}/desk/health", self.rest_url.rsplit("/", 1)[0]]
        self._wait("servers", lambda: all(_answers(url) for url in checks), names, timeout)
        self.state["started_at"] = time.time()
        self._save()
        return self.summary()

    def rasa_command(self, i: int) -> list[str]:
        python = str(Path(sys.executable).parent / "python")
        return [python, "-m", "bot.rasa_server", "run", "--enable-api", f"--auth-token={self.state['token']}",
                "-i", "127.0.0.1", "-p", str(self.state["ports"]["rasa"][i - 1]), "--model",
                str(ROOT / "models" / "kefu.tar.gz"), "--endpoints", str(ENDPOINTS),
                "--credentials", str(CREDENTIALS), "--cors", "http://127.0.0.1"]

    def restart_rasa(self, i: int, timeout: float = 300.0) -> None:
        """Bring a (killed) Rasa server back on its port."""
        name = f"rasa-{i}"
        if self.alive(name):
            # Its port would still answer, so the new process would look ready
            # while the old one went on, unknown to `stop`.
            raise RuntimeError(f"{name} is still running; it can only be restarted once dead")
        self._spawn(name, self.rasa_command(i), self.child_env())
        url = f"http://127.0.0.1:{self.state['ports']['rasa'][i - 1]}/status?token={self.state['token']}"
        self._wait(name, lambda: _answers(url), [name], timeout)

    def child_env(self) -> dict[str, str]:
        ports = self.state["ports"]
        pg = make_url(self.state["pg_url"])
        events_db = f"{EVENTS_DB}?host={pg.host}&port={pg.port}&user={pg.username}"
        settings = settings_mod.load(self.dir, {
            "KEFU_CRM_URL": self.state["pg_url"], "KEFU_RASA_TOKEN": self.state["token"],
            "KEFU_RASA_JWT_SECRET": self.state["jwt_secret"],
            "KEFU_RASA_PORT": str(ports["nginx_rasa"]), "KEFU_ACTION_PORT": str(ports["nginx_actions"]),
            "KEFU_DESK_PORT": str(ports["desk"]), "KEFU_TRACKER_DIALECT": "postgresql",
            "KEFU_TRACKER_DB": TRACKER_DB, "KEFU_EVENTS_DB": events_db,
            "KEFU_WECHAT_TOKEN": "", "KEFU_WEB_SECRET": "",
            # A load-test topology: its clients send far faster than a person types,
            # so the per-sender rate limit is off unless the shell sets one (with it
            # on, a sender's 11th quick message was answered "too fast" and, by
            # design, not processed: the kill test then saw "lost" messages).
            "KEFU_RATE_PER_MINUTE": os.environ.get("KEFU_RATE_PER_MINUTE", "0"),
        })
        env = settings.child_env()
        env.update({
            "KEFU_PG_HOST": str(pg.host), "KEFU_PG_PORT": str(pg.port), "KEFU_PG_USER": str(pg.username),
            "KEFU_PG_PASSWORD": pg.password or "", "KEFU_PG_LOGIN_DB": str(pg.database),
            "KEFU_TRACKER_DB_NAME": TRACKER_DB,
            "KEFU_REDIS_HOST": "127.0.0.1", "KEFU_REDIS_PORT": str(ports["redis"]),
            "KEFU_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
            "KEFU_RABBITMQ_HOST": "127.0.0.1", "KEFU_RABBITMQ_PORT": str(ports["amqp"]),
            "KEFU_RABBITMQ_USER": "guest", "KEFU_RABBITMQ_PASSWORD": "guest", "KEFU_RABBITMQ_QUEUE": QUEUE,
            "KEFU_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{ports['amqp']}/",
            "TICKET_LOCK_LIFETIME": str(LOCK_LIFETIME_S),
            # Two schedulers: a standby takes over within a few seconds of the leader's death.
            "KEFU_CARE_LEADER_TTL": env.get("KEFU_CARE_LEADER_TTL", "15"),
        })
        return env

    def _start_redis(self, port: int) -> None:
        data = self.dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self._spawn("redis", [_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(port),
                              "--dir", str(data), "--save", "", "--appendonly", "no",
                              "--daemonize", "no", "--protected-mode", "yes"], dict(os.environ))
        self._wait("redis", lambda: port_open(port), ["redis"], 30)

    def rabbitmq_env(self) -> dict[str, str]:
        ports = self.state["ports"]
        base = self.dir / "rabbitmq"
        env = dict(os.environ)
        env.update({
            "HOME": str(base / "home"),  # its own Erlang cookie
            "RABBITMQ_NODENAME": "kefu@localhost", "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(ports["amqp"]),
            "RABBITMQ_DIST_PORT": str(ports["amqp_dist"]),
            "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(ports["epmd"]),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        })
        return env

    def _start_rabbitmq(self, ports: dict[str, Any]) -> None:
        base = self.dir / "rabbitmq"
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        (base / "rabbitmq.conf").write_text("# Kefu scale-out: local only.\nloopback_users.guest = true\n")
        env = self.rabbitmq_env()
        self._spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env, cwd=base)
        self._wait("rabbitmq", lambda: port_open(ports["amqp"]), ["rabbitmq"], 120)

    def _start_nginx(self, ports: dict[str, Any]) -> None:
        prefix = self.dir / "nginx"
        for sub in ("conf", "logs", "tmp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        conf = prefix / "conf" / "nginx.conf"
        conf.write_text(render_nginx(prefix, ports))
        nginx = _binary("nginx", "/usr/sbin/nginx")
        check = subprocess.run([nginx, "-t", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx configuration rejected:\n{check.stderr}")
        self._spawn("nginx", [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
                    dict(os.environ))
        self._wait("nginx", lambda: port_open(ports["nginx_rasa"]), ["nginx"], 30)

    # --- views -----------------------------------------------------------
    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.state['ports']['nginx_rasa']}/webhooks/rest/webhook"

    def summary(self) -> dict[str, Any]:
        ports = self.state.get("ports", {})
        return {
            "rest": self.rest_url if ports else None,
            "rasa_api": f"http://127.0.0.1:{ports.get('nginx_rasa')}" if ports else None,
            "desk": f"http://127.0.0.1:{ports.get('desk')}/desk/" if ports else None,
            "postgres": self.state.get("pg_url"),
            "processes": {name: {"pid": pid, "alive": self.alive(name)}
                          for name, pid in self.state["procs"].items()},
        }

    # --- stop ------------------------------------------------------------
    def stop(self, timeout: float = 30.0) -> None:
        """Front to back: nginx, Rasa and friends, then the sink (after the queue drained), brokers."""
        procs = self.state.get("procs", {})
        front = [n for n in procs if n == "nginx"]
        apps = [n for n in procs if n.split("-")[0] in ("rasa", "actions", "scheduler", "desk")]
        order = [front, apps, ["events-sink"], ["rabbitmq"], ["redis"]]
        for group in order:
            if "events-sink" in group and self.alive("events-sink"):
                self._drain_queue()
            for name in group:
                if self.alive(name):
                    _signal_group(procs[name], signal.SIGTERM if name in ("rabbitmq", "redis", "nginx")
                                  else signal.SIGINT)
            for name in group:
                self._reap(name, timeout)
        if "ports" in self.state:
            epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
            subprocess.run([epmd, "-port", str(self.state["ports"]["epmd"]), "-kill"],
                           capture_output=True, env=self.rabbitmq_env())
        self.state["procs"] = {}
        self._save()

    def _drain_queue(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and queue_depth(self) not in (0, None):
            time.sleep(0.5)

    def _reap(self, name: str, timeout: float) -> None:
        pid = self.state["procs"].get(name)
        if not pid:
            return
        deadline = time.monotonic() + timeout
        while self.alive(name) and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.alive(name):
            log.warning("%s did not stop in %.0fs; killing it", name, timeout)
            _signal_group(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def queue_depth(topology: Topology) -> Optional[int]:
    """Messages waiting in the events queue (None when RabbitMQ does not answer)."""
    ctl = subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", "kefu@localhost", "list_queues",
                          "name", "messages", "--no-table-headers", "--quiet"],
                         capture_output=True, text=True, env=topology.rabbitmq_env(), timeout=60)
    for line in ctl.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == QUEUE:
            return int(parts[1])
    return None


def render_nginx(prefix: Path, ports: dict[str, Any]) -> str:
    def servers(port_list: list[int]) -> str:
        return "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in port_list)

    values = {"PREFIX": str(prefix), "RASA_SERVERS": servers(ports["rasa"]),
              "ACTION_SERVERS": servers(ports["actions"]), "RASA_PORT": str(ports["nginx_rasa"]),
              "ACTION_PORT": str(ports["nginx_actions"])}
    # Only ${UPPER_CASE} placeholders: nginx's own $variables stay as they are.
    return re.sub(r"\$\{([A-Z_]+)\}", lambda m: values[m.group(1)], NGINX_TEMPLATE.read_text())


def prepare_databases(pg_url: str, customers: int) -> None:
    """Tracker and broker databases next to the CRM's; the CRM schema, seeded when empty."""
    import psycopg2

    from crm_adapter import CRM
    from crm_adapter.seed import seed

    pg = make_url(pg_url)
    conn = psycopg2.connect(host=pg.host, port=pg.port, user=pg.username, password=pg.password,
                            dbname=pg.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in (TRACKER_DB, EVENTS_DB):
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    crm = CRM(pg_url)
    try:
        crm.create_schema()
        if crm.is_empty():
            seed(crm, customers=customers, seed=42)
    finally:
        crm.dispose()


def _answers(url: str) -> bool:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    if "/status" in url:
        return response.ok and bool(response.json().get("model_file"))
    return response.ok


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal a process we started (it leads its own session) and its children."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _binary(name: str, fallback: Optional[str] = None) -> str:
    found = shutil.which(name) or (fallback if fallback and Path(fallback).exists() else None)
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/scaleout.sh, which installs it")
    return found


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Kefu's scale-out topology on this machine.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start")
    start.add_argument("--pg-url", required=True, help="SQLAlchemy URL of the PostgreSQL CRM database")
    start.add_argument("--rasa", type=int, default=2)
    start.add_argument("--actions", type=int, default=2)
    start.add_argument("--schedulers", type=int, default=2)
    start.add_argument("--customers", type=int, default=3000, help="CRM seed size when the CRM is empty")
    sub.add_parser("stop")
    sub.add_parser("status")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    topology = Topology()
    if args.command == "start":
        if min(args.rasa, args.actions, args.schedulers) < 1:
            print("--rasa, --actions and --schedulers must be at least 1", file=sys.stderr)
            return 2
        try:
            summary = topology.start(args.pg_url, args.rasa, args.actions, args.schedulers, args.customers)
        except Exception:
            topology.stop()
            raise
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    elif args.command == "stop":
        topology.stop()
        print("scale-out topology stopped", file=sys.stderr)
    else:
        print(json.dumps(topology.summary(), indent=2, ensure_ascii=False))
        return 0 if topology.state["procs"] and all(topology.alive(n) for n in topology.state["procs"]) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
