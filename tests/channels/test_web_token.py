"""The shop's signed customer token (bot.channels.web_token): what is accepted and what is not."""
from __future__ import annotations

import time

import jwt
import pytest

from bot.channels.web_token import TokenRejected, check_secret, sign, verify

SECRET = "s" * 64  # long enough for the HS512 case too
# Parameters are built at collection time, maybe long before the test runs.
FUTURE = int(time.time()) + 365 * 86400


def test_a_signed_token_yields_its_uid() -> None:
    assert verify(sign("shop-10086", SECRET), SECRET) == "shop-10086"


def test_expiry_with_leeway_for_clock_skew() -> None:
    now = time.time()
    assert verify(sign("u1", SECRET, ttl_s=-10, now=now), SECRET, leeway_s=30) == "u1"
    with pytest.raises(TokenRejected, match="expired"):
        verify(sign("u1", SECRET, ttl_s=-10, now=now), SECRET, leeway_s=0)
    # Issued "in the future" by a shop clock that runs ahead: fine within the leeway.
    ahead = jwt.encode({"uid": "u1", "exp": int(now) + 600, "iat": int(now) + 20}, SECRET, algorithm="HS256")
    assert verify(ahead, SECRET, leeway_s=30) == "u1"


@pytest.mark.parametrize("token, why", [
    (None, "no token"),
    ("", "no token"),
    (12345, "no token"),
    ("x" * 3000, "longer than"),
    ("a.b.c", "invalid token"),
    (jwt.encode({"uid": "u1", "exp": FUTURE}, "t" * 32, algorithm="HS256"), "bad signature"),
    (jwt.encode({"uid": "u1", "exp": FUTURE}, None, algorithm="none"), "invalid token"),
    (jwt.encode({"uid": "u1", "exp": FUTURE}, SECRET, algorithm="HS512"), "invalid token"),
    (jwt.encode({"uid": "u1"}, SECRET, algorithm="HS256"), "invalid token"),
    (jwt.encode({"exp": FUTURE}, SECRET, algorithm="HS256"), "invalid token"),
    (jwt.encode({"uid": 42, "exp": FUTURE}, SECRET, algorithm="HS256"), "uid"),
    (jwt.encode({"uid": "<script>", "exp": FUTURE}, SECRET, algorithm="HS256"), "uid"),
    (jwt.encode({"uid": "u" * 65, "exp": FUTURE}, SECRET, algorithm="HS256"), "uid"),
], ids=["none", "empty", "number", "huge", "garbage", "wrong-secret", "alg-none", "hs512", "no-exp",
        "no-uid", "uid-number", "uid-html", "uid-long"])
def test_bad_tokens_are_rejected_with_a_reason(token: object, why: str) -> None:
    with pytest.raises(TokenRejected, match=why) as rejected:
        verify(token, SECRET)
    assert not isinstance(token, str) or not token or token not in str(rejected.value)


def test_no_secret_means_nobody_is_recognised() -> None:
    with pytest.raises(TokenRejected, match="no KEFU_WEB_SECRET"):
        verify(sign("u1", SECRET), "")


def test_short_secret_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        check_secret("too-short")
    check_secret("")  # empty: the channel runs, everyone anonymous
    with pytest.raises(ValueError, match="uid"):
        sign("bad uid with spaces", SECRET)
