"""The signed customer token a shop's website hands to the chat widget.

The shop's backend knows who is logged in; Kefu does not.  So the backend
signs ``{"uid": "<shop user id>", "exp": <unix time>}`` with a secret it shares
with Kefu (``KEFU_WEB_SECRET``), as a JWT with HMAC-SHA256 (HS256), and the
page passes the token to the widget.  The website channel (bot.channels.web)
accepts the uid only when the signature and the expiry check out; anything
else makes the visitor anonymous, never an error they see.

Kept free of Rasa imports: the demo host page (bot.web.server) signs with it too.
"""
from __future__ import annotations

import re
import time
from typing import Optional

import jwt

ALGORITHM = "HS256"
# RFC 7518 3.2: an HS256 key shorter than the hash output weakens the signature.
MIN_SECRET_BYTES = 32
# Tokens are short; a huge one is garbage (or an attack) and is not parsed at all.
MAX_TOKEN_CHARS = 2048
DEFAULT_LEEWAY_S = 30
# A shop user id is an opaque label: what crm_adapter accepts as an external id.
UID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


class TokenRejected(Exception):
    """Why a token was not accepted (English, for the log; never contains the token)."""


def check_secret(secret: str) -> None:
    """Refuse a secret too short to sign with, at start-up rather than per message."""
    if secret and len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"KEFU_WEB_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                         f"(got {len(secret.encode())}); generate one with "
                         "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")


def sign(uid: str, secret: str, ttl_s: int = 3600, now: Optional[float] = None) -> str:
    """The token a shop's backend would issue for a logged-in user (demo page, tests)."""
    if not UID_RE.match(uid):
        raise ValueError("uid must be 1-64 characters of letters, digits and _.:@-")
    check_secret(secret)
    issued = int(now if now is not None else time.time())
    return jwt.encode({"uid": uid, "exp": issued + ttl_s, "iat": issued}, secret, algorithm=ALGORITHM)


def verify(token: object, secret: str, leeway_s: float = DEFAULT_LEEWAY_S) -> str:
    """The uid a valid token carries; raises TokenRejected otherwise.

    `leeway_s` absorbs clock skew between the shop's servers and ours, for
    ``exp`` and for a future ``iat``/``nbf``.
    """
    if not secret:
        raise TokenRejected("no KEFU_WEB_SECRET configured")
    if not isinstance(token, str) or not token:
        raise TokenRejected("no token")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected(f"token longer than {MAX_TOKEN_CHARS} characters")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=leeway_s,
                            options={"require": ["exp", "uid"]})
    except jwt.ExpiredSignatureError:
        raise TokenRejected("token expired") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("bad signature") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"invalid token ({type(exc).__name__})") from None
    uid = claims.get("uid")
    if not isinstance(uid, str) or not UID_RE.match(uid):
        raise TokenRejected("uid claim missing or malformed")
    return uid
