"""How Kefu's own processes (the desk, the care scheduler) authenticate to Rasa's HTTP API.

Why not Rasa's `?token=`: a secret in the query string is written, with the
rest of the request line, into every access log on its way.  In the scale-out
topology the desk reaches Rasa through nginx, whose access log then held the
API token (which opens every conversation) on each of the desk's calls.  Rasa
also accepts a JWT in the `Authorization` header, which logs leave out.  Each
caller signs its own short-lived token with a shared secret
(`KEFU_RASA_JWT_SECRET`); a token copied from somewhere expires within minutes.

The Rasa side is given the secret by `bot.rasa_server` from the environment,
not on its command line, so `ps` does not show it either.  The API token
stays for operators (`make shell`, curl by hand).
"""
from __future__ import annotations

import time
from typing import Mapping, Optional

import jwt

SECRET_ENV = "KEFU_RASA_JWT_SECRET"
ALGORITHM = "HS256"
#: Seconds a signed token is good for; each request signs a fresh one.
LIFETIME_S = 300


def bearer(secret: str, caller: str, now: Optional[float] = None) -> dict[str, str]:
    """The `Authorization` header for one request by `caller` (the desk, the scheduler).

    Rasa's role check: "admin" may act on any conversation, which both callers do.
    Without a secret there is no header: Rasa answers 401, which each caller
    reports as it reports any refusal (and logs at start-up that it is unset).
    """
    if not secret:
        return {}
    issued = int(time.time() if now is None else now)
    claims = {"user": {"username": caller, "role": "admin"}, "iat": issued, "exp": issued + LIFETIME_S}
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm=ALGORITHM)}"}


def server_args(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """`rasa run` arguments with the JWT secret from the environment added (unless given)."""
    secret = env.get(SECRET_ENV, "")
    if len(argv) < 2 or argv[1] != "run" or not secret or any(a.startswith("--jwt-secret") for a in argv):
        return argv
    return [*argv, f"--jwt-secret={secret}", f"--jwt-method={ALGORITHM}"]
