"""The WeChat API calls the channel needs: an access token and 客服消息.

wechatpy's client does the HTTP and error decoding, pointed at a configurable
base URL (tests run a fake WeChat API on 127.0.0.1).  Its own retry on token
errors is switched off because it retries without limit; here a rejected
token (40001 invalid, 42001 expired) is refreshed once and the call repeated
once, then given up and logged.  45015 means the customer has not written in
48 hours, when WeChat no longer lets an account message them: logged, never
retried.

The client is synchronous (requests); the channel calls it from a worker
thread.  One lock keeps concurrent threads from fetching tokens in parallel
(each fetch invalidates the previous token at WeChat).
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from crm_adapter.masking import guard_logger

logger = guard_logger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
TOKEN_ERRORS = (40001, 42001)
OUTSIDE_WINDOW = 45015


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
                 timeout: float = 10.0) -> None:
        self._client = _Client(appid, secret, api_base or DEFAULT_API_BASE, timeout)
        self._token_lock = threading.Lock()

    def send_text(self, openid: str, content: str) -> bool:
        """POST /cgi-bin/message/custom/send with a text message (blocking)."""
        for attempt in (1, 2):
            try:
                with self._token_lock:
                    self._client.access_token  # fetched here if missing or expiring
                self._client.message.send_text(openid, content)
                return True
            except WeChatClientException as exc:
                if exc.errcode in TOKEN_ERRORS and attempt == 1:
                    logger.info("wechat access token rejected (errcode %s); refreshing once",
                                exc.errcode)
                    if not self._refresh_token():
                        return False
                    continue
                if exc.errcode == OUTSIDE_WINDOW:
                    logger.warning("wechat customer-service message to %s refused: outside the "
                                   "48-hour window (45015); not retried", mask_openid(openid))
                else:
                    logger.error("wechat customer-service message to %s failed: errcode %s",
                                 mask_openid(openid), exc.errcode)
                return False
            except (requests.RequestException, ValueError, KeyError) as exc:
                logger.error("wechat API unreachable or answering nonsense (sending to %s): %s",
                             mask_openid(openid), type(exc).__name__)
                return False
        return False

    def _refresh_token(self) -> bool:
        try:
            with self._token_lock:
                self._client.fetch_access_token()
            return True
        except (WeChatClientException, requests.RequestException, ValueError, KeyError) as exc:
            logger.error("wechat access token refresh failed: %s",
                         getattr(exc, "errcode", None) or type(exc).__name__)
            return False
