"""Unsubscribing: the /u/ page and RFC 8058 one-click unsubscribe."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .links import Tokens
from .site import Site

log = logging.getLogger("digestd.web")


class UnsubscribePages:
    """GET /u/TOKEN (asks) and POST /u/TOKEN (unsubscribes)."""

    def __init__(self, site: Site, tokens: Tokens) -> None:
        self.site = site
        self.tokens = tokens

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET /u/TOKEN never unsubscribes: link scanners and previews fetch it."""
        token = request.path_params["token"]
        sub = self.tokens.linked_subscriber("unsub", token, any_generation=True)
        return self.site.page("unsubscribe", sub=sub, token=token, done=False,
                              preferences_url=self.site.url(f"/p/{self.tokens.prefs_token(sub)}"))

    async def unsubscribe(self, request: Request) -> Response:
        """POST /u/TOKEN: RFC 8058 one-click (and the button): no cookie, no CSRF token, 200."""
        token = request.path_params["token"]
        sub = self.tokens.linked_subscriber("unsub", token, any_generation=True)
        if not await _is_one_click(request):
            raise self.site.fail(400, "Not unsubscribed",
                                 "This address unsubscribes with the body "
                                 "List-Unsubscribe=One-Click (RFC 8058), as the button on the "
                                 "unsubscribe page sends. Nothing was changed.",
                                 link=("Go to the unsubscribe page", self.site.url(f"/u/{token}")))
        if sub.status != "unsubscribed":
            self.site.store.set_status(sub.id, "unsubscribed")
            self.site.count("unsubscribed")
            log.info("event=unsubscribed subscriber=%d from=%s", sub.id, sub.status)
        return self.site.page("unsubscribe", sub=sub, token=token, done=True,
                              preferences_url=self.site.url(f"/p/{self.tokens.prefs_token(sub)}"))


async def _is_one_click(request: Request) -> bool:
    """Whether the body says List-Unsubscribe=One-Click, urlencoded or multipart (RFC 8058
    allows either), or bare when a client sends no content type."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form(max_files=0, max_fields=20, max_part_size=4096)
        except HTTPException:
            return False
        return str(form.get("List-Unsubscribe", "")).strip() == "One-Click"
    body = await request.body()
    return body.strip() == b"List-Unsubscribe=One-Click"
