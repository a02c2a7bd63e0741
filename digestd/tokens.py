"""Signed tokens for the links in emails (unsubscribe, preferences, confirmation, a digest's
page, the feed, feedback on a digest's papers) and for the addresses of mail that comes back
(VERP, mailto: unsubscribe).

A token is `base64url(payload).base64url(hmac_sha256(secret, payload))` where the
payload is `purpose:value:expiry`. The purpose is signed too, so an unsubscribe
token can never be replayed as a preferences token.

Feedback links, a few in every paper of every digest, use a shorter form (sign_short): the
value in clear, then a 12-byte MAC over `purpose:value`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
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


def digest_value(subscriber_id: int, period: str, generation: int = 0) -> str:
    """The value signed into a /d/ link: the subscriber (with the link generation, as
    subscriber_value writes it, so "reset my links" retires it) and the period of the digest
    (a subscriber has one digest per period). The period is percent-encoded: it may hold a
    ':'."""
    return f"{subscriber_value(subscriber_id, generation)}/{quote(period, safe='')}"


def parse_digest_value(value: str) -> tuple[int, int, str] | None:
    """(subscriber id, link generation, period) of a digest_value; None if it is not one."""
    who, _, period = value.partition("/")
    parsed = parse_subscriber_value(who)
    if parsed is None or not period:
        return None
    return parsed[0], parsed[1], unquote(period)


# -- tokens in email addresses (VERP return paths, mailto: unsubscribes) -----------------------
#
# An address's local part is at most 64 octets (RFC 5321 4.5.3.1.1) and some MTAs and
# providers lowercase it, so these tokens are short and of one case: lowercase base36 numbers
# and a base32 MAC, joined by "-". A bounce token "d-7ps-2a-q7m3x9c2vf4p6h8j" names the
# digest (outbox row 7ps = 10,000 in base36) and the subscriber (2a = 82); an unsubscribe
# token "u-2a-k3j5m7n9p2q4r6s8" names the subscriber. The MAC (80 bits of HMAC-SHA256 over
# the purpose and the numbers) is what makes them unforgeable; they never expire.

MAIL_TOKEN_MAX = 36  # the longest a mail token gets while ids stay below 36**8 (2.8e12)

def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


@functools.lru_cache(maxsize=8)
def _keyed(secret: bytes) -> hmac.HMAC:
    # the key's two padded blocks hashed once: a copy per message costs half of a new HMAC
    return hmac.new(secret, digestmod=hashlib.sha256)


def _mail_mac(secret: bytes, purpose: str, numbers: tuple[int, ...]) -> str:
    mac = _keyed(secret).copy()
    mac.update(f"{purpose}:{':'.join(map(str, numbers))}".encode())
    return base64.b32encode(mac.digest()[:10]).decode("ascii").lower()  # 16 chars, no padding


def bounce_token(secret: bytes, digest_id: int, subscriber_id: int) -> str:
    """The token of a VERP return path: `bounces+TOKEN@domain` names the outbox row (the
    digest or web mail) and its subscriber."""
    return f"d-{_b36(digest_id)}-{_b36(subscriber_id)}-" \
           f"{_mail_mac(secret, 'verp', (digest_id, subscriber_id))}"


def unsubscribe_mail_token(secret: bytes, subscriber_id: int) -> str:
    """The token of a mailto: unsubscribe, `unsubscribe+TOKEN@domain`."""
    return f"u-{_b36(subscriber_id)}-{_mail_mac(secret, 'mailto-unsub', (subscriber_id,))}"


def plus_address(address: str, token: str) -> str:
    """`bounces@example.org` and a token: `bounces+TOKEN@example.org`."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{token}@{domain}"


@dataclass(frozen=True)
class MailToken:
    kind: str  # "bounce" or "unsubscribe"
    subscriber_id: int
    digest_id: int | None = None


_MAIL_TOKEN = re.compile(r"(?:d-([0-9a-z]{1,12})-|u-)([0-9a-z]{1,12})-([a-z2-7]{16})")


def find_mail_tokens(text: str) -> list[str]:
    """Every substring of `text` shaped like a mail token (any case), not yet verified."""
    return [m.group(0).lower() for m in _MAIL_TOKEN.finditer(text.lower())]


def verify_mail_token(secret: bytes, token: str) -> MailToken | None:
    """What a mail token names, or None if it is forged, cut off or not one (any case)."""
    m = _MAIL_TOKEN.fullmatch(token.strip().lower())
    if not m:
        return None
    sid = int(m[2], 36)
    if m[1] is not None:
        did = int(m[1], 36)
        expected, kind = _mail_mac(secret, "verp", (did, sid)), "bounce"
    else:
        did, expected, kind = None, _mail_mac(secret, "mailto-unsub", (sid,)), "unsubscribe"
    if not hmac.compare_digest(m[3], expected):
        return None
    return MailToken(kind, sid, did)


# -- short tokens: the feedback links of a digest ----------------------------------------------

_SHORT_MAC = 12   # bytes: 96 bits, 16 characters; a forged link is a guess in 2**96
_PLAIN = re.compile(r"[A-Za-z0-9-]+")


def sign_short(secret: bytes, purpose: str, value: str) -> str:
    """`value.MAC`: a token that never expires, for a `value` made of URL-safe characters
    without "%" (it goes into a path as it is). Shorter than sign(): it carries no
    purpose or expiry, but the purpose is under the MAC all the same."""
    mac = hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()[:_SHORT_MAC]
    return f"{value}.{_b64(mac)}"


def verify_short(secret: bytes, purpose: str, token: str) -> str | None:
    """The value of a sign_short token, or None if it is forged, cut off or for another
    purpose."""
    value, dot, mac = token.rpartition(".")
    if not dot or not token.isascii():
        return None
    expected = hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return value if hmac.compare_digest(mac, _b64(expected[:_SHORT_MAC])) else None


def feedback_value(subscriber_id: int, generation: int, period: str) -> str:
    """The value signed into a digest's feedback links: subscriber, link generation and the
    digest's period ("7.0.2026-11-30"); a period with other characters than letters, digits
    and "-" (a forced digest's "2026-11-30T07:15:00+01:00") is written "~" + base64url."""
    shown = period if _PLAIN.fullmatch(period) else "~" + _b64(period.encode())
    return f"{subscriber_id}.{generation}.{shown}"


def parse_feedback_value(value: str) -> tuple[int, int, str] | None:
    """(subscriber id, link generation, period) of a feedback_value; None if it is not one."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or not parts[2]:
        return None
    period = parts[2]
    if period.startswith("~"):
        try:
            period = _unb64(period[1:]).decode()
        except (ValueError, UnicodeDecodeError):
            return None
    return int(parts[0]), int(parts[1]), period
