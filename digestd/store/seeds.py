"""The store's seed papers: what each subscriber gave as a description of their interests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..models import Paper
from .records import PAPER_COLUMNS, StoredSeed, utcnow


class SeedStore:
    """Seeds by subscriber, and the lookup of stored papers by any of their ids."""

    def papers_by_alias(self, ids: Iterable[str]) -> dict[str, Paper]:
        """Each given id (canonical or alias, as sources/ids.py spells them) that names a
        stored paper -> that paper (without aliases)."""
        ids = list(dict.fromkeys(ids))
        out: dict[str, Paper] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                    f"SELECT i.alias, {PAPER_COLUMNS} FROM paper_ids i "
                    f"JOIN papers p ON p.pk = i.paper_pk WHERE i.alias IN ({marks})", chunk):
                out[row[0]] = self._paper(row[1:])
        return out

    def add_seeds(self, subscriber_id: int, seeds: Sequence[StoredSeed], *,
                  now: str | None = None) -> int:
        """Store seeds for a subscriber (a seed already there gets the new text); returns
        how many were new."""
        now = now or utcnow()
        new = 0
        with self.transaction() as db:
            for s in seeds:
                had = db.execute("SELECT 1 FROM seeds WHERE subscriber_id = ? AND paper_id = ?",
                                 (subscriber_id, s.paper_id)).fetchone()
                db.execute(
                    "INSERT INTO seeds (subscriber_id, paper_id, title, abstract, origin, "
                    "added_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subscriber_id, paper_id) "
                    "DO UPDATE SET title = excluded.title, abstract = excluded.abstract, "
                    "origin = excluded.origin",
                    (subscriber_id, s.paper_id, s.title, s.abstract, s.origin, now))
                new += had is None
        return new

    def seeds(self, subscriber_id: int) -> list[StoredSeed]:
        """A subscriber's seeds, in the order they were added."""
        return self.seeds_of([subscriber_id]).get(subscriber_id, [])

    def seeds_of(self, subscriber_ids: Sequence[int] | None = None) -> dict[int, list[StoredSeed]]:
        """Seeds by subscriber id (every subscriber with seeds when `subscriber_ids` is None),
        each list in the order the seeds were added: what the daily build's profiles read."""
        sql = ("SELECT subscriber_id, paper_id, title, abstract, origin, added_at FROM seeds")
        if subscriber_ids is not None:
            sql += (" WHERE subscriber_id IN ("
                    + (",".join(str(int(i)) for i in subscriber_ids) or "NULL") + ")")
        out: dict[int, list[StoredSeed]] = {}
        # one copy of each distinct seed's text: readers of one field share seeds, and at
        # 30,000 profiles of 5 to 50 seeds a copy per row would hold each abstract many times
        shared: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        for sid, paper_id, title, abstract, origin, added_at in self.db.execute(
                sql + " ORDER BY subscriber_id, added_at, paper_id"):
            text = shared.setdefault((paper_id, title, abstract), (paper_id, title, abstract))
            out.setdefault(sid, []).append(StoredSeed(*text, origin, added_at))
        return out

    def remove_seeds(self, subscriber_id: int, paper_ids: Iterable[str]) -> list[str]:
        """Remove the given seeds; returns the ids that were there (and are gone now)."""
        gone = []
        with self.transaction() as db:
            for pid in dict.fromkeys(paper_ids):
                if db.execute("DELETE FROM seeds WHERE subscriber_id = ? AND paper_id = ?",
                              (subscriber_id, pid)).rowcount:
                    gone.append(pid)
        return gone
