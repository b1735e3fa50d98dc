"""Kefu's customer domain: the CRM behind the bot.

Everything outside this package (actions, scheduler, desk) goes through
`CRM` — see docs/crm-interface.md — and receives frozen views, never
tables. ``from crm_adapter import CRM, errors, views``.
"""
from __future__ import annotations

from . import errors, views
from .service import CRM

__all__ = ["CRM", "errors", "views"]
