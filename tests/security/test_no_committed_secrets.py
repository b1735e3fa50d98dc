"""Secrets come only from the environment: nothing that looks like one is committed.

Cheap on purpose (a regex pass over `git ls-files`); it catches the usual
accidents — a private key, a cloud or GitHub token, a literal password or
secret assigned in code or configuration, a runtime file from var/.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bot.settings import ROOT

PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "literal secret": re.compile(
        r"""(?i)(?:password|passwd|secret|api_?key|token|aes_key)["']?\s*[:=]\s*["'][A-Za-z0-9+/_\-]{16,}["']"""),
}
#: Runtime files that hold secrets; they belong under var/, which is never committed.
RUNTIME_FILES = re.compile(r"(^|/)(rasa_token|rasa_jwt_secret|action_token|desk-admin-password|\.env)$|\.(pem|key|p12)$")
#: Tests and benchmarks make throw-away accounts at run time; a literal there is a fixture, not a secret.
ALLOWED = ("tests/", "bench/")


def committed_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [line for line in out.splitlines() if line]


def test_nothing_that_looks_like_a_secret_is_committed() -> None:
    found = []
    for name in committed_files():
        if RUNTIME_FILES.search(name):
            found.append(f"{name}: runtime secret file")
            continue
        if name.startswith(ALLOWED) or name.endswith((".lock", ".min.js", ".png", ".xlsx")):
            continue
        path = Path(ROOT, name)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for what, pattern in PATTERNS.items():
            match = pattern.search(text)
            if match:
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{name}:{line}: {what}")
    assert not found, "\n".join(found)


def test_the_patterns_catch_what_they_are_for() -> None:
    assert PATTERNS["literal secret"].search('KEFU_WECHAT_SECRET = "0123456789abcdef0123"')
    assert PATTERNS["literal secret"].search("token: aB3dE5gH7jK9mN1pQ3sT")  is None  # unquoted YAML is ${VAR}
    assert PATTERNS["literal secret"].search('password="correct-horse-battery"')
    assert PATTERNS["private key"].search("-----BEGIN RSA PRIVATE KEY-----")
    assert RUNTIME_FILES.search("var/rasa_token") and not RUNTIME_FILES.search("bot/settings.py")
    assert RUNTIME_FILES.search("var/rasa_jwt_secret") and RUNTIME_FILES.search("var/action_token")
