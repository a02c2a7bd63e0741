"""The mail that comes back: bounces (DSNs), ARF complaints and mailto unsubscribes.

`handle_message(raw, config=..., store=...)` reads one message (RFC 5322 bytes) and acts on
it; `digestd inbound` (an MTA's pipe) and the IMAP mailbox of [inbound] both call it.

- A bounce: a delivery status notification (RFC 3464), or one of the non-standard forms
  flufl.bounce knows. Its permanent failures (5.x.x, never X.2.2) count as hard bounces of
  the message the VERP token of the return path names (store.record_mailed_bounce), or,
  without a token, of the newest message to the failed address; temporary ones ("delay")
  are logged only, and so are refusals for a reason that is not the address ("refused":
  5.7.x a blocklist or DMARC, 5.3.4 a message too big), by deliver.classify's rules. The
  failed addresses of a non-standard bounce are guesses from its text: they count only when
  one is the address the token's message went to. A bounce that names none of ours (no
  token, no subscriber's address) is not ours: "unrecognized".
- A complaint (RFC 5965, Feedback-Type: abuse): its subscriber, named by a token in the
  returned message or by its Message-ID, is unsubscribed at once.
- A message to `unsubscribe+TOKEN@...`, or whose subject holds the token: unsubscribed, and
  a notice goes out through the outbox (once, and never to a bouncing address).
- Anything else (a reply, an auto-reply such as an out-of-office or a challenge to confirm,
  garbage, a forged token) is "unrecognized" and changes nothing.

A message handled once (same Message-ID, or same bytes without one) changes nothing the
second time ("duplicate"). Nothing from a message reaches a log line unescaped, and no
address at all. The store being busy or unreachable raises InboundTempFail: try again later.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import Message

from ..config import Config, web_secret
from ..errors import InboundTempFail, StoreError
from ..store import Store
from .arf import Complaint, read_complaint
from .dsn import Failure, is_report, read_dsn, scan_bounce
from .unsubscribe import unsubscribe
from .verp import RETURNED_HEADERS, Tokens, header_text, recipients, returned_message

__all__ = ["KINDS", "Handled", "InboundTempFail", "handle_message"]

log = logging.getLogger("digestd.inbound")

KINDS = ("bounce", "delay", "refused", "complaint", "unsubscribe", "unrecognized", "duplicate")
SEEN_KEPT = timedelta(days=30)  # how long a handled message's key is kept
MAX_BYTES = 10 * 1024 * 1024  # a bounce returns at most our message: more is not ours

_BOUNCE_SENDER = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mdaemon|"
                            r"microsoftexchange[0-9a-f]*)@", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(r"undeliver|delivery (status|failure|has failed|error|problem)|"
                             r"returned mail|failure notice|could not be delivered|"
                             r"couldn't be delivered|mail delivery failed|non[- ]?delivery|"
                             r"unzustellbar|non remis|onbestelbaar|non recapitabile|"
                             r"no entregado|no se puede entregar", re.IGNORECASE)
# RFC 3834 auto-replies (an out-of-office, a vacation notice, a challenge to confirm) go to
# the return path, as bounces do, and with a null return path of their own
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[- ]?(reply|response)|auto:|out of (the )?office|away from|vacation|"
    r"abwesenheit|automatische antwort|r[ée]ponse automatique|absence|"
    r"respuesta autom[áa]tica|risposta automatica|autosvar|automatisch antwoord|afwezig)",
    re.IGNORECASE)
_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-AutoReply-From",
                       "X-Mail-Autoreply")


@dataclass(frozen=True)
class Handled:
    """What one message was and what it did."""

    kind: str  # one of KINDS
    subscriber_id: int | None = None
    digest_id: int | None = None  # the outbox row a bounce named
    changed: bool = False  # the store changed: a bounce counted, a subscriber unsubscribed
    detail: str = ""  # the status code, the feedback type, or why it was not understood


def handle_message(raw: bytes, *, config: Config, store: Store, recipient: str = "",
                   secret: bytes | None = None, now: float | None = None) -> Handled:
    """Read one message that came back and act on it (see the module's docstring).

    `recipient`: the envelope recipient, when the MTA passes it (Postfix pipe's
    ${recipient}); else the Delivered-To, X-Original-To and To headers are read. `secret`:
    the link secret (default: the config's). Raises InboundTempFail when the store is busy,
    locked or unreachable: nothing was changed, and the message should be tried again."""
    try:
        secret = web_secret(config) if secret is None else secret
        found = _classify(raw, secret, recipient)
        with store.transaction():
            handled = _act(found, store, config, now)
    except (sqlite3.OperationalError, sqlite3.DatabaseError, StoreError) as e:
        raise InboundTempFail(f"the store {store.path} cannot take the message now, try again "
                              f"later: {e}") from None
    _log(handled, found)
    return handled


# -- reading -----------------------------------------------------------------------------------

@dataclass
class _Found:
    kind: str = "unrecognized"  # what the message looks like: bounce, complaint, unsubscribe
    key: str | None = None  # inbound_seen's key
    tokens: Tokens | None = None
    failures: tuple[Failure, ...] = ()
    complaint: Complaint | None = None
    returned_message_id: str = ""
    reason: str = ""  # why it was not understood
    # a non-standard bounce: its failed addresses are guesses from its text (flufl.bounce's),
    # which count only when one is the subscriber's
    scanned: bool = False


def _classify(raw: bytes, secret: bytes, recipient: str) -> _Found:
    """What the message is, from the message alone (no store)."""
    if len(raw) > MAX_BYTES:
        return _Found(reason="too_big")
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:  # the parser is lenient; anything it still refuses is not for us
        return _Found(reason="unparsable")
    found = _Found(key=_key(raw, msg), tokens=Tokens(secret))
    tokens = found.tokens
    try:
        complaint = read_complaint(msg)
        if complaint is not None:
            found.kind, found.complaint = "complaint", complaint
            tokens.scan(complaint.original_mail_from)
            _scan_returned(msg, tokens, found)
            if complaint.feedback_type not in ("abuse", ""):
                found.kind, found.reason = "unrecognized", "feedback_type_not_abuse"
            return found
        for address in recipients(msg, recipient):
            tokens.scan(address)
        dsn = is_report(msg, "delivery-status")
        if dsn or _looks_like_bounce(msg):
            found.failures = tuple(read_dsn(msg) if dsn else scan_bounce(msg, raw))
            found.scanned = not dsn
            _scan_returned(msg, tokens, found)
            found.kind = "bounce" if found.failures else "unrecognized"
            found.reason = "" if found.failures else "bounce_without_failures"
            return found
        for subject in header_text(msg, "Subject", words=True):
            tokens.scan(subject)
            m = re.search(r"unsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", subject)
            if m:  # the subject of a mailto: from before return paths existed
                tokens.add_web_token(m[1])
        if tokens.first("unsubscribe"):
            found.kind = "unsubscribe"
        else:
            found.reason = "forged_token" if tokens.forged else "not_ours"
    except Exception as e:  # a message so broken that reading it fails: not understood
        found.kind, found.reason = "unrecognized", f"unreadable:{type(e).__name__}"
    return found


def _key(raw: bytes, msg: Message) -> str:
    message_id = " ".join(str(msg.get("message-id", "") or "").split())
    if message_id:
        return "mid:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    return "raw:" + hashlib.sha256(raw).hexdigest()


def _looks_like_bounce(msg: Message) -> bool:
    """A non-standard bounce: from the mailer daemon or the postmaster, naming its failed
    recipients (X-Failed-Recipients, Exchange's X-MS-Exchange-Message-Is-Ndr), or saying so
    in its subject. The null return path alone says only that a machine sent it: an
    out-of-office or a challenge to confirm (RFC 3834) has one too, and is no bounce
    whatever its text says; a person's reply is none of these. No heuristic runs on them."""
    subject = " ".join(header_text(msg, "Subject", words=True))
    if _AUTO_REPLY_SUBJECT.search(subject) or any(msg.get(h) is not None
                                                  for h in _AUTO_REPLY_HEADERS) \
            or "auto_reply" in str(msg.get("Precedence", "")).lower():
        return False
    sender = " ".join(header_text(msg, "From"))
    return bool(_BOUNCE_SENDER.search(email.utils.parseaddr(sender)[1])
                or msg.get("X-Failed-Recipients") or msg.get("X-MS-Exchange-Message-Is-Ndr")
                is not None or _BOUNCE_SUBJECT.search(subject))


def _scan_returned(msg: Message, tokens: Tokens, found: _Found) -> None:
    """Tokens in our own message as a bounce or complaint returns it: its return path, its
    List-Unsubscribe (both links), and its Message-ID."""
    original = returned_message(msg)
    if original is None:
        return
    for name in RETURNED_HEADERS:
        for value in header_text(original, name):
            tokens.scan(value)
            tokens.scan_web_links(value)
    found.returned_message_id = " ".join(str(original.get("message-id", "") or "").split())


# -- acting --------------------------------------------------------------------------------------

def _act(found: _Found, store: Store, config: Config, now: float | None) -> Handled:
    """Inside one transaction: the message's effect, and its count."""
    if found.key is not None and found.kind != "unrecognized" and store.inbound_seen(found.key):
        store.record_inbound("duplicate")
        return Handled("duplicate")
    if found.kind == "bounce":
        handled = _bounce(found, store, config)
    elif found.kind == "complaint":
        handled = _complaint(found, store, config)
    elif found.kind == "unsubscribe":
        assert found.tokens is not None
        token = found.tokens.first("unsubscribe")
        assert token is not None
        before, notice = unsubscribe(store, config, token.subscriber_id, notify=True, now=now)
        handled = Handled("unsubscribe", token.subscriber_id if before else None,
                          changed=before not in (None, "unsubscribed"),
                          detail=f"was={before or 'gone'}" + (f" notice={notice}" if notice
                                                              else ""))
    else:
        handled = Handled("unrecognized", detail=found.reason)
    if "forged_token" in (handled.detail or ""):
        # a forgery, or this process signs with another secret than the one that sent it
        log.warning("event=inbound_token_not_ours kind=%s hint=%r", found.kind,
                    "a token of digestd's that this setup's link secret did not sign: a "
                    "forgery, or `digestd inbound` running without the service's secret "
                    "(the systemd credential \"secret\", web.secret_file or "
                    "DIGESTD_SECRET, as `digestd run` has it)")
    store.record_inbound(handled.kind, found.key if handled.kind != "unrecognized" else None)
    # an MTA retries a message for days, an IMAP run for minutes: older keys can go
    store.prune_inbound((datetime.now(timezone.utc) - SEEN_KEPT).isoformat(timespec="seconds"))
    return handled


def _bounce(found: _Found, store: Store, config: Config) -> Handled:
    assert found.tokens is not None
    token = found.tokens.first("bounce")
    if token is None and found.tokens.forged and not found.tokens.valid:
        return Handled("unrecognized", detail="forged_token")
    failures = list(found.failures)
    if token is not None:
        subscriber_id, digest_id = token.subscriber_id, token.digest_id
        if found.scanned:
            # flufl.bounce's heuristics take any address in a line of the right shape (LLNL
            # any ", addr@domain,"): only the address this message went to counts
            theirs = store.mailed_addresses(token.subscriber_id, token.digest_id)
            failures = [f for f in failures if f.address in theirs]
            if not failures:
                return Handled("unrecognized", detail="failed_address_not_theirs")
    else:
        # no token (a return path without VERP): the subscriber with a failed address; a
        # bounce that names none of ours (to postmaster@, of someone else's mail) is not ours
        sub = None
        for failure in sorted(failures, key=lambda f: not f.permanent):  # permanent first
            sub = store.find_subscriber(failure.address) if failure.address else None
            if sub is not None:
                break
        if sub is None:
            return Handled("unrecognized", detail="bounce_not_ours")
        failures = [f for f in failures if f.address == failure.address]
        subscriber_id, digest_id = sub.id, None
    permanent = [f for f in failures if f.permanent]
    status = (permanent or failures)[0].status
    if not permanent:
        # refused for a reason that is not the address (5.7.x: a blocklist, DMARC; a message
        # too big): the address is fine; else delayed, mailbox full ...: the MTA goes on
        kind = "refused" if any(f.refused for f in failures) else "delay"
        if kind == "refused":
            log.warning("event=inbound_refused status=%s reason=%r", status,
                        "the receiving server refused the message for a reason that is not "
                        "the address (RFC 3463)")
        return Handled(kind, subscriber_id, digest_id, detail=status)
    error = f"bounced after delivery: {status} {permanent[0].diagnostic}".strip()
    threshold = config.delivery.bounce_threshold
    if token is not None:
        if store.digest_subscriber(token.digest_id or 0) != token.subscriber_id:
            return Handled("bounce", detail=f"{status} message_gone")
        counted, bouncing, _ = store.record_mailed_bounce(subscriber_id, digest_id, error,
                                                          threshold=threshold)
        return Handled("bounce", subscriber_id, digest_id, counted,
                       f"{status}" + (" now_bouncing" if bouncing else ""))
    # the message the bounce returns (its Message-ID) when it is theirs, else their newest
    returned = (store.digest_by_message_id(found.returned_message_id)
                if found.returned_message_id else None)
    digest_id = returned[0] if returned and returned[1] == subscriber_id else None
    # the log names the message the bounce was put on: that one, or their newest delivered
    counted, bouncing, digest_id = store.record_mailed_bounce(subscriber_id, digest_id, error,
                                                              threshold=threshold)
    return Handled("bounce", subscriber_id, digest_id, counted,
                   f"{status} by_address" + (" now_bouncing" if bouncing else ""))


def _complaint(found: _Found, store: Store, config: Config) -> Handled:
    assert found.tokens is not None and found.complaint is not None
    token = found.tokens.first("bounce") or found.tokens.first("unsubscribe")
    sid = token.subscriber_id if token else None
    if sid is None and found.returned_message_id:
        row = store.digest_by_message_id(found.returned_message_id)
        sid = row[1] if row else None
    if sid is None:
        return Handled("complaint", detail="forged_token" if found.tokens.forged
                       else "subscriber_not_found")
    before, _ = unsubscribe(store, config, sid, notify=False)
    return Handled("complaint", sid if before else None,
                   changed=before not in (None, "unsubscribed"),
                   detail=f"{found.complaint.feedback_type or 'abuse'} was={before or 'gone'}")


def _log(handled: Handled, found: _Found) -> None:
    level = logging.WARNING if "now_bouncing" in handled.detail else logging.INFO
    log.log(level, "event=inbound kind=%s subscriber=%s digest=%s changed=%d detail=%r",
            handled.kind, handled.subscriber_id if handled.subscriber_id is not None else "-",
            handled.digest_id if handled.digest_id is not None else "-", handled.changed,
            handled.detail[:120])
