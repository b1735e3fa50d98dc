"""What the aiohttp servers (desk, widget) do with request bodies nobody read."""
from __future__ import annotations

from aiohttp import web


async def drain_unread_body(request: web.Request, response: web.StreamResponse) -> None:
    """Read and drop the body of a request nobody read before answering it.

    A refusal (401, 403, 404) answers before reading the body.  With the rest
    of a large body left on a keep-alive connection, a later request on it was
    never answered (found by fuzzing: large JSON posts on one connection, one
    of them hung until the client gave up).  Reading it is bounded by
    aiohttp's client_max_size (1 MiB); anything beyond closes the connection.
    """
    if request.body_exists and request.can_read_body:
        try:
            await request.read()
        except Exception:  # too large, or the client went away: do not reuse the connection
            response.force_close()
