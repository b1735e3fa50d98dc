"""How a care message travels: into a Rasa conversation, by e-mail, by SMS.

Each sender raises `SendError` on failure; ``permanent`` means retrying
cannot help (a refused address, a 4xx from the gateway), so the message goes
straight to the dead letters instead of being retried for hours.
"""
from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Mapping, Optional
from urllib.parse import quote

import requests

from bot import rasa_auth
from crm_adapter.masking import guard_logger, mask_email, mask_phone

log = guard_logger(__name__)

CARE_INTENT = "EXTERNAL_care_message"
TIMEOUT_S = 10.0


class SendError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class RasaPush:
    """Rasa's HTTP API: read a conversation's last customer message, trigger the care intent."""

    url: str
    jwt_secret: str  # signs each call (bot/rasa_auth.py): the API token never travels in a URL
    timeout_s: float = TIMEOUT_S

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "RasaPush":
        env = os.environ if env is None else env
        secret = env.get(rasa_auth.SECRET_ENV) or ""
        if not secret:
            log.warning("%s is not set: Rasa will refuse the care messages pushed into conversations",
                        rasa_auth.SECRET_ENV)
        return cls((env.get("KEFU_RASA_URL") or "http://127.0.0.1:5005").rstrip("/"), secret)

    def _auth(self) -> dict[str, str]:
        return rasa_auth.bearer(self.jwt_secret, "kefu-scheduler")

    def _conversation(self, conversation_id: str) -> str:
        return f"{self.url}/conversations/{quote(conversation_id, safe='')}"

    def last_customer_message_at(self, conversation_id: str) -> Optional[datetime]:
        """When the customer last wrote in this conversation (aware UTC), from the tracker.

        Injected intents (our own EXTERNAL_* triggers) do not count: only what
        the customer typed opens WeChat's 48-hour window or proves a live widget.
        """
        try:
            response = requests.get(f"{self._conversation(conversation_id)}/tracker",
                                    params={"include_events": "AFTER_RESTART"}, headers=self._auth(),
                                    timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise SendError(f"rasa unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise SendError(f"rasa tracker answered {response.status_code}")
        for event in reversed(response.json().get("events") or []):
            if event.get("event") != "user":
                continue
            text = str(event.get("text") or "")
            if (event.get("metadata") or {}).get("is_external") or text.startswith("EXTERNAL"):
                continue
            return datetime.fromtimestamp(float(event.get("timestamp") or 0), tz=timezone.utc)
        return None

    def trigger(self, conversation_id: str, output_channel: str, send_id: int) -> None:
        try:
            response = requests.post(
                f"{self._conversation(conversation_id)}/trigger_intent",
                params={"output_channel": output_channel}, headers=self._auth(),
                json={"name": CARE_INTENT, "entities": {"care_send_id": str(send_id)}},
                timeout=self.timeout_s * 3,
            )
        except requests.RequestException as exc:
            raise SendError(f"rasa unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise SendError(f"rasa trigger_intent answered {response.status_code}",
                            permanent=response.status_code in (400, 404))


@dataclass(frozen=True)
class SmtpMail:
    """E-mail through an SMTP server (STARTTLS unless turned off, login when a user is set)."""

    host: str
    port: int
    sender: str
    user: str = ""
    password: str = ""
    starttls: bool = True
    sender_name: str = "客服"
    timeout_s: float = TIMEOUT_S

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Optional["SmtpMail"]:
        env = os.environ if env is None else env
        host = (env.get("KEFU_SMTP_HOST") or "").strip()
        if not host:
            return None
        return cls(host=host, port=int(env.get("KEFU_SMTP_PORT") or 587),
                   sender=(env.get("KEFU_SMTP_FROM") or "").strip() or f"kefu@{host}",
                   user=env.get("KEFU_SMTP_USER") or "", password=env.get("KEFU_SMTP_PASSWORD") or "",
                   starttls=(env.get("KEFU_SMTP_STARTTLS") or "1").strip().lower() not in ("0", "false", "no", "off"),
                   sender_name=env.get("KEFU_SMTP_FROM_NAME") or "客服")

    def send(self, to: str, subject: str, text: str, send_id: int) -> None:
        message = EmailMessage()
        message["From"] = formataddr((self.sender_name, self.sender))
        message["To"] = to
        message["Subject"] = subject
        # Stable per send: a receiving system can drop a duplicate after a retried attempt.
        message["Message-ID"] = make_msgid(idstring=f"care-{send_id}", domain=self.sender.split("@")[-1])
        message["X-Kefu-Care-Id"] = str(send_id)
        message.set_content(text, charset="utf-8")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"recipient refused for {mask_email(to)}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"smtp failed: {type(exc).__name__}") from exc
        log.info("care %s e-mailed to %s", send_id, mask_email(to))


@dataclass(frozen=True)
class SmsGateway:
    """An SMS gateway's HTTP API: POST JSON {to, text, id} with a bearer token."""

    url: str
    token: str
    timeout_s: float = TIMEOUT_S

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Optional["SmsGateway"]:
        env = os.environ if env is None else env
        url = (env.get("KEFU_SMS_URL") or "").strip()
        return cls(url, env.get("KEFU_SMS_TOKEN") or "") if url else None

    def send(self, to: str, text: str, send_id: int) -> None:
        try:
            response = requests.post(self.url, json={"to": to, "text": text, "id": f"care-{send_id}"},
                                     headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise SendError(f"sms gateway unreachable: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
            raise SendError(f"sms gateway answered {response.status_code}", permanent=permanent)
        log.info("care %s sent by sms to %s", send_id, mask_phone(to))


@dataclass(frozen=True)
class Senders:
    rasa: RasaPush
    mail: Optional[SmtpMail] = None
    sms: Optional[SmsGateway] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Senders":
        return cls(RasaPush.from_env(env), SmtpMail.from_env(env), SmsGateway.from_env(env))

