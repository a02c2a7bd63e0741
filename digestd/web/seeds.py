"""The preferences page's "Seed papers" card (/p/TOKEN/seeds): add seeds by id or from a
BibTeX or RIS file, see what was kept and what not, remove them."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import DigestdError
from ..relevance.seedfile import SeedFile, seeds_from_bytes
from ..relevance.seeding import MAX_SEEDS, all_ids, choose, typed_seeds
from .guard import Guard
from .site import Site

if TYPE_CHECKING:
    from ..models import Subscriber
    from .preferences import PreferencePages

log = logging.getLogger("digestd.web")

MAX_FILE = 2 * 1024 * 1024       # an uploaded seed file (Zotero exports ~3,000 entries in 2 MB)
MAX_TYPED = 64 * 1024            # the box of ids
SEED_PATH = re.compile(r"^/p/[^/]+/seeds$")  # the one route that takes a file (app.Envelope)
REPORTS_KEPT = 1000              # reports waiting for their redirect, all subscribers
REPORT_SECONDS = 3600
FILE_TOO_BIG = (f"A seed file may be at most {MAX_FILE // (1024 * 1024)} MB. Nothing was "
                "changed: export fewer papers (a collection of your library, say) and try again.")


@dataclass(frozen=True)
class SeedReport:
    """What adding seeds did, shown once the browser follows the redirect."""

    subscriber_id: int
    text: str                    # "kept 12 of 14 seeds (12 new); 2 unknown ids: ..."
    problems: tuple[str, ...]    # the entries not read, the first seeding.PROBLEMS_SHOWN
    more_problems: int           # and how many more
    unknown: bool                # whether to explain unknown ids
    at: float


class SeedReports:
    """The reports of the last seed POSTs, by a random key the redirect carries (Post/
    Redirect/Get with a result too long and too free for a URL). Kept in memory: after a
    restart the page says only that the seeds were saved."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.reports: OrderedDict[str, SeedReport] = OrderedDict()

    def put(self, report: SeedReport) -> str:
        key = secrets.token_urlsafe(9)
        self.reports[key] = report
        while len(self.reports) > REPORTS_KEPT:
            self.reports.popitem(last=False)
        return key

    def get(self, key: str | None, subscriber_id: int) -> SeedReport | None:
        report = self.reports.get(key or "")
        if (report is None or report.subscriber_id != subscriber_id
                or report.at < self.clock() - REPORT_SECONDS):
            return None
        return report


def upload_name(name: str) -> str:
    """An uploaded file's name without any folder a browser sent along, shortened."""
    base = PureWindowsPath(PurePosixPath(name).name).name
    return "".join(c for c in base if c.isprintable())[:80] or "the file"


class SeedPages:
    """POST /p/TOKEN/seeds (ids typed, a file, or both) and /p/TOKEN/seeds/remove."""

    def __init__(self, site: Site, guard: Guard, prefs: PreferencePages) -> None:
        self.site = site
        self.guard = guard
        self.prefs = prefs

    async def read_form(self, request: Request) -> FormData:
        try:
            return await request.form(max_files=1, max_fields=8, max_part_size=MAX_TYPED)
        except HTTPException as e:
            raise self.site.fail(400, "That form did not arrive whole",
                                 f"{e.detail} Nothing was changed.") from None

    def refuse(self, request: Request, sub: Subscriber, token: str, status: int, text: str
               ) -> Response:
        self.site.count("seeds_refused")
        return self.prefs.preferences_page(request, sub, token, status=status, seed_error=text)

    def done(self, token: str, what: str, key: str = "") -> Response:
        # Post/Redirect/Get, to the card: a reload does not add the seeds twice
        query = f"done={what}" + (f"&report={key}" if key else "")
        return RedirectResponse(self.site.url(f"/p/{token}?{query}#seeds"), status_code=303)

    async def add(self, request: Request) -> Response:
        sub, token = self.prefs.prefs_subscriber(request)
        self.guard.allow_seeds(request)
        form = await self.read_form(request)
        try:
            return await self.add_from(request, sub, token, form)
        finally:
            await form.close()  # the upload's temporary file

    async def add_from(self, request: Request, sub: Subscriber, token: str, form: FormData
                       ) -> Response:
        self.guard.check_csrf(request, form, sub.id, token)
        parts: list[tuple[SeedFile, str]] = []
        upload = form.get("file")
        if isinstance(upload, UploadFile) and (upload.filename or upload.size):
            self.guard.allow_seed_file(request)
            data = await upload.read(MAX_FILE + 1)
            if len(data) > MAX_FILE:
                return self.refuse(request, sub, token, 413, FILE_TOO_BIG)
            name = upload_name(upload.filename or "")
            try:
                # 2 MB of BibTeX take a second to parse: not on the event loop
                parts.append((await asyncio.to_thread(seeds_from_bytes, data, name), name))
            except DigestdError as e:
                return self.refuse(request, sub, token, 400,
                                   f"{e} Nothing was changed: choose a BibTeX (.bib) or RIS "
                                   "(.ris) export of your library.")
        typed = form.get("ids")
        if isinstance(typed, str) and typed.strip():
            try:
                parts.append((await asyncio.to_thread(typed_seeds, typed, "pasted"), ""))
            except DigestdError as e:
                return self.refuse(request, sub, token, 400, f"{e} Nothing was changed.")
        if not parts:
            return self.refuse(request, sub, token, 400,
                               "Type arXiv ids or DOIs, or choose a BibTeX or RIS file.")
        store = self.site.store
        known = store.papers_by_alias(all_ids(parts))
        choice = choose(parts, known, have={s.paper_id for s in store.seeds(sub.id)},
                        limit=MAX_SEEDS)
        new = store.add_seeds(sub.id, list(choice.rows), now=self.site.now_iso())
        self.site.count("seeds_added")
        log.info("event=seeds_added subscriber=%d kept=%d new=%d of=%d", sub.id,
                 len(choice.rows), new, choice.total)
        key = self.prefs.seed_reports.put(SeedReport(
            sub.id, choice.summary(new, where_problems="below" if choice.problems else ""),
            *choice.problems_shown(),
            bool(choice.unknown), self.site.clock()))
        return self.done(token, "seeded", key)

    async def remove(self, request: Request) -> Response:
        sub, token = self.prefs.prefs_subscriber(request)
        self.guard.allow_seeds(request)
        form = await self.site.read_form(request)
        self.guard.check_csrf(request, form, sub.id, token)
        gone = self.site.store.remove_seeds(sub.id, [str(form.get("id", ""))])
        if gone:
            self.site.count("seeds_removed")
            log.info("event=seed_removed subscriber=%d", sub.id)
        return self.done(token, "seed_removed" if gone else "seed_gone")
