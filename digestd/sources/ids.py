"""Canonical paper identity: arXiv ids, DOIs and URLs in the one spelling the store compares."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

# New style (since 2007): YYMM.NNNN (4 digits until 2014) or YYMM.NNNNN; old style:
# archive[.SUBJECT]/YYMMNNN, e.g. hep-th/9901001 or math.GT/0309136.
_NEW = r"\d{4}\.\d{4,5}"
_OLD = r"[a-z]+(?:-[a-z]+)*(?:\.[A-Za-z]{2})?/\d{7}"
_ARXIV_BARE = re.compile(rf"^(?P<id>{_NEW}|{_OLD})(?:v(?P<v>\d+))?$", re.IGNORECASE)
# Where an arXiv id hides in a longer string: abs/pdf/html URLs, oai:arXiv.org:, arXiv:,
# and arXiv's own DOIs 10.48550/arXiv.<id>.
_ARXIV_IN = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html|format)/|oai:arxiv\.org:|arxiv:|10\.48550/arxiv\.)"
    rf"(?P<id>{_NEW}|{_OLD})(?:v(?P<v>\d+))?(?![\d])",
    re.IGNORECASE)
_DOI = re.compile(r"(10\.\d{4,9}/\S+)", re.IGNORECASE)
_DOI_PREFIX = re.compile(r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/|info:doi/)", re.IGNORECASE)
# tracking parameters of a link's query, which name the message or campaign that carried the
# link, not the page (Google Analytics' utm_*, Facebook's, Google's and Microsoft's ad clicks,
# Mailchimp's, HubSpot's, Marketo's)
_TRACKING = re.compile(r"(?:^|&)(?:utm_[a-z]+|fbclid|gclid|dclid|msclkid|yclid|mc_cid|mc_eid"
                       r"|_hsenc|_hsmi|mkt_tok)=", re.IGNORECASE)
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.", re.IGNORECASE)


def _old_style_case(raw: str) -> str:
    # The archive is lowercase but the subject class keeps its case: math.GT/0309136.
    archive, _, rest = raw.partition("/")
    head, dot, subject = archive.partition(".")
    return f"{head.lower()}{dot}{subject.upper()}/{rest}"


def parse_arxiv(text: str | None) -> tuple[str, int | None] | None:
    """(bare id without version, version or None) from any spelling of an arXiv id, or None.

    Accepts 2401.01234v2, arXiv:2401.01234, hep-th/9901001, https://arxiv.org/abs/...,
    https://arxiv.org/pdf/...v3.pdf, oai:arXiv.org:..., 10.48550/arXiv.2401.01234 and
    https://doi.org/10.48550/arXiv.2401.01234.
    """
    if not text:
        return None
    text = text.strip()
    m = _ARXIV_BARE.match(text)
    if m is None:
        m = _ARXIV_IN.search(text)
        if m is None:
            return None
    raw = m["id"]
    bare = _old_style_case(raw) if "/" in raw else raw
    return bare, int(m["v"]) if m["v"] else None


def arxiv_id(text: str | None) -> str | None:
    """`arxiv:<id without version>` for any spelling of an arXiv id, else None."""
    found = parse_arxiv(text)
    return f"arxiv:{found[0]}" if found else None


def arxiv_version(text: str | None) -> int | None:
    """The version number in a versioned arXiv id (2401.01234v3 -> 3), else None."""
    found = parse_arxiv(text)
    return found[1] if found else None


def arxiv_urls(bare: str) -> tuple[str, str]:
    """The abstract page and PDF of the latest version of an arXiv paper (bare id)."""
    return f"https://arxiv.org/abs/{bare}", f"https://arxiv.org/pdf/{bare}"


def normalize_doi(text: str | None) -> str | None:
    """A DOI in lowercase without any doi:/https://doi.org/ prefix, or None.

    DOIs are case-insensitive (the DOI handbook), so lowercase is the comparable form.
    """
    if not text:
        return None
    text = _DOI_PREFIX.sub("", unquote(text.strip()))
    m = _DOI.search(text)
    if m is None:
        return None
    # Trailing punctuation comes from prose ("see doi:10.1/x.") rather than the DOI.
    return m[1].rstrip(".,;)]}>\"'").lower()


def doi_id(text: str | None) -> str | None:
    """`doi:<lowercased DOI>`; arXiv's own DOIs (10.48550/arXiv.X) give `arxiv:X`."""
    doi = normalize_doi(text)
    if doi is None:
        return None
    if _ARXIV_DOI.match(doi):
        return arxiv_id(doi)
    return f"doi:{doi}"


def url_id(url: str | None) -> str | None:
    """`url:<url>` with scheme and host lowercased and the fragment dropped, or None.

    An arXiv or doi.org URL gives the arXiv id or DOI instead, so links meet ids.
    """
    if not url:
        return None
    url = url.strip()
    known = arxiv_id(url) if "arxiv" in url.lower() else None
    if known is None and "doi.org/" in url.lower():
        known = doi_id(url)
    if known:
        return known
    parts = urlsplit(untracked(url))
    if not parts.scheme or not parts.netloc:
        return f"url:{url}"
    return "url:" + urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/",
                                parts.query, ""))


def untracked(url: str) -> str:
    """`url` without the tracking parameters of its query (`utm_source=rss`, `fbclid=...`),
    otherwise as written: campaign tags that change from one poll to the next name no other
    page, and a reader's link need not carry them."""
    if "=" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query or not _TRACKING.search(parts.query):
        return url
    query = "&".join(p for p in parts.query.split("&") if not _TRACKING.match(p))
    return urlunsplit(parts._replace(query=query))


def canonical(*candidates: str | None) -> tuple[str, tuple[str, ...]] | None:
    """Pick the canonical id among already-normalized ids; the rest become aliases.

    arXiv ids win over DOIs, DOIs over anything else, so the same paper gets the same
    row key whichever source sees it first; order among equals is kept.
    """
    ids = list(dict.fromkeys(c for c in candidates if c))
    if not ids:
        return None
    rank = {"arxiv": 0, "doi": 1}
    best = min(ids, key=lambda i: rank.get(i.partition(":")[0], 2))
    return best, tuple(i for i in ids if i != best)

