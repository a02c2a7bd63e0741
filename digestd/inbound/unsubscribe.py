"""Unsubscribes by mail (the mailto: of List-Unsubscribe) and after a complaint, and the
short notice that confirms one."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import parseaddr

from ..config import Config
from ..mime import notice_message
from ..store import Store

NOTICE_TEXT = """\
You are unsubscribed from {title}: no more digests will be sent to this address.

You asked for this by email (the unsubscribe address of a digest). If that was not you,
or you change your mind, subscribe again at:

{url}

{dashes}
{title}
"""

NOTICE_HTML = """\
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Unsubscribed</title></head>
<body style="font-family: sans-serif; line-height: 1.5">
<p>You are unsubscribed from {title}: no more digests will be sent to this address.</p>
<p>You asked for this by email (the unsubscribe address of a digest). If that was not you,
or you change your mind, subscribe again:</p>
<p><a href="{url}" style="display: inline-block; padding: 10px 16px; background: #1a56a0;
color: #ffffff; text-decoration: none; border-radius: 4px">Subscribe again</a></p>
<p style="font-size: 13px; color: #555555">If the button does not work, copy this address
into your browser:<br><a href="{url}" style="color: #1a56a0">{url}</a></p>
</body></html>
"""


def unsubscribe(store: Store, config: Config, subscriber_id: int, *, notify: bool,
                now: float | None = None) -> tuple[str | None, int | None]:
    """Unsubscribe `subscriber_id`; with `notify`, queue a notice to them through the
    outbox, but only when this changed their status (a replayed request mails nobody) and
    never to an address that bounces. Returns (the status they had, the notice's outbox
    row or None). Runs in the caller's transaction."""
    before = store.unsubscribe_by_mail(subscriber_id)
    if not notify or before in (None, "unsubscribed", "bouncing"):
        return before, None
    sub = store.get_subscriber(subscriber_id)
    message_id, message = notice(config, sub.email)
    did = store.queue_message(subscriber_id, "unsubscribed", recipient=sub.email,
                              message_id=message_id, message=message,
                              now=now if now is not None else time.time())
    return before, did


def notice(config: Config, to: str) -> tuple[str, bytes]:
    """The notice that an unsubscribe by mail worked."""
    from markupsafe import escape

    from ..jobs import make_dkim

    title = config.web.title
    url = config.web.base_url.rstrip("/") + "/"
    text = NOTICE_TEXT.format(title=title, url=url, dashes="-- ")  # the signature separator
    html = NOTICE_HTML.format(title=escape(title), url=escape(url))
    return notice_message(from_addr=config.delivery.from_, to=parseaddr(to)[1] or to,
                          subject=f"You are unsubscribed from {title}", text=text, html=html,
                          kind="unsubscribed", reply_to=config.delivery.reply_to,
                          feedback_id=config.delivery.feedback_id, dkim=make_dkim(config),
                          now=datetime.now(timezone.utc))
