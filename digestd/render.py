"""Render digests: the Jinja environment, the text and HTML bodies, the MIME message and its headers."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from importlib import resources
from pathlib import Path

import jinja2

from .models import Digest, PaperMatch
from .tokens import sign

ABSTRACT_CHARS = 300


def bundled_templates() -> Path:
    """The templates shipped with the package (top-level templates/ in a source checkout)."""
    try:
        installed = resources.files("digestd.templates")
        if installed.joinpath("email").is_dir():
            return Path(str(installed))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "templates"


def environment(templates_dir: str = "") -> jinja2.Environment:
    """Autoescaping Jinja environment; files in `templates_dir` override bundled ones by name."""
    loaders = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.FileSystemLoader(str(bundled_templates())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"),
                                            default_for_string=True),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["shorten"] = shorten
    return env


def shorten(text: str, limit: int = ABSTRACT_CHARS) -> str:
    """Cut at a word boundary near `limit` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:.") + "…"


def short_authors(authors: tuple[str, ...], shown: int = 3) -> str:
    """'A, B, C and 4 others' style."""
    if not authors:
        return ""
    if len(authors) <= shown + 1:
        return ", ".join(authors[:-1]) + (" and " if len(authors) > 1 else "") + authors[-1]
    return f"{', '.join(authors[:shown])} and {len(authors) - shown} others"


def relevance(item: PaperMatch) -> tuple:
    """Sort key, best first: rules matched, title hits, upvotes, recency."""
    title_hits = sum(1 for r in item.rules for h in r.hits if h.field == "title")
    return (-len(item.rules), -title_hits, -(item.paper.upvotes or 0),
            _neg_date(item.paper.published))


def _neg_date(published: str) -> tuple:
    # newest first without parsing: invert each character code of the ISO string
    return tuple(-ord(c) for c in published)


@dataclass(frozen=True)
class Links:
    base_url: str
    secret: bytes

    def unsubscribe(self, subscriber_id: int) -> str:
        return f"{self.base_url.rstrip('/')}/u/{sign(self.secret, 'unsub', subscriber_id)}"

    def preferences(self, subscriber_id: int) -> str:
        return f"{self.base_url.rstrip('/')}/p/{sign(self.secret, 'prefs', subscriber_id)}"


def paper_view(item: PaperMatch) -> dict:
    p = item.paper
    return {
        "title": p.title,
        "url": p.url,
        "pdf_url": p.pdf_url,
        "authors": short_authors(p.authors),
        "source": p.source,
        "categories": ", ".join(p.categories),
        "published": p.published[:10],
        "upvotes": p.upvotes,
        "abstract": shorten(p.abstract),
        "why": "; ".join(", ".join(str(h) for h in r.hits) or f'rule "{r.rule}"'
                         for r in item.rules),
    }


class Renderer:
    """Renders digests to message bytes. Build one per run: the templates compile once."""

    def __init__(self, *, links: Links, from_addr: str, max_papers: int = 25,
                 templates_dir: str = "", reply_to: str = "") -> None:
        self.env = environment(templates_dir)
        self.text_template = self.env.get_template("email/digest.txt")
        self.html_template = self.env.get_template("email/digest.html")
        self.links = links
        self.from_addr = from_addr
        self.reply_to = reply_to
        self.max_papers = max_papers
        self.domain = parseaddr(from_addr)[1].rpartition("@")[2] or "localhost"

    def context(self, digest: Digest) -> dict:
        items = sorted(digest.items, key=relevance)
        shown = items[: self.max_papers]
        sub = digest.subscriber
        return {
            "subscriber": sub,
            "period": digest.period,
            "papers": [paper_view(i) for i in shown],
            "count": len(items),
            "more": len(items) - len(shown) + digest.more,
            "papers_checked": digest.papers_checked,
            "unsubscribe_url": self.links.unsubscribe(sub.id),
            "preferences_url": self.links.preferences(sub.id),
            "base_url": self.links.base_url,
            "rules": sub.rules,
        }

    def subject(self, digest: Digest) -> str:
        n = len(digest.items)
        return f"Paper digest {digest.period}: {n} new paper{'s' if n != 1 else ''}"

    def render(self, digest: Digest) -> tuple[str, str]:
        ctx = self.context(digest)
        return self.text_template.render(ctx), self.html_template.render(ctx)

    def message(self, digest: Digest, *, now: datetime | None = None) -> tuple[str, bytes]:
        """(Message-ID, RFC 5322 bytes) for one digest."""
        text, html = self.render(digest)
        sub = digest.subscriber
        msg = EmailMessage()
        msg["From"] = self.from_addr
        msg["To"] = Address(display_name=_one_line(sub.name), addr_spec=sub.email)
        msg["Subject"] = self.subject(digest)
        msg["Date"] = format_datetime(now or datetime.now(timezone.utc))
        message_id = f"<digest.{sub.id}.{_safe(digest.period)}.{secrets.token_hex(6)}@{self.domain}>"
        msg["Message-ID"] = message_id
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        msg["List-Id"] = f"Paper digest <digest.{self.domain}>"
        msg["List-Unsubscribe"] = f"<{self.links.unsubscribe(sub.id)}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["Auto-Submitted"] = "auto-generated"
        msg["Precedence"] = "bulk"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return message_id, msg.as_bytes()


def _one_line(text: str) -> str:
    """User-supplied header text on one line: CR/LF can never start a new header."""
    return re.sub(r"[\r\n\t\x00-\x1f]+", " ", text).strip()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text)
