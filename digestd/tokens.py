"""Signed tokens for the links in emails: unsubscribe, preferences, confirmation, a digest's
page, the feed.

A token is `base64url(payload).base64url(hmac_sha256(secret, payload))` where the
payload is `purpose:value:expiry`. The purpose is signed too, so an unsubscribe
token can never be replayed as a preferences token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote, unquote


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, purpose: str, value: str | int, *, ttl: float | None = None,
         now: float | None = None) -> str:
    """A token for `value`, valid for `ttl` seconds (None: never expires)."""
    expiry = "" if ttl is None else str(int((now if now is not None else time.time()) + ttl))
    payload = f"{purpose}:{value}:{expiry}".encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:18]
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(secret: bytes, purpose: str, token: str, *, now: float | None = None) -> str | None:
    """The value signed in `token`, or None if it is forged, mangled, expired or for
    another purpose."""
    try:
        payload_b64, mac_b64 = token.split(".")
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except (ValueError, TypeError):
        return None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        got_purpose, value, expiry = payload.decode().split(":", 2)
    except (UnicodeDecodeError, ValueError):
        return None
    if got_purpose != purpose:
        return None
    if expiry and int(expiry) < (now if now is not None else time.time()):
        return None
    return value


# -- what the links of one subscriber sign -----------------------------------------------------

def subscriber_value(subscriber_id: int, generation: int = 0) -> str:
    """The value signed into /u/, /p/ and /f/ links: the subscriber id, and the link
    generation once "reset my links" raised it ("7", "7.2"); links made before generations
    existed sign "7" as well, so they stay generation 0."""
    return str(subscriber_id) if not generation else f"{subscriber_id}.{generation}"


def parse_subscriber_value(value: str) -> tuple[int, int] | None:
    """(subscriber id, link generation) of a subscriber_value; None if it is not one."""
    sid, _, gen = value.partition(".")
    if not sid.isdigit() or not (gen.isdigit() or gen == ""):
        return None
    return int(sid), int(gen or 0)


def digest_value(subscriber_id: int, period: str) -> str:
    """The value signed into a /d/ link: the subscriber and the period of the digest (a
    subscriber has one digest per period). The period is percent-encoded: it may hold a ':'."""
    return f"{subscriber_id}/{quote(period, safe='')}"


def parse_digest_value(value: str) -> tuple[int, str] | None:
    sid, _, period = value.partition("/")
    if not sid.isdigit() or not period:
        return None
    return int(sid), unquote(period)
