"""A website visitor's browser, as far as the protocol goes: a python-socketio client.

`WebPeer` speaks Rasa's socket.io protocol exactly as the widget does
(session_request -> session_confirm, user_uttered with the shop token in
customData -> bot_uttered).  A turn is over when the conversation's tracker
shows the bot listening again after our message, so `say` returns the whole
turn's replies without guessing with sleeps.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Optional

import requests
import socketio

from bot.run import Stack

#: How long `close` waits for the client to disconnect.  python-engineio's
#: polling client sends its close packet at once, then waits for its pending
#: long poll, which Rasa's server answers only at the next ping (up to 30 s,
#: measured): nothing the test needs happens after the first second or two.
CLOSE_TIMEOUT_S = 3.0


class WebPeer:
    def __init__(self, stack: Stack, token: Optional[str] = None,
                 origin: Optional[str] = None) -> None:
        self.stack = stack
        self.token = token
        self.origin = origin or stack.settings.web_url
        self.client = socketio.Client(reconnection=False, handle_sigint=False)
        self.confirms: "queue.Queue[Any]" = queue.Queue()
        self.replies: "queue.Queue[dict]" = queue.Queue()
        self.client.on("session_confirm", self.confirms.put)
        self.client.on("bot_uttered", self.replies.put)
        self.session_id: Optional[str] = None

    # --- connection ------------------------------------------------------------

    def connect(self, transport: str = "polling") -> "WebPeer":
        # The sync client needs websocket-client (not in the lock) for websockets;
        # the browser test and the benchmark (AsyncClient over aiohttp) cover them.
        self.client.connect(self.stack.settings.rasa_url, headers={"Origin": self.origin},
                            transports=[transport], socketio_path="/socket.io", wait_timeout=10)
        return self

    def request_session(self, session_id: Any = None) -> str:
        self.client.emit("session_request", {"session_id": session_id})
        self.session_id = self.confirms.get(timeout=10)
        return self.session_id

    def open(self, session_id: Optional[str] = None) -> "WebPeer":
        self.connect()
        self.request_session(session_id)
        return self

    def close(self) -> None:
        """Disconnect, without waiting for the client's pending long poll.

        python-engineio's polling client waits in ``disconnect`` for its
        read-loop thread, whose long poll the server ends only at its next
        ping: 30 s per visitor here, and once in a CI check it seemed to
        wait without end.  Its threads are daemons, so giving up after a
        moment only leaves a closed-down client behind until that poll ends.
        """
        done = threading.Thread(target=self.client.disconnect, daemon=True)
        done.start()
        done.join(CLOSE_TIMEOUT_S)

    def __enter__(self) -> "WebPeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- talking -----------------------------------------------------------------

    def emit_raw(self, data: Any) -> None:
        self.client.emit("user_uttered", data)

    def send(self, text: str, custom: Optional[dict] = None) -> None:
        custom = dict(custom or {})
        if self.token is not None:
            custom.setdefault("token", self.token)
        self.emit_raw({"message": text, "session_id": self.session_id, "customData": custom})

    def say(self, text: str, custom: Optional[dict] = None, timeout: float = 90) -> list[dict]:
        """Send one message; return every bot_uttered of the turn it caused."""
        before = self.user_turns()
        self.send(text, custom)
        self.wait_turn(before + 1, timeout)
        return self.drain()

    def say_text(self, text: str, custom: Optional[dict] = None) -> str:
        return "\n".join(m.get("text", "") for m in self.say(text, custom))

    def drain(self, quiet: float = 0.4) -> list[dict]:
        """Replies received so far, after `quiet` seconds without a new one."""
        replies: list[dict] = []
        while True:
            try:
                replies.append(self.replies.get(timeout=quiet))
            except queue.Empty:
                return replies

    # --- the conversation as Rasa stores it ---------------------------------------

    def tracker(self) -> dict:
        s = self.stack.settings
        response = requests.get(f"{s.rasa_url}/conversations/{self.session_id}/tracker",
                                params={"token": s.rasa_token}, timeout=30)
        response.raise_for_status()
        return response.json()

    def user_events(self) -> list[dict]:
        return [e for e in self.tracker()["events"] if e.get("event") == "user"]

    def user_turns(self) -> int:
        return len(self.user_events()) if self.session_id else 0

    def wait_turn(self, users: int, timeout: float) -> None:
        """Until the tracker holds `users` user messages and the bot's turn is over:
        it listens again, or it handed the chat to a person (a `pause`, after
        which the bot stays silent, so no `action_listen` follows)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.tracker()["events"]
            user_idx = [i for i, e in enumerate(events) if e.get("event") == "user"]
            ends = [i for i, e in enumerate(events)
                    if e.get("event") == "pause"
                    or (e.get("event") == "action" and e.get("name") == "action_listen")]
            if len(user_idx) >= users and ends and ends[-1] > user_idx[-1]:
                return
            time.sleep(0.2)
        raise TimeoutError(f"the bot did not finish turn {users} of {self.session_id} in {timeout}s")
