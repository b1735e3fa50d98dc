"""Headless Chromium for browser tests: Debian's binary driven by Playwright.

Playwright's own browser download cannot work here, so Playwright launches
/usr/bin/chromium (scripts/chromium.sh installs it; scripts/test.sh calls
that).  Without the binary these tests FAIL, unless KEFU_SKIP_BROWSER=1,
mirroring KEFU_SKIP_POSTGRES.  Every request a page makes is checked: only
127.0.0.1 may be reached, anything else is aborted and fails the test.
Screenshots land in var/test-artifacts/ (gitignored) for a human to look at.
Test modules import the fixtures: ``from tests.browser import chromium, browser_factory``.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect, sync_playwright

from bot.settings import ROOT

CHROMIUM = Path(os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "var" / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPLY_TIMEOUT_MS = 90_000
LOCAL_HOSTS = {"127.0.0.1"}


@pytest.fixture(scope="module")
def chromium() -> Path:
    if os.environ.get("KEFU_SKIP_BROWSER") == "1":
        warnings.warn("KEFU_SKIP_BROWSER=1: the browser tests (widget, desk) are SKIPPED")
        pytest.skip("KEFU_SKIP_BROWSER=1")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run scripts/chromium.sh (scripts/test.sh does), "
                    "or set KEFU_SKIP_BROWSER=1 to skip the browser tests")
    return CHROMIUM


class Browser:
    """One fresh browser profile with outside requests blocked and recorded."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.outside: list[str] = []
        self.seen: list[str] = []
        context.route("**/*", self._guard)

    def _guard(self, route: Route) -> None:
        url = route.request.url
        self.seen.append(url)
        if url.startswith("data:") or urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def page(self) -> Page:
        page = self.context.new_page()
        page.on("websocket", lambda ws: self.seen.append(ws.url))
        return page

    def assert_local_only(self) -> None:
        assert not self.outside, f"requests left 127.0.0.1: {self.outside}"
        assert all(u.startswith("data:") or urlsplit(u).hostname in LOCAL_HOSTS for u in self.seen), self.seen


@pytest.fixture()
def browser_factory(chromium: Path, tmp_path: Path) -> Iterator:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    contexts: list[BrowserContext] = []
    with sync_playwright() as p:
        def make(viewport: dict[str, int] | None = None) -> Browser:
            profile = tmp_path / f"profile-{len(contexts)}"
            context = p.chromium.launch_persistent_context(
                str(profile), executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
                viewport=viewport or {"width": 1280, "height": 800}, locale="zh-CN")
            contexts.append(context)
            return Browser(context)
        yield make
        for context in contexts:
            context.close()


# --- the chat widget (bot/web/static/kefu-widget.js) ---------------------------------

def messages(page: Page):
    return page.locator(".kefu-messages")


def open_chat(page: Page, web_url: str) -> None:
    """The demo shop with its chat panel open and connected, as a customer starts."""
    page.goto(f"{web_url}/")
    page.get_by_role("button", name="打开在线客服").click()
    expect(page.locator(".kefu-dot")).to_have_attribute("title", "在线", timeout=30_000)


def send(page: Page, text: str) -> None:
    page.locator(".kefu-input").fill(text)
    page.locator(".kefu-input").press("Enter")


def expect_reply(page: Page, pattern: str) -> None:
    expect(page.locator(".kefu-bot .kefu-bubble").last).to_contain_text(re.compile(pattern),
                                                                        timeout=REPLY_TIMEOUT_MS)


def session_id(page: Page) -> str:
    return page.evaluate("() => window.kefuWidget.sessionId")
