"""A digest's own page (/d/) and how one delivered paper is shown there and in the feed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import Response

from ..render import period_label, short_authors
from ..store import LEFT_OUT, MATCH, RECOMMENDED, DeliveredPaper
from ..tokens import parse_digest_value
from .links import Tokens
from .site import Site


class DigestPages:
    """GET /d/TOKEN."""

    def __init__(self, site: Site, tokens: Tokens) -> None:
        self.site = site
        self.tokens = tokens

    async def digest_page(self, request: Request) -> Response:
        """GET /d/TOKEN: every paper of one digest (or its "nothing matched" note), in the
        digest's order, read from the store: it works after the message was pruned."""
        parsed = parse_digest_value(self.tokens.value("digest", request.path_params["token"]))
        if parsed is None:
            raise self.site.fail(400, "This link is not valid", "Nothing was changed.",
                                 link=("Go to the start page", self.site.url("/")))
        sub = self.tokens.subscriber(parsed[0])
        if parsed[1] != sub.link_gen:
            self.site.count("link_replaced")
            raise self.site.fail(410, "This link was replaced",
                                 "New links were made for this subscription (\"Reset my links\"), "
                                 "so the links of older digests no longer work: the list of past "
                                 "digests on your preferences page has the new ones.",
                                 link=("Go to the start page", self.site.url("/")))
        digest = self.site.store.digest_of(sub.id, parsed[2])
        if digest is None:
            raise self.site.fail(404, "No such digest",
                                 "This digest is not kept (any more).",
                                 link=("Go to the start page", self.site.url("/")))
        papers = self.site.store.digest_papers(digest)
        self.site.count("digest_page")
        url = self.site.links.digest(sub.id, digest.period, sub.link_gen)
        pages = [PaperPage.of(d, url, n) for n, d in enumerate(papers, 1)]
        # the rule matches, then the papers recommended beyond the rules, then the matches
        # min_score left out of the email (digestd/ranking.py), each in its own section;
        # each with the feedback links the email has ("/r/TOKEN/N/more"), those the email
        # left out too: a paper's number is its place in the stored digest
        return self.site.page("digest", digest=digest, label=period_label(digest.period),
                              feedback_url=self.site.links.feedback(sub.id, sub.link_gen,
                                                                    digest.period),
                              papers=[p for p in pages if p.kind == MATCH],
                              recommended=[p for p in pages if p.kind == RECOMMENDED],
                              left_out=[p for p in pages if p.kind == LEFT_OUT])


@dataclass(frozen=True)
class PaperPage:
    """One paper as a digest's page and the feed show it: everything, the abstract whole."""

    id: str
    title: str
    url: str
    pdf_url: str
    authors: str
    author_list: tuple[str, ...]
    source: str
    categories: tuple[str, ...]
    published: str  # YYYY-MM-DD or ""
    published_rfc3339: str  # for Atom; "" when the source gave no usable date
    upvotes: int | None
    abstract: str
    why: str
    sent_rfc3339: str
    period: str
    number: int  # 1-based place in its digest
    page_url: str  # its place on the digest's page
    kind: int = MATCH  # or RECOMMENDED beyond the rules, or LEFT_OUT by min_score

    @classmethod
    def of(cls, d: DeliveredPaper, digest_url: str, number: int = 0) -> PaperPage:
        """`digest_url`: the page of the digest `d` is in; `number` its place there (else
        from its stored position)."""
        p = d.paper
        number = number or (d.position or 0) + 1
        return cls(id=p.id, title=_xml_text(p.title), url=p.url, pdf_url=p.pdf_url,
                   authors=short_authors(p.authors, shown=30),
                   author_list=tuple(_xml_text(a) for a in p.authors[:100]),
                   source=p.source, categories=p.categories, published=(p.published or "")[:10],
                   published_rfc3339=rfc3339(p.published), upvotes=p.upvotes,
                   abstract=_xml_text(p.abstract), why=d.why,
                   sent_rfc3339=rfc3339(d.sent_at) if d.sent_at else "", period=d.period,
                   number=number, page_url=f"{digest_url}#paper-{number}", kind=d.kind)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """Text without the control characters XML 1.0 cannot carry, even as references."""
    return _NOT_XML.sub("", text or "")


def rfc3339(stamp: str | None) -> str:
    """An ISO date or time as an RFC 3339 date-time (UTC); "" if it is not one."""
    if not stamp:
        return ""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
