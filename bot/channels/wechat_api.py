"""The WeChat API calls the channel needs: an access token and 客服消息.

wechatpy's client does the HTTP and error decoding, pointed at a configurable
base URL (tests run a fake WeChat API on 127.0.0.1).  Its own retry on token
errors is switched off because it retries without limit; here a rejected
token (40001 invalid, 42001 expired) is refreshed once and the call repeated
once, then given up and logged.  45015 means the customer has not written in
48 hours, when WeChat no longer lets an account message them: logged, never
retried.

Transient failures are retried after a short pause (``retry_delays``): -1
(WeChat's 系统繁忙, "try again later"), HTTP 502/503 from a proxy on the way,
and a connection that was never made (refused, connect timeout).
A read timeout is not: the message may already be on the customer's phone,
and 客服消息 has no idempotency key, so a retry could show it twice; it is
logged as an unknown outcome instead.

The client is synchronous (requests); the channel calls it from a worker
thread.  One lock keeps concurrent threads from fetching tokens in parallel
(each fetch invalidates the previous token at WeChat).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import requests
from urllib3.exceptions import NewConnectionError
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from crm_adapter.masking import guard_logger

logger = guard_logger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
TOKEN_ERRORS = (40001, 42001)
OUTSIDE_WINDOW = 45015
SYSTEM_BUSY = -1
RETRY_DELAYS_S = (0.5, 2.0)


def mask_openid(openid: Optional[str]) -> str:
    """``oAbCdEfGh…XyZ`` -> ``oAbC****yZ``: enough to tell conversations apart in a log."""
    if not openid:
        return "-"
    if len(openid) <= 8:
        return "****"
    return f"{openid[:4]}****{openid[-2:]}"


class _Client(WeChatClient):
    """wechatpy's client with the API base URL (token endpoint included) configurable."""

    def __init__(self, appid: str, secret: str, api_base: str, timeout: float) -> None:
        super().__init__(appid, secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = f"{api_base.rstrip('/')}/cgi-bin/"

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


class WeChatApi:
    """Sends customer-service messages; returns whether WeChat accepted each one."""

    def __init__(self, appid: str, secret: str, api_base: str = DEFAULT_API_BASE,
                 timeout: float = 10.0, retry_delays: Sequence[float] = RETRY_DELAYS_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = _Client(appid, secret, api_base or DEFAULT_API_BASE, timeout)
        self._token_lock = threading.Lock()
        self._retry_delays = tuple(retry_delays)
        self._sleep = sleep

    def send_text(self, openid: str, content: str) -> bool:
        """POST /cgi-bin/message/custom/send with a text message (blocking)."""
        token_refreshed = False
        pauses = iter(self._retry_delays)
        while True:
            try:
                with self._token_lock:
                    self._client.access_token  # fetched here if missing or expiring
                self._client.message.send_text(openid, content)
                return True
            except WeChatClientException as exc:
                if exc.errcode in TOKEN_ERRORS and not token_refreshed:
                    logger.info("wechat access token rejected (errcode %s); refreshing once",
                                exc.errcode)
                    token_refreshed = True
                    if not self._refresh_token():
                        return False
                    continue
                if _busy(exc) and self._pause(pauses, openid, _describe(exc)):
                    continue
                if exc.errcode == OUTSIDE_WINDOW:
                    logger.warning("wechat customer-service message to %s refused: outside the "
                                   "48-hour window (45015); not retried", mask_openid(openid))
                else:
                    logger.error("wechat customer-service message to %s failed: %s",
                                 mask_openid(openid), _describe(exc))
                return False
            except requests.RequestException as exc:
                if _never_reached(exc) and self._pause(pauses, openid, type(exc).__name__):
                    continue
                if isinstance(exc, requests.ReadTimeout):
                    logger.error("wechat API did not answer in time (sending to %s): it may have "
                                 "delivered the message; not repeated, so the customer never reads "
                                 "it twice", mask_openid(openid))
                else:
                    logger.error("wechat API unreachable (sending to %s): %s",
                                 mask_openid(openid), type(exc).__name__)
                return False
            except (ValueError, KeyError) as exc:
                logger.error("wechat API answering nonsense (sending to %s): %s",
                             mask_openid(openid), type(exc).__name__)
                return False

    def _pause(self, pauses: Iterator[float], openid: str, why: str) -> bool:
        """Wait before the next attempt; False once the retries are used up."""
        delay = next(pauses, None)
        if delay is None:
            return False
        logger.warning("wechat API transient failure (sending to %s): %s; retrying in %.1f s",
                       mask_openid(openid), why, delay)
        self._sleep(delay)
        return True

    def _refresh_token(self) -> bool:
        try:
            with self._token_lock:
                self._client.fetch_access_token()
            return True
        except (WeChatClientException, requests.RequestException, ValueError, KeyError) as exc:
            logger.error("wechat access token refresh failed: %s",
                         getattr(exc, "errcode", None) or type(exc).__name__)
            return False


def _http_status(exc: WeChatClientException) -> Optional[int]:
    """The HTTP status behind an error wechatpy reports with errcode None."""
    return getattr(getattr(exc, "response", None), "status_code", None)


def _busy(exc: WeChatClientException) -> bool:
    """WeChat's "system busy, try later", or a 502/503 from the way there.
    Not 500 or 504: WeChat may have acted before failing."""
    return exc.errcode == SYSTEM_BUSY or (exc.errcode is None and _http_status(exc) in (502, 503))


def _never_reached(exc: requests.RequestException) -> bool:
    """The request never left: connection refused or not made in time (safe to repeat)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _describe(exc: WeChatClientException) -> str:
    if exc.errcode is None:
        return f"HTTP {_http_status(exc) or '?'}"
    return f"errcode {exc.errcode}"
