"""Start the action server: `python -m rasa_sdk` (same arguments), its start-up heap frozen,
and only Rasa's calls answered (the shared secret of `bot.action_auth`, KEFU_ACTION_TOKEN).

Why: once the actions, SQLAlchemy and the CRM models are imported, the
action server's full garbage collections walked its start-up objects again
and again: two passes of 80-95 ms each in a 21-second REST load, every
action call in flight held up behind them.  `bot.heap_freeze` explains the
remedy; here it runs once the action package is registered, just before
Sanic starts serving, which is the moment `rasa_sdk.endpoint.run` calls
`create_app`.
"""
from __future__ import annotations

import os
from typing import Any

from bot.action_auth import protect
from bot.heap_freeze import freeze_heap


def _create_app_then_freeze(stock: Any) -> Any:
    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = stock(*args, **kwargs)
        protect(app, os.environ.get("KEFU_ACTION_TOKEN", ""))
        freeze_heap()
        return app

    create_app.__wrapped__ = stock  # type: ignore[attr-defined]
    return create_app


def install() -> None:
    """Freeze the heap once `rasa_sdk` has built its app (idempotent)."""
    from rasa_sdk import endpoint

    if not hasattr(endpoint.create_app, "__wrapped__"):
        endpoint.create_app = _create_app_then_freeze(endpoint.create_app)


def main() -> None:
    install()
    from rasa_sdk.__main__ import main as sdk_main

    sdk_main()


if __name__ == "__main__":
    main()
