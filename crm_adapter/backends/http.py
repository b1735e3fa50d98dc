"""HTTP plumbing shared by the remote directories.

A remote CRM is slow or down far more often than our own database, and the
bot must answer within seconds either way. So every call has connect and
read timeouts, transient failures (connection errors, timeouts, HTTP 429 and
5xx) are retried with exponential back-off and full jitter, honouring the
server's ``Retry-After``, and all attempts together stay within a total time
budget. When the budget or the attempts run out the caller gets
`CRMUnavailable`, which the outbox turns into "accepted, will sync".

Retrying is done around a *step* (`HttpClient.retrying`), not around a single
request, so that a non-idempotent create can search for its idempotency key
again before it posts again.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping, Optional, TypeVar

import requests

from ..errors import CRMUnavailable
from ..masking import guard_logger

log = guard_logger(__name__)

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class Transient(Exception):
    """A failure worth another attempt; ``retry_after`` is the server's wish, in seconds."""

    def __init__(self, reason: str, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for one answer and how hard to try before giving up."""

    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    total_budget: float = 20.0  # seconds for all attempts and waits together

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "RetryPolicy":
        env = os.environ if env is None else env
        default = cls()

        def number(name: str, fallback: float) -> float:
            raw = (env.get(name) or "").strip()
            try:
                value = float(raw) if raw else fallback
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be positive")
            return value

        return cls(
            connect_timeout=number("KEFU_CRM_CONNECT_TIMEOUT", default.connect_timeout),
            read_timeout=number("KEFU_CRM_READ_TIMEOUT", default.read_timeout),
            max_attempts=int(number("KEFU_CRM_MAX_ATTEMPTS", default.max_attempts)),
            base_delay=number("KEFU_CRM_RETRY_BASE_DELAY", default.base_delay),
            max_delay=number("KEFU_CRM_RETRY_MAX_DELAY", default.max_delay),
            total_budget=number("KEFU_CRM_RETRY_BUDGET", default.total_budget),
        )

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**(attempt-1))]."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def retry_after_seconds(response: requests.Response) -> Optional[float]:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class HttpClient:
    """A `requests.Session` with the retry policy; one per directory (connection reuse)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        name: str,
        sleep: Callable[[float], None] = time.sleep,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.policy = policy
        self.name = name
        self.session = requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def close(self) -> None:
        self.session.close()

    def send_once(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request; transport failures, 429 and 5xx raise `Transient`, other answers return."""
        kwargs.setdefault("timeout", (self.policy.connect_timeout, self.policy.read_timeout))
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise Transient(f"timeout ({type(exc).__name__})") from exc
        except requests.ConnectionError as exc:
            raise Transient(f"connection failed ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            raise Transient(f"request failed ({type(exc).__name__})") from exc
        if response.status_code in RETRYABLE_STATUSES:
            raise Transient(f"HTTP {response.status_code}", retry_after_seconds(response))
        return response

    def retrying(self, step: Callable[[], T], what: str) -> T:
        """Run ``step`` until it does not raise `Transient`, within the policy; else `CRMUnavailable`."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return step()
            except Transient as exc:
                elapsed = time.monotonic() - started
                delay = self.policy.backoff(attempt, self._rng)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                out_of_time = elapsed + delay >= self.policy.total_budget
                if attempt >= self.policy.max_attempts or out_of_time:
                    log.warning("%s %s gave up after %d attempts: %s", self.name, what, attempt, exc.reason)
                    raise CRMUnavailable(f"{self.name} CRM unavailable ({exc.reason})") from exc
                log.info("%s %s attempt %d failed (%s); retrying in %.2fs",
                         self.name, what, attempt, exc.reason, delay)
                self._sleep(delay)

    def send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        """A request that is safe to repeat (reads, updates, keyed creates), with retries."""
        return self.retrying(lambda: self.send_once(method, url, **kwargs), what)


def json_body(response: requests.Response) -> Any:
    """The JSON body, or None for an empty one; a garbled body is the server's fault."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise Transient(f"HTTP {response.status_code} with a body that is not JSON") from exc


__all__ = ["HttpClient", "RetryPolicy", "Transient", "json_body", "retry_after_seconds"]
