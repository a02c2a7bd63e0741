"""The store's papers, their aliases, and the state of each source."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from ..identity import conflicting, strong_kind, title_key, titles_agree
from ..models import Paper
from ..text import collapse
from .records import PAPER_COLUMNS, SourceState, _names, utcnow

log = logging.getLogger("digestd.store")


def _items(ids: Iterable[str]) -> set[str]:
    """What the `url:` ids among `ids` name: the parts of each link's path that hold a
    number, without a version or a view ("/a/101" and "/a/102" are two items;
    "/article/123/abstract" and "/article/123/fulltext", "...570001v1" and "...570001v2",
    "http://j/doi/10.1/abc" and "https://j/doi/full/10.1/abc?af=R" one). Empty when no
    part holds a number: such links cannot tell items apart."""
    out = set()
    for i in ids:
        if i.startswith("url:"):
            path = urlsplit(i[4:].partition("#")[0]).path
            for part in path.split("/"):
                part = _VIEW.sub("", part)
                if any(c.isdigit() for c in part):
                    out.add(part)
    return out


def _feed_guid(paper: Paper, ids: Iterable[str]) -> str | None:
    """The item's guid id within its feed (`guid:SOURCE|...`), if it has one."""
    prefix = f"guid:{paper.source}|"
    return next((i for i in ids if i.startswith(prefix)), None)


def _renumbered(batch: Sequence[tuple[Paper, list[str]]], known: dict[str, int],
                aliases_of: dict[int, list[str]], titles: dict[int, tuple[str, str]]
                ) -> set[str]:
    """The sources of `batch` whose guids no longer name their items: a feed that numbers
    its guids by position ("1" is whatever is on top today) or makes new ones on each
    fetch. Their guids say nothing in this batch (_without_guid): links and titles decide.

    A feed's guids are taken as renumbered when one of its items has a guid that names one
    stored paper and a link that names another (the guids moved), or when at least two of
    its items come with guids never seen, each with the link and title of a stored paper
    of that feed known by another guid, and none with a guid seen before (all changed at
    once). A link that several items share counts with the item's title (its `item:` id).
    One item with a new guid at a known link and title stays a new item here: a recurring
    column at one address ("What is your diagnosis?"; _same_paper keeps an article at its
    own address)."""
    moved: set[str] = set()
    renamed: dict[str, int] = {}
    kept: set[str] = set()
    for paper, ids in batch:
        guid = _feed_guid(paper, ids)
        # its link, or (at a link it shares with other items) its link and title
        link = next((i for i in ids if i.startswith(("url:", "item:")) and i in known), None)
        if guid is None:
            continue
        if guid in known:
            kept.add(paper.source)
            if link is not None and known[link] != known[guid]:
                moved.add(paper.source)
        elif link is not None:
            pk = known[link]
            if _feed_guid(paper, aliases_of.get(pk, ())) is not None and titles_agree(
                    paper.title, titles.get(pk, (paper.title, ""))[0]):
                renamed[paper.source] = renamed.get(paper.source, 0) + 1
    found = moved | {source for source, n in renamed.items() if n >= 2 and source not in kept}
    for source in found:
        log.info("event=guids_renumbered source=%s: its items are known by link and title "
                 "in this poll", source)
    return found


def _without_guid(paper: Paper, ids: list[str]) -> tuple[Paper, list[str]]:
    """`paper` and `ids` without its feed's guid (_renumbered), when another id is left."""
    guid = _feed_guid(paper, ids)
    rest = [i for i in ids if i != guid]
    if guid is None or all(i.startswith("title:") for i in rest):
        return paper, ids
    if paper.id == guid:
        paper = replace(paper, id=rest[0], aliases=tuple(i for i in paper.aliases
                                                          if i != guid and i != rest[0]))
    return paper, rest


# a version or a view at the end of a path's part: "v2", ".full", ".abstract", ".pdf"
_VIEW = re.compile(r"(?:v\d+)?(?:\.(?:full|abstract|pdf|html|full-text|supplementary))*$")


class PaperStore:
    """Papers seen once, ever (with their aliases), and each source's poll state."""

    # -- papers --------------------------------------------------------------------------------

    def add_papers(self, papers: Iterable[Paper], *, now: str | None = None) -> list[Paper]:
        """Store papers never seen under any of their ids; return only those, in order.

        A paper known by one of its strong ids (arXiv id, DOI, guid of its feed) is not
        new. One known only by a weak id (its link, its normalized title) is the same paper
        unless the two disagree on a strong id (two DOIs, two arXiv ids, two guids of one
        feed: identity.conflicting). A paper met again has its new aliases recorded and its
        upvotes and version refreshed, so the next source meets it in the same row. Every
        merge is logged at debug with the id that matched.
        """
        now = now or utcnow()
        batch = []
        for paper in papers:
            ids = list(dict.fromkeys(paper.ids))
            key = title_key(paper.title)
            if key and key not in ids:
                ids.append(key)
            batch.append((paper, ids))
        new: list[Paper] = []
        # what the store knows of these ids is read up front, a few statements for the whole
        # batch (a round trip each on PostgreSQL), and kept up to date as papers are added,
        # so a paper later in the batch meets an earlier one as it would in the store
        refreshed: list[tuple] = []
        links: list[tuple[str, int]] = []
        with self.transaction() as db:
            known = self._paper_keys(db, {alias for _, ids in batch for alias in ids})
            aliases_of = self._aliases_of(db, set(known.values()))
            titles = self._titles_of(db, set(known.values()))
            renumbered = _renumbered(batch, known, aliases_of, titles)
            batch_guids = {i for _, ids in batch for i in ids if i.startswith("guid:")}
            if renumbered:
                batch = [_without_guid(paper, ids) if paper.source in renumbered
                         else (paper, ids) for paper, ids in batch]
            for paper, ids in batch:
                found = {alias: known[alias] for alias in ids if alias in known}
                pk = self._same_paper(paper, ids, found, aliases_of, titles,
                                      renamed=lambda pk: self._renamed_guid(
                                          db, paper, pk, aliases_of, batch_guids)
                                      ) if found else None
                if pk is not None:
                    if paper.upvotes is not None or paper.version is not None:
                        refreshed.append((paper.upvotes, paper.version, pk))
                else:
                    if paper.id in found:  # its canonical id names another paper (a conflict)
                        free = [i for i in ids if i not in found and not i.startswith("title:")]
                        if not free:
                            # its own id, the same each time this item comes (the link's id
                            # and its title): met again, it is this paper, not a new one
                            digest = hashlib.sha256(paper.title.encode()).hexdigest()[:12]
                            free = [f"{paper.id}#{digest}"]
                            row = db.execute("SELECT pk FROM papers WHERE id = ?",
                                             (free[0],)).fetchone()
                            if row is not None:
                                log.debug("paper=%s source=%s seen_as=%s matched=%s", paper.id,
                                          paper.source, row[0], free[0])
                                continue
                        paper = replace(paper, id=free[0])
                    pk = db.insert_id(
                        "INSERT INTO papers (id, title, abstract, authors, categories, source, "
                        "url, pdf_url, published, upvotes, version, first_seen) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (paper.id, paper.title, paper.abstract, _names(paper.authors),
                         _names(paper.categories), paper.source, paper.url, paper.pdf_url,
                         paper.published, paper.upvotes, paper.version, now), key="pk",
                        or_none=True)
                    if pk is None:  # one paper the store refuses must not cost the others
                        log.warning("event=paper_not_stored paper=%s source=%s reason=%s",
                                    paper.id, paper.source, "its id is taken")
                        continue
                    new.append(paper)
                    titles[pk] = (paper.title, paper.source)
                for alias in ids:  # an alias another paper has already stays with it
                    if alias not in known:
                        known[alias] = pk
                        aliases_of.setdefault(pk, []).append(alias)
                        links.append((alias, pk))
            db.executemany("UPDATE papers SET upvotes = coalesce(?, upvotes), version = "
                           + self.sql.larger("coalesce(version, 0)", "coalesce(?, 0)")
                           + " WHERE pk = ?", refreshed)
            db.executemany("INSERT INTO paper_ids (alias, paper_pk) VALUES (?, ?) "
                           "ON CONFLICT DO NOTHING", links)
        return new

    @staticmethod
    def _paper_keys(db, aliases: Iterable[str]) -> dict[str, int]:
        """Alias -> the row of the paper it names, for those of `aliases` that are stored."""
        aliases = list(aliases)
        out: dict[str, int] = {}
        for i in range(0, len(aliases), 500):
            chunk = aliases[i:i + 500]
            out.update(db.execute(f"SELECT alias, paper_pk FROM paper_ids WHERE alias IN "
                                  f"({','.join('?' * len(chunk))})", chunk).fetchall())
        return out

    @staticmethod
    def _aliases_of(db, pks: Iterable[int]) -> dict[int, list[str]]:
        """Paper row -> every alias it has, for the rows `pks`."""
        pks = list(pks)
        out: dict[int, list[str]] = {}
        for i in range(0, len(pks), 500):
            chunk = pks[i:i + 500]
            for alias, pk in db.execute(f"SELECT alias, paper_pk FROM paper_ids WHERE paper_pk "
                                        f"IN ({','.join('?' * len(chunk))})", chunk):
                out.setdefault(pk, []).append(alias)
        return out

    @staticmethod
    def _titles_of(db, pks: Iterable[int]) -> dict[int, tuple[str, str]]:
        """Paper row -> (its title, its source), for the rows `pks`."""
        pks = list(pks)
        out: dict[int, tuple[str, str]] = {}
        for i in range(0, len(pks), 500):
            chunk = pks[i:i + 500]
            for pk, title, source in db.execute(
                    f"SELECT pk, title, source FROM papers WHERE pk IN "
                    f"({','.join('?' * len(chunk))})", chunk):
                out[pk] = (title, source)
        return out

    @staticmethod
    def _renamed_guid(db, paper: Paper, pk: int, aliases_of: dict[int, list[str]],
                      batch_guids: set[str]) -> bool:
        """Whether stored paper `pk`, met by `paper`'s link and title at a page its feed
        lists several items at (an `item:` id) under another guid of that feed, is `paper`
        under a guid its feed renamed: the old guid is gone from this poll, the title is an
        identity of its own (identity.title_key: no "Editorial", no short column title) and
        the two descriptions are the same (or one is missing). A column's next instalment
        there (a description of its own) stays another item."""
        prefix = f"guid:{paper.source}|"
        theirs = [a for a in aliases_of.get(pk, ()) if a.startswith(prefix)]
        if not theirs or any(g in batch_guids for g in theirs) or title_key(paper.title) is None:
            return False
        row = db.execute("SELECT abstract FROM papers WHERE pk = ?", (pk,)).fetchone()
        stored = collapse(row[0] or "") if row else ""
        mine = collapse(paper.abstract or "")
        return not stored or not mine or stored == mine

    @staticmethod
    def _same_paper(paper: Paper, ids: list[str], found: dict[str, int],
                    aliases_of: dict[int, list[str]],
                    titles: dict[int, tuple[str, str]],
                    renamed: Callable[[int], bool] | None = None) -> int | None:
        """The row of the stored paper that `paper` is, among those its ids `found`, or None.

        Candidates met by a strong id come first; any candidate that disagrees with the
        paper on a strong id of another kind (the same guid, another DOI) is another paper
        (`aliases_of`: each candidate's aliases). A candidate met by its link alone (a
        `url:` id, nothing else in common) is the same paper only when the titles agree
        (identity.titles_agree): a page that shows one item after another ("upcoming",
        "latest article") keeps its link while the item changes. One met by its title alone is another paper when both come from the same
        feed with links that name other items (a recurring column, "What is your
        diagnosis?" at /a/101 and /a/102; not a link rewritten, _items). `titles`: each
        candidate's (title, source). Two guids of one feed are two items, but for one
        article listed twice (the same DOI or arXiv id and titles that agree) and for an
        article whose guid changed at its own address (its link, with a number in its path,
        _items, and titles that agree), or at a page that lists several items (`renamed`:
        _renamed_guid, asked with the candidate's row).
        """
        order = sorted((alias for alias in ids if alias in found),
                       key=lambda alias: strong_kind(alias) is None)
        tried: set[int] = set()
        for alias in order:
            pk = found[alias]
            if pk in tried:
                continue
            tried.add(pk)
            theirs = aliases_of.get(pk, ())
            via = [a for a in ids if found.get(a) == pk]
            clash = conflicting(ids, theirs)
            title, source = titles.get(pk, (paper.title, paper.source))
            if clash and clash.startswith("guid:") and any(
                    a.startswith(("doi:", "arxiv:")) or a.startswith("url:") and _items([a])
                    for a in via) and titles_agree(paper.title, title) and not conflicting(
                    [i for i in ids if not i.startswith("guid:")], theirs):
                # one article listed twice in its feed under two guids ("research-300",
                # "highlights-300") with its one DOI and title; or an article whose guid
                # changed ("J-0001" to "j-2026-0001", http to https) at its own address (a
                # number in its path, /a/7) under a title that agrees. Items that share an
                # issue's DOI under their own titles stay apart, and so do two guids at a
                # page that shows one item after another (/column, /latest)
                clash = None
            elif clash and clash.startswith("guid:") and renamed is not None and any(
                    a.startswith("item:") for a in via) and not conflicting(
                    [i for i in ids if not i.startswith("guid:")], theirs) and renamed(pk):
                # one item's guid renamed at a page that lists several (a journal's
                # "upcoming" page): its link, title and description stay (_renamed_guid)
                clash = None
            if clash:
                log.debug("paper=%s source=%s not_merged_with=%s shared=%s differs=%s",
                          paper.id, paper.source, pk, alias, clash)
                continue
            if all(a.startswith("url:") for a in via) and not titles_agree(paper.title, title):
                log.debug("paper=%s source=%s not_merged_with=%s shared=%s differs=title",
                          paper.id, paper.source, pk, alias)
                continue
            if all(a.startswith("title:") for a in via) and source == paper.source and (
                    _items(ids) and _items(theirs) and _items(ids).isdisjoint(_items(theirs))):
                log.debug("paper=%s source=%s not_merged_with=%s shared=%s differs=link",
                          paper.id, paper.source, pk, alias)
                continue
            log.debug("paper=%s source=%s seen_as=%s matched=%s", paper.id, paper.source, pk,
                      alias)
            return pk
        return None

    _PAPER_COLUMNS = PAPER_COLUMNS


    def _paper(self, row: Sequence, aliases: Sequence[str] = ()) -> Paper:
        return Paper(id=row[1], title=row[2], abstract=row[3],
                     authors=tuple(json.loads(row[4])), categories=tuple(json.loads(row[5])),
                     source=row[6], url=row[7], pdf_url=row[8], published=row[9],
                     upvotes=row[10], version=row[11],
                     aliases=tuple(a for a in aliases if a != row[1]))

    def papers_since(self, since: str, *, with_aliases: bool = False,
                     limit: int | None = None, newest_first: bool = False) -> list[Paper]:
        """Papers first seen at or after `since` (ISO timestamp), oldest first (or, with
        `newest_first`, the most recently seen first, so `limit` keeps the newest)."""
        order = "DESC" if newest_first else ""
        sql = (f"SELECT {self._PAPER_COLUMNS} FROM papers p WHERE p.first_seen >= ? "
               f"ORDER BY p.first_seen {order}, p.pk {order}")
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = self.db.execute(sql, (since,)).fetchall()
        if not with_aliases:
            return [self._paper(r) for r in rows]
        aliases: dict[int, list[str]] = {}
        for alias, pk in self.db.execute(
                "SELECT i.alias, i.paper_pk FROM paper_ids i JOIN papers p ON p.pk = i.paper_pk "
                "WHERE p.first_seen >= ? ORDER BY i.alias", (since,)):
            aliases.setdefault(pk, []).append(alias)
        return [self._paper(r, aliases.get(r[0], ())) for r in rows]

    def first_seen_since(self, since: str) -> list[str]:
        """The first-seen times of `papers_since(since)`, in the same order."""
        return [r[0] for r in self.db.execute(
            "SELECT first_seen FROM papers WHERE first_seen >= ? ORDER BY first_seen, pk",
            (since,))]

    def paper_pks(self, ids: Iterable[str]) -> dict[str, int]:
        """Canonical id -> row key, for the given canonical ids that are stored, in the order
        given (whatever order the backend reads the rows in)."""
        ids = list(ids)
        found: dict[str, int] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(f"SELECT id, pk FROM papers WHERE id IN ({marks})",
                                         chunk))
        return {i: found[i] for i in ids if i in found}

    def count_subscribers(self, status: str = "active") -> int:
        return self.db.execute("SELECT count(*) FROM subscribers WHERE status = ?",
                               (status,)).fetchone()[0]

    def count_papers(self) -> int:
        return self.db.execute("SELECT count(*) FROM papers").fetchone()[0]

    # -- sources -------------------------------------------------------------------------------

    def source_state(self, name: str) -> SourceState:
        row = self.db.execute("SELECT * FROM source_state WHERE name = ?", (name,)).fetchone()
        if row is None:
            return SourceState(name=name)
        return SourceState(*row)

    def source_states(self) -> list[SourceState]:
        return [SourceState(*r) for r in
                self.db.execute("SELECT * FROM source_state ORDER BY name")]

    def record_poll(self, name: str, *, ok: bool, new: int = 0, error: str | None = None,
                    etag: str | None = None, last_modified: str | None = None,
                    cursor: str | None = None, now: str | None = None) -> None:
        """Remember the outcome of one poll: conditional-GET validators on success, the
        error and the consecutive-error count on failure."""
        now = now or utcnow()
        with self.transaction() as db:
            db.execute("INSERT INTO source_state (name) VALUES (?) ON CONFLICT DO NOTHING",
                       (name,))
            if ok:
                db.execute("UPDATE source_state SET etag = ?, last_modified = ?, "
                           "cursor = coalesce(?, cursor), last_poll = ?, last_success = ?, "
                           "consecutive_errors = 0, polls = polls + 1, "
                           "papers_seen = papers_seen + ? WHERE name = ?",
                           (etag, last_modified, cursor, now, now, new, name))
            else:
                db.execute("UPDATE source_state SET last_poll = ?, last_error = ?, "
                           "last_error_at = ?, consecutive_errors = consecutive_errors + 1, "
                           "errors_total = errors_total + 1, polls = polls + 1 WHERE name = ?",
                           (now, error, now, name))
