"""The short "nothing matched" note for subscribers who asked to hear about empty days."""

from __future__ import annotations

from datetime import datetime

from .models import Digest
from .render import Renderer


class EmptyNoteRenderer(Renderer):
    """Renders a digest without papers as a short note, with every header of a real digest
    (List-Unsubscribe, DKIM, ...): so silence is never ambiguous, and the note can be
    unsubscribed from like any digest."""

    def __init__(self, base: Renderer) -> None:
        # same links, sender, styles and signer as the digests of this run
        self.__dict__.update(base.__dict__)
        self.text_template = self.env.get_template("email/empty.txt")
        self.html_template = self.env.get_template("email/empty.html")

    def subject(self, digest: Digest) -> str:
        # keep the digest's own subject prefix (list name and period), change the news
        prefix = super().subject(digest).rpartition(":")[0]
        n = digest.papers_checked
        return f"{prefix}: nothing matched ({n} paper{'s' if n != 1 else ''} checked)"

    def message(self, digest: Digest, *, now: datetime | None = None) -> tuple[str, bytes]:
        if digest.items:
            raise ValueError("an empty-day note has no papers")
        return super().message(digest, now=now)
