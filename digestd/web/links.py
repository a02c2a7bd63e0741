"""The signed tokens in links: what a /confirm/, /p/, /u/, /d/, /f/ or /r/ token names, or the
page that says what is wrong with it; and paths with their tokens left out, for logs."""

from __future__ import annotations

import re

from ..errors import NotFound
from ..models import Subscriber
from ..tokens import parse_feedback_value, parse_subscriber_value, verify, verify_short
from .site import Site

TOKEN_PATH = re.compile(r"^(/(?:u|p|d|f|r|confirm)/)[^/]+")


def redact(path: str) -> str:
    """A path fit for logs: the token in /u/, /p/ and /confirm/ links is left out."""
    return TOKEN_PATH.sub(r"\1<token>", path)


class Tokens:
    """Reads the tokens of our links; a bad, expired or retired one stops the request with
    a page that says so (and is counted)."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def value(self, purpose: str, token: str) -> str:
        """The value signed in a link's token; a page saying what is wrong with it otherwise."""
        value = verify(self.site.secret, purpose, token, now=self.site.clock())
        if value is not None:
            return value
        self.site.count("token_rejected")
        if verify(self.site.secret, purpose, token, now=0) is not None:
            raise self.site.fail(400, "This link has expired",
                                 "Confirmation links are valid for 48 hours. Fill in the form "
                                 "again to get a new one.",
                                 link=("Subscribe again", self.site.url("/")))
        raise self.site.fail(400, "This link is not valid",
                             "It may have been cut off or changed on the way (some mail programs "
                             "break long links). Copy the whole link from the email, or use the "
                             "link in your latest digest. Nothing was changed.",
                             link=("Go to the start page", self.site.url("/")))

    def subscriber(self, subscriber_id: int | str) -> Subscriber:
        try:
            return self.site.store.get_subscriber(int(subscriber_id))
        except (NotFound, ValueError):
            raise self.site.fail(404, "No such subscription",
                                 "This subscription does not exist (any more): it was deleted, so "
                                 "nothing more is sent to it.",
                                 link=("Subscribe again", self.site.url("/"))) from None

    def linked_subscriber(self, purpose: str, token: str, *, any_generation: bool = False
                          ) -> Subscriber:
        """The subscriber a /p/, /u/ or /f/ link names: 400 for a forged or cut link, 404 for
        a deleted subscriber, 410 for a link retired by "reset my links" (unless
        `any_generation`: old unsubscribe links keep working)."""
        parsed = parse_subscriber_value(self.value(purpose, token))
        if parsed is None:  # signed by us, but not a subscriber link: never made
            raise self.site.fail(400, "This link is not valid", "Nothing was changed.",
                                 link=("Go to the start page", self.site.url("/")))
        sub = self.subscriber(parsed[0])
        if parsed[1] != sub.link_gen and not any_generation:
            self.site.count("link_replaced")
            raise self.site.fail(410, "This link was replaced",
                                 "New links were made for this subscription (\"Reset my links\"), "
                                 "so this one no longer works. Use the links in your newest "
                                 "digest.",
                                 link=("Go to the start page", self.site.url("/")))
        return sub

    def feedback_link(self, token: str) -> tuple[Subscriber, str]:
        """(subscriber, digest period) of a /r/ link: 400 for a forged or cut link, 404 for a
        deleted subscriber, 410 for a link retired by "reset my links"."""
        value = verify_short(self.site.secret, "feedback", token)
        parsed = parse_feedback_value(value) if value is not None else None
        if parsed is None:
            self.site.count("token_rejected")
            raise self.site.fail(400, "This link is not valid",
                                 "It may have been cut off or changed on the way (some mail "
                                 "programs break long links). Copy the whole link from the "
                                 "email. Nothing was changed.",
                                 link=("Go to the start page", self.site.url("/")))
        sub = self.subscriber(parsed[0])
        if parsed[1] != sub.link_gen:
            self.site.count("link_replaced")
            raise self.site.fail(410, "This link was replaced",
                                 "New links were made for this subscription (\"Reset my links\"), "
                                 "so the links of older digests no longer work. Nothing was "
                                 "changed.", link=("Go to the start page", self.site.url("/")))
        return sub, parsed[2]

    def prefs_token(self, sub: Subscriber) -> str:
        return self.site.links.preferences_token(sub.id, sub.link_gen)

