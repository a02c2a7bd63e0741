"""Feedback from the links in digests (/r/): "more like this", "less like this" and "follow
author", each recorded by a POST (a GET, which mail scanners send, never changes anything),
each with an undo; and "forget my feedback" on the preferences page."""

from __future__ import annotations

import logging
import re
import unicodedata

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import RuleError
from ..models import Paper, Subscriber
from ..rules import evaluate, parse
from ..store.feedback import LESS, MORE
from .forms import MAX_RULES
from .guard import Guard
from .links import Tokens
from .preferences import PreferencePages
from .site import Site

log = logging.getLogger("digestd.web")

ACTIONS = {"more": MORE, "less": LESS}
MAX_PLACE = 10_000               # no digest has more papers than this
FOLLOW_SHOWN = 12                # authors offered to follow on a paper's page
DONE = ("recorded", "switched", "undone", "followed", "unfollowed", "already", "full")
_UNQUOTABLE = re.compile(r'["*\x00-\x1f\x7f\u2028\u2029\x85]+')


def follow_rule(name: str, paper: Paper | None = None) -> str | None:
    """The rule that follows an author: `author:"Name"`, the name as one quoted phrase.

    A phrase cannot hold a quote (or "*"), and rules compare words only, so those become
    spaces: `O'Brien "quoted" (x)` -> `author:"O'Brien quoted (x)"`. None when no valid
    rule comes out (a name without letters or digits) or, given `paper`, when the rule
    would not match the paper it was offered on."""
    text = " ".join(_UNQUOTABLE.sub(" ", unicodedata.normalize("NFC", name)).split())
    if not text:
        return None
    rule = f'author:"{text}"'
    try:
        node = parse(rule)
    except RuleError:
        return None
    if paper is not None and not evaluate(node, paper):
        return None
    return rule


def _number(text: str) -> int:
    """A number in a path ("3"); -1 for anything else (a page says there is no such thing)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else -1


class FeedbackPages:
    """GET and POST /r/TOKEN/N (a paper of a digest), /r/TOKEN/N/more and /less, and
    /r/TOKEN/N/a/K (follow the K-th author); POST /p/TOKEN/feedback/forget."""

    def __init__(self, site: Site, guard: Guard, tokens: Tokens, prefs: PreferencePages
                 ) -> None:
        self.site = site
        self.guard = guard
        self.tokens = tokens
        self.prefs = prefs

    # -- what a link names -------------------------------------------------------------------

    def linked_paper(self, request: Request) -> tuple[Subscriber, int, Paper, str]:
        """(subscriber, paper pk, paper, the link's path) of a /r/ link, or the page that
        says what is wrong with it: 400 forged or cut, 410 retired by "reset my links", 404
        a deleted subscriber or a paper the digest does not have."""
        token, place = request.path_params["token"], _number(request.path_params["place"])
        sub, period = self.tokens.feedback_link(token)
        found = (self.site.store.digest_paper(sub.id, period, place - 1)
                 if 1 <= place <= MAX_PLACE else None)
        if found is None:
            raise self.site.fail(404, "No such paper",
                                 "This digest has no paper with that number (any more). "
                                 "Nothing was changed.",
                                 link=("Your preferences", self.prefs_url(sub)))
        return sub, found[0], found[1], f"/r/{token}/{place}"

    def prefs_url(self, sub: Subscriber) -> str:
        return self.site.url(f"/p/{self.tokens.prefs_token(sub)}")

    def action(self, request: Request) -> tuple[str, int]:
        name = request.path_params["action"]
        if name not in ACTIONS:
            raise self.site.fail(404, "Page not found", "There is nothing at this address.",
                                 link=("Go to the start page", self.site.url("/")))
        return name, ACTIONS[name]

    def author(self, request: Request, paper: Paper) -> tuple[int, str, str | None]:
        """(index, name, rule) of the author a /a/K link names; 404 if the paper has none."""
        k = _number(request.path_params["author"])
        if not 0 <= k < len(paper.authors):
            raise self.site.fail(404, "No such author",
                                 "This paper has no author with that number. Nothing was "
                                 "changed.", link=("Go to the start page", self.site.url("/")))
        return k, paper.authors[k], follow_rule(paper.authors[k], paper)

    # -- pages -------------------------------------------------------------------------------

    def page(self, request: Request, sub: Subscriber, pk: int, paper: Paper, path: str, *,
             action: str | None = None, done: str | None = None, author: int | None = None,
             status: int = 200) -> Response:
        csrf, cookie = self.guard.csrf(request, sub.id)
        rules = set(sub.rules)
        authors = []
        for k, name in enumerate(paper.authors[:FOLLOW_SHOWN]):
            rule = follow_rule(name, paper)
            authors.append({"k": k, "name": name, "rule": rule, "followed": rule in rules})
        followed = None
        if author is not None:
            rule = follow_rule(paper.authors[author], paper)
            followed = {"k": author, "name": paper.authors[author], "rule": rule,
                        "followed": rule in rules}
        value = self.site.store.feedback_of(sub.id, pk)
        current = {MORE: "more", LESS: "less"}.get(value)
        response = self.site.page(
            "feedback", status=status, sub=sub, paper=paper, path=path, action=action,
            current=current, done=done if done in DONE else None, csrf=csrf,
            authors=authors, hidden_authors=max(0, len(paper.authors) - FOLLOW_SHOWN),
            author=followed, preferences_url=self.prefs_url(sub),
            # the script records the choice the link was opened for, once: not when it is
            # recorded already, nor after an undo (the page then offers it again, by button)
            auto=action is not None and current != action and done is None)
        return self.guard.with_cookie(response, cookie)

    async def paper_page(self, request: Request) -> Response:
        """GET /r/TOKEN/N: the paper, its choices and its authors; changes nothing."""
        sub, pk, paper, path = self.linked_paper(request)
        return self.page(request, sub, pk, paper, path, done=request.query_params.get("done"))

    async def choice_page(self, request: Request) -> Response:
        """GET /r/TOKEN/N/more or /less: the paper and the choice, which the page's script
        records by a POST (a button without script). The GET itself changes nothing."""
        sub, pk, paper, path = self.linked_paper(request)
        name, _value = self.action(request)
        return self.page(request, sub, pk, paper, path, action=name,
                         done=request.query_params.get("done"))

    async def author_page(self, request: Request) -> Response:
        """GET /r/TOKEN/N/a/K: offers to follow the K-th author; changes nothing."""
        sub, pk, paper, path = self.linked_paper(request)
        k, _name, _rule = self.author(request, paper)
        return self.page(request, sub, pk, paper, path, author=k,
                         done=request.query_params.get("done"))

    # -- what a POST changes -----------------------------------------------------------------

    async def checked_form(self, request: Request, sub: Subscriber, path: str) -> str:
        self.guard.allow_feedback(request)
        form = await self.site.read_form(request)
        self.guard.check_csrf(request, form, sub.id, "", reload=self.site.url(path))
        return str(form.get("do", ""))

    def done(self, path: str, what: str) -> Response:
        # Post/Redirect/Get: a reload shows the result and sends nothing again
        return RedirectResponse(self.site.url(f"{path}?done={what}"), status_code=303)

    async def choose(self, request: Request) -> Response:
        """POST /r/TOKEN/N/more or /less: do=record stores the choice (the same one twice
        changes nothing), do=undo takes it back (only if it is still this choice)."""
        sub, pk, _paper, path = self.linked_paper(request)
        name, value = self.action(request)
        do = await self.checked_form(request, sub, path)
        path = f"{path}/{name}"
        if do == "undo":
            if self.site.store.undo_feedback(sub.id, pk, value):
                self.site.count("feedback_undone")
                log.info("event=feedback_undone subscriber=%d paper=%d", sub.id, pk)
            return self.done(path, "undone")
        if do != "record":
            raise self.site.fail(400, "Request not understood", "Nothing was changed.")
        before = self.site.store.record_feedback(sub.id, pk, value, now=self.site.now_iso())
        if before == value:
            return self.done(path, "already")
        self.site.count(f"feedback_{name}")
        log.info("event=feedback subscriber=%d paper=%d value=%d", sub.id, pk, value)
        return self.done(path, "recorded" if before is None else "switched")

    async def follow(self, request: Request) -> Response:
        """POST /r/TOKEN/N/a/K: do=follow adds the rule author:"Name" (unless the subscriber
        has it, or has the most rules there may be), do=unfollow removes that rule."""
        sub, _pk, paper, path = self.linked_paper(request)
        k, _name, rule = self.author(request, paper)
        do = await self.checked_form(request, sub, path)
        path = f"{path}/a/{k}"
        if rule is None:
            raise self.site.fail(400, "This name makes no rule",
                                 "It has no letters or digits to match. Nothing was changed.",
                                 link=("Your preferences", self.prefs_url(sub)))
        if do == "unfollow":
            if self.site.store.remove_rule(sub.id, rule):
                self.site.count("author_unfollowed")
                log.info("event=author_unfollowed subscriber=%d", sub.id)
            return self.done(path, "unfollowed")
        if do != "follow":
            raise self.site.fail(400, "Request not understood", "Nothing was changed.")
        result = self.site.store.add_rule_once(sub.id, rule, max_rules=MAX_RULES)
        if result == "added":
            self.site.count("author_followed")
            log.info("event=author_followed subscriber=%d", sub.id)
        return self.done(path, {"added": "followed"}.get(result, result))

    async def forget(self, request: Request) -> Response:
        """POST /p/TOKEN/feedback/forget: delete all of the subscriber's feedback."""
        sub, token = self.prefs.prefs_subscriber(request)
        self.guard.check_csrf(request, await self.site.read_form(request), sub.id, token)
        forgotten = self.site.store.forget_feedback(sub.id)
        self.site.count("feedback_forgotten")
        log.info("event=feedback_forgotten subscriber=%d choices=%d", sub.id, forgotten)
        return self.prefs.done(token, "feedback_forgotten")
