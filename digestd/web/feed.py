"""The subscriber's private Atom feed (/f/TOKEN.atom), with conditional requests."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..tokens import parse_subscriber_value
from .digests import PaperPage, rfc3339
from .links import Tokens
from .site import Site

FEED_DAYS = 30                   # the feed holds the papers delivered in the last 30 days ...
FEED_ENTRIES = 500               # ... or the last 500 of them, whichever is fewer
FEED_TYPE = "application/atom+xml; charset=utf-8"


class FeedPages:
    """GET /f/TOKEN.atom."""

    def __init__(self, site: Site, tokens: Tokens) -> None:
        self.site = site
        self.tokens = tokens

    async def feed(self, request: Request) -> Response:
        """GET /f/TOKEN.atom: the subscriber's private Atom feed (RFC 4287), one entry per
        paper delivered in the last FEED_DAYS days (at most FEED_ENTRIES). Conditional
        requests (RFC 9110 13.1: If-None-Match, If-Modified-Since) are answered 304 from one
        indexed query, before anything is rendered."""
        name = request.path_params["name"]
        if not name.endswith(".atom"):
            raise HTTPException(404)
        parsed = parse_subscriber_value(self.tokens.value("feed", name[:-len(".atom")]))
        if parsed is None:
            raise self.site.fail(400, "This link is not valid", "Nothing was changed.")
        sid, generation = parsed
        found = self.site.store.feed_validators(sid)
        if found is None:
            self.tokens.subscriber(sid)  # the 404 page
        link_gen, delivered, last_sent = found
        if generation != link_gen:
            self.site.count("link_replaced")
            raise self.site.fail(410, "This feed address was replaced",
                                 "New links were made for this subscription (\"Reset my links\"). "
                                 "The preferences page shows the new feed address.")
        now = datetime.fromtimestamp(self.site.clock(), timezone.utc)
        # the window moves once a day, at midnight UTC: the feed changes then, or when a
        # digest is delivered, or when the links are reset
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        since = today - timedelta(days=FEED_DAYS)
        modified = max(today, datetime.fromisoformat(last_sent).astimezone(timezone.utc)) \
            if last_sent else today
        version = hashlib.sha256(f"{link_gen}:{delivered}:{last_sent}:{since.date()}".encode())
        etag = f'W/"{version.hexdigest()[:20]}"'
        headers = {"ETag": etag, "Last-Modified": format_datetime(modified, usegmt=True),
                   "Cache-Control": "private, no-cache"}
        if _not_modified(request, etag, modified):
            self.site.count("feed_not_modified")
            return Response(status_code=304, headers=headers)
        entries = self.site.store.feed_entries(sid, since=since.isoformat(timespec="seconds"),
                                               limit=FEED_ENTRIES)
        self.site.count("feed_full")
        # one signed link per digest, not per paper
        links = self.site.links
        pages = {period: links.digest(sid, period, link_gen)
                 for period in {e.period for e in entries}}
        xml = self.site.env.get_template("web/feed.xml").render(
            entries=[PaperPage.of(e, pages[e.period]) for e in entries], subscriber_id=sid,
            self_url=self.site.links.feed(sid, link_gen),
            updated=rfc3339(last_sent) if last_sent else rfc3339(modified.isoformat()),
            tag=_tag_authority(self.site.config.web.base_url))
        return Response(xml, media_type=FEED_TYPE, headers=headers)


def _tag_authority(base_url: str) -> str:
    """The authority of the feed's tag: URIs (RFC 4151), from web.base_url."""
    host = urlsplit(base_url).hostname or "localhost"
    return f"{host},2026"


def _not_modified(request: Request, etag: str, modified: datetime) -> bool:
    """RFC 9110 13.1.2 and 13.1.3: If-None-Match (weak comparison) decides when present,
    else If-Modified-Since."""
    match = request.headers.get("if-none-match")
    if match is not None:
        if match.strip() == "*":
            return True
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        return etag.removeprefix("W/") in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return modified.replace(microsecond=0) <= when
