"""A shared secret between the Rasa server and the action server.

Why: the action server answers whatever tracker it is sent.  A caller who
can reach it could post a tracker that claims any customer, verified, and
read that customer's orders and addresses back, or file returns in their
name; the Rasa server's own token protects only the Rasa API.  On one
machine it listens on 127.0.0.1, but in the scale-out topology and in the
cluster it is a network service.  So every call from Rasa carries
`HEADER` (endpoints.yml: `action_endpoint.headers`, from KEFU_ACTION_TOKEN,
which the runtime generates per installation when none is set), and the
action server refuses a call without it.  `/health` stays open for probes.

A header, not Rasa's `token` query parameter: URLs end up in access logs.
"""
from __future__ import annotations

import hmac
import logging
from typing import Any, Optional

logger = logging.getLogger(__name__)

HEADER = "X-Kefu-Action-Token"
#: Paths any caller may use (load balancer and Kubernetes probes).
OPEN_PATHS = frozenset({"/health"})
MSG_REFUSED = "action server: missing or wrong X-Kefu-Action-Token"


def authorised(presented: Optional[str], token: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed from response times."""
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


def protect(app: Any, token: str) -> None:
    """Make the rasa_sdk Sanic `app` refuse calls without the token (none configured: warn, stay open)."""
    if not token:
        logger.warning("KEFU_ACTION_TOKEN is empty: the action server accepts calls from anyone who can "
                       "reach it (bot/action_auth.py)")
        return
    from sanic.response import json as json_response

    async def check_token(request: Any) -> Any:
        if request.path in OPEN_PATHS or authorised(request.headers.get(HEADER), token):
            return None
        logger.warning("Refused an action-server call without the shared token (%s %s)",
                       request.method, request.path)
        return json_response({"error": MSG_REFUSED}, status=401)

    app.register_middleware(check_token, "request")
