"""Runtime configuration from environment variables, with embedded defaults.

Everything runs on one machine with SQLite files under var/ unless told
otherwise; the same variables point the runtime at PostgreSQL and friends.
"""
from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

N = TypeVar("N", int, float)

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("KEFU_VAR_DIR", ROOT / "var"))


def number_from_env(name: str, default: N, cast: Callable[[str], N]) -> N:
    """``cast`` of the variable ``name``, or ``default`` when it is unset or unreadable.

    For the numbers a component reads where it runs (inside Rasa's process,
    not through `load`): a typo in one must not stop the server, so it is
    logged and the default used.
    """
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return cast(raw)
    except ValueError:
        logging.getLogger(__name__).warning("%s=%r is not a valid number; using %s", name, raw, default)
        return default


@dataclass(frozen=True)
class Settings:
    host: str
    rasa_port: int
    action_port: int
    rasa_token: str
    # Signs the desk's and scheduler's calls to Rasa's HTTP API (bot/rasa_auth.py).
    rasa_jwt_secret: str
    model_path: Path
    tracker_dialect: str
    tracker_db: str
    events_db: str
    crm_url: str
    # WeChat Official Account channel (credentials.yml); an empty token disables it.
    wechat_token: str = ""
    wechat_appid: str = ""
    wechat_secret: str = ""
    wechat_aes_key: str = ""
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_reply_budget: str = "4.0"
    # Website: the widget's web server (bot.web.server) and the socket.io channel
    # (credentials.yml).  An empty secret makes every website visitor anonymous.
    web_port: int = 8080
    web_secret: str = ""
    web_origins: str = ""
    web_leeway: str = "30"
    # The agent desk (bot.desk.server).
    desk_port: int = 8090
    desk_auto_assign: str = ""
    desk_cookie_secure: str = ""

    @property
    def desk_url(self) -> str:
        return f"http://{self.host}:{self.desk_port}"
    # Proactive care (bot/scheduler): start the scheduler process with the stack.
    care_scheduler: bool = True
    # Shared secret the Rasa server sends the action server (bot/action_auth.py).
    action_token: str = ""
    # Per-sender message rate limit (bot.ratelimit); empty = its defaults, "0" = off.
    rate_per_minute: str = ""
    rate_burst: str = ""
    # Redis shared by the Rasa processes (conversation locks, WeChat retries);
    # empty = each process keeps its own, which is right for one process.
    redis_url: str = ""
    # Sanic workers of the Rasa server: each loads the model and takes messages
    # from the same port, so two can use both cores of a small machine.  More
    # than one needs redis_url (one customer's messages, one worker at a time).
    rasa_workers: int = 1

    @property
    def lock_store(self) -> str:
        """The lock store class endpoints.yml names: Redis once the processes share one."""
        return ("bot.lock_store.RenewedRedisLockStore" if self.redis_url
                else "bot.lock_store.RenewedInMemoryLockStore")

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    @property
    def web_allowed_origins(self) -> str:
        """Browser origins the socket.io server accepts: the widget server's, plus KEFU_WEB_ORIGINS."""
        extra = [o.strip() for o in self.web_origins.split(",") if o.strip()]
        return ",".join(dict.fromkeys([self.web_url, *extra]))

    @property
    def action_url(self) -> str:
        return f"http://{self.host}:{self.action_port}/webhook"

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    def child_env(self) -> dict[str, str]:
        """Environment for the Rasa, action-server, widget and desk processes (endpoints.yml reads it)."""
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": str(ROOT),
            "KEFU_ACTION_URL": self.action_url,
            "KEFU_TRACKER_DIALECT": self.tracker_dialect,
            "KEFU_TRACKER_DB": self.tracker_db,
            "KEFU_EVENTS_DB": self.events_db,
            "KEFU_CRM_URL": self.crm_url,
            "KEFU_RASA_TOKEN": self.rasa_token,
            "KEFU_RASA_JWT_SECRET": self.rasa_jwt_secret,
            "KEFU_ACTION_TOKEN": self.action_token,
            # credentials.yml reads these; Rasa refuses a ${VAR} that is not set at all,
            # so they are always exported (empty token = WeChat channel disabled).
            "KEFU_WECHAT_TOKEN": self.wechat_token,
            "KEFU_WECHAT_APPID": self.wechat_appid,
            "KEFU_WECHAT_SECRET": self.wechat_secret,
            "KEFU_WECHAT_AES_KEY": self.wechat_aes_key,
            "KEFU_WECHAT_API_BASE": self.wechat_api_base,
            "KEFU_WECHAT_REPLY_BUDGET": self.wechat_reply_budget,
            "KEFU_WEB_PORT": str(self.web_port),
            "KEFU_WEB_SECRET": self.web_secret,
            "KEFU_WEB_ALLOWED_ORIGINS": self.web_allowed_origins,
            "KEFU_WEB_LEEWAY": self.web_leeway,
            "KEFU_RASA_URL": self.rasa_url,
            "KEFU_DESK_PORT": str(self.desk_port),
            "KEFU_DESK_AUTO_ASSIGN": self.desk_auto_assign,
            "KEFU_DESK_COOKIE_SECURE": self.desk_cookie_secure,
            # rasa_sdk takes its bind address only from SANIC_HOST and otherwise listens on
            # 0.0.0.0: an action server open to the network would run any action on any
            # tracker a caller makes up (e.g. one claiming to be a verified customer).
            "SANIC_HOST": self.host,
            # Sanic (Rasa and rasa_sdk; the widget and desk are aiohttp, 75 s) closes an idle
            # keep-alive connection after 5 s by default, sooner than aiohttp's 15 s client
            # pool: Rasa then can send an action call on a socket the action server is
            # closing, get ServerDisconnectedError and drop that turn's events (the likely
            # cause of a complaint lost in a soak). A server must outwait its clients
            # (rasa-sdk itself moved to 120 s later, its PR #1047).
            "SANIC_KEEP_ALIVE_TIMEOUT": env.get("SANIC_KEEP_ALIVE_TIMEOUT", "120"),
            "KEFU_REDIS_URL": self.redis_url,
            "KEFU_LOCK_STORE": self.lock_store,
            "KEFU_RATE_PER_MINUTE": self.rate_per_minute,
            "KEFU_RATE_BURST": self.rate_burst,
            "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            # A log file gets each line when it is written, not when a buffer
            # fills or the process ends (someone tailing var/logs during an incident).
            "PYTHONUNBUFFERED": "1",
            # Rasa's telemetry and error reports would call outside hosts.
            "RASA_TELEMETRY_ENABLED": "false",
        })
        return env


def load(var_dir: Path | None = None, overrides: dict[str, str] | None = None) -> Settings:
    """Settings from the environment; `overrides` win (tests and benchmarks)."""
    env = {**os.environ, **(overrides or {})}
    var = Path(var_dir or VAR)
    var.mkdir(parents=True, exist_ok=True)
    redis_url = env.get("KEFU_REDIS_URL", "").strip()
    workers = _workers(env.get("KEFU_RASA_WORKERS", ""), redis_url)
    return Settings(
        host=env.get("KEFU_HOST", "127.0.0.1"),
        rasa_port=int(env.get("KEFU_RASA_PORT", "5005")),
        action_port=int(env.get("KEFU_ACTION_PORT", "5055")),
        rasa_token=env.get("KEFU_RASA_TOKEN") or _local_token(var),
        rasa_jwt_secret=env.get("KEFU_RASA_JWT_SECRET") or _local_token(var, "rasa_jwt_secret"),
        action_token=env.get("KEFU_ACTION_TOKEN") or _local_token(var, "action_token"),
        model_path=Path(env.get("KEFU_MODEL", ROOT / "models" / "kefu.tar.gz")),
        tracker_dialect=env.get("KEFU_TRACKER_DIALECT", "sqlite"),
        tracker_db=env.get("KEFU_TRACKER_DB", str(var / "tracker.sqlite3")),
        events_db=env.get("KEFU_EVENTS_DB", str(var / "events.sqlite3")),
        crm_url=env.get("KEFU_CRM_URL", f"sqlite:///{var / 'crm.sqlite3'}"),
        wechat_token=env.get("KEFU_WECHAT_TOKEN", ""),
        wechat_appid=env.get("KEFU_WECHAT_APPID", ""),
        wechat_secret=env.get("KEFU_WECHAT_SECRET", ""),
        wechat_aes_key=env.get("KEFU_WECHAT_AES_KEY", ""),
        wechat_api_base=env.get("KEFU_WECHAT_API_BASE") or "https://api.weixin.qq.com",
        wechat_reply_budget=env.get("KEFU_WECHAT_REPLY_BUDGET") or "4.0",
        web_port=int(env.get("KEFU_WEB_PORT") or "8080"),
        web_secret=env.get("KEFU_WEB_SECRET", ""),
        web_origins=env.get("KEFU_WEB_ORIGINS", ""),
        web_leeway=env.get("KEFU_WEB_LEEWAY") or "30",
        desk_port=int(env.get("KEFU_DESK_PORT") or "8090"),
        desk_auto_assign=env.get("KEFU_DESK_AUTO_ASSIGN", ""),
        desk_cookie_secure=env.get("KEFU_DESK_COOKIE_SECURE", ""),
        rate_per_minute=env.get("KEFU_RATE_PER_MINUTE", ""),
        rate_burst=env.get("KEFU_RATE_BURST", ""),
        redis_url=redis_url,
        rasa_workers=workers,
        care_scheduler=(env.get("KEFU_CARE_SCHEDULER") or "1").strip().lower() not in ("0", "false", "no", "off"),
    )


def _workers(raw: str, redis_url: str) -> int:
    """KEFU_RASA_WORKERS, refused at start-up rather than half-working.

    Several workers without a shared lock store could run one customer's two
    messages at once, and the tracker saved last would drop the other's events.
    """
    try:
        workers = int(raw or "1")
    except ValueError:
        raise ValueError(f"KEFU_RASA_WORKERS={raw!r} is not a whole number") from None
    if workers < 1:
        raise ValueError(f"KEFU_RASA_WORKERS={raw!r}: at least one worker is needed")
    if workers > 1 and not redis_url:
        raise ValueError(f"KEFU_RASA_WORKERS={workers} needs KEFU_REDIS_URL: the workers must share "
                         "one conversation lock store (README, Configuration)")
    return workers


def _local_token(var: Path, name: str = "rasa_token") -> str:
    """A per-installation secret kept in var/`name` (mode 600) when none is configured."""
    path = var / name
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    try:  # created readable by the owner only, from the first byte
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(token)
    return token
