"""The store's seed papers: what each subscriber gave as a description of their interests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..models import Paper
from .records import PAPER_COLUMNS, StoredSeed, shard_args, utcnow


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
        how many were new. A text already kept for another reader is shared (seed_texts)."""
        now = now or utcnow()
        new = 0
        with self.transaction() as db:
            for s in seeds:
                row = db.execute("SELECT id FROM seed_texts WHERE paper_id = ? AND title = ? "
                                 "AND abstract = ?", (s.paper_id, s.title, s.abstract)).fetchone()
                text_id = row[0] if row else db.execute(
                    "INSERT INTO seed_texts (paper_id, title, abstract) VALUES (?, ?, ?) "
                    "RETURNING id", (s.paper_id, s.title, s.abstract)).fetchone()[0]
                had = db.execute("SELECT 1 FROM seeds WHERE subscriber_id = ? AND paper_id = ?",
                                 (subscriber_id, s.paper_id)).fetchone()
                db.execute(
                    "INSERT INTO seeds (subscriber_id, paper_id, text_id, origin, added_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (subscriber_id, paper_id) "
                    "DO UPDATE SET text_id = excluded.text_id, origin = excluded.origin",
                    (subscriber_id, s.paper_id, text_id, s.origin, now))
                new += had is None
        return new

    def subscribers_with_positives(self, shard: tuple[int, int] | None = None) -> set[int]:
        """Ids of the subscribers with a seed or a "more like this" mark: those whose
        digests the build may rank by a profile (a seed without text makes none). `shard`
        (k, n): only ids that are k modulo n."""
        if shard is None:
            return {sid for sid, in self.db.execute(
                "SELECT subscriber_id FROM seeds UNION "
                "SELECT subscriber_id FROM feedback WHERE value > 0")}
        n, k = shard_args(shard)
        return {sid for sid, in self.db.execute(
            "SELECT subscriber_id FROM seeds WHERE subscriber_id % ? = ? UNION "
            "SELECT subscriber_id FROM feedback WHERE value > 0 AND subscriber_id % ? = ?",
            (n, k, n, k))}

    def seed_counts(self) -> dict[int, int]:
        """Subscriber id -> how many seeds they have, for every subscriber with any: one
        read for a list of all subscribers (`digestd subscribers list`)."""
        return dict(self.db.execute(
            "SELECT subscriber_id, count(*) FROM seeds GROUP BY subscriber_id"))

    def seeds(self, subscriber_id: int) -> list[StoredSeed]:
        """A subscriber's seeds, in the order they were added."""
        return self.seeds_of([subscriber_id]).get(subscriber_id, [])

    def seeds_of(self, subscriber_ids: Sequence[int] | None = None) -> dict[int, list[StoredSeed]]:
        """Seeds by subscriber id (every subscriber with seeds when `subscriber_ids` is None),
        each list in the order the seeds were added: what the daily build's profiles read.

        Each distinct text is read once and its strings are shared by every reader's seed
        (30,000 profiles of 5 to 50 seeds hold each shared abstract once, not per row)."""
        rows, texts = self._seed_rows(subscriber_ids)
        out: dict[int, list[StoredSeed]] = {}
        for sid, paper_id, text_id, origin, added_at in rows:
            title, abstract = texts[text_id]
            out.setdefault(sid, []).append(StoredSeed(paper_id, title, abstract, origin, added_at))
        return out

    def seed_texts_of(self, subscriber_ids: Sequence[int] | None = None
                      ) -> tuple[dict[int, list[StoredSeed]], dict[int, StoredSeed]]:
        """Like seeds_of, but one StoredSeed object per distinct text, shared by every reader
        who gave it (without `origin` and `added_at`): the daily build's profiles need the
        text only, and 800,000 seed rows name tens of thousands of texts. Returns (seeds by
        subscriber id, the same objects by text id: the key of seed_vectors)."""
        # only the ids cross into Python, row by row (822,364 rows of five columns took 290
        # MB and 2.3 s; of two, streamed, a tenth of that)
        sql = "SELECT subscriber_id, text_id FROM seeds"
        if subscriber_ids is not None:
            sql += (" WHERE subscriber_id IN ("
                    + (",".join(str(int(i)) for i in subscriber_ids) or "NULL") + ")")
        text_ids: dict[int, list[int]] = {}
        for sid, text_id in self.db.execute(sql + " ORDER BY subscriber_id, added_at, paper_id"):
            text_ids.setdefault(sid, []).append(text_id)
        wanted = {t for ids in text_ids.values() for t in ids}
        shared = {tid: StoredSeed(paper_id, title, abstract)
                  for tid, paper_id, title, abstract in self._seed_texts(wanted)}
        return {sid: [shared[t] for t in ids] for sid, ids in text_ids.items()}, shared

    def seed_vectors(self, text_ids: Iterable[int], model: str) -> dict[int, bytes]:
        """Text id -> its stored vector under `model` (float32 bytes), for those that have
        one."""
        ids = sorted(set(text_ids))
        out: dict[int, bytes] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.db.execute(
                f"SELECT text_id, vector FROM seed_vectors WHERE model = ? AND text_id IN "
                f"({marks})", [model, *chunk]).fetchall())
        return out

    def add_seed_vectors(self, model: str, vectors: Mapping[int, bytes]) -> int:
        """Keep each text id's vector under `model` (one already kept stays); returns how
        many rows were written. A text removed meanwhile is skipped."""
        written = 0
        with self.transaction() as db:
            for text_id, vector in vectors.items():
                written += db.execute(
                    "INSERT INTO seed_vectors (text_id, model, vector) SELECT id, ?, ? FROM "
                    "seed_texts WHERE id = ? ON CONFLICT (text_id, model) DO NOTHING",
                    (model, vector, text_id)).rowcount
        return written

    def _seed_rows(self, subscriber_ids: Sequence[int] | None
                   ) -> tuple[list[tuple], dict[int, tuple[str, str]]]:
        """(subscriber_id, paper_id, text_id, origin, added_at) rows in each subscriber's
        order, and text id -> (title, abstract) for the texts they name."""
        sql = "SELECT subscriber_id, paper_id, text_id, origin, added_at FROM seeds"
        if subscriber_ids is not None:
            sql += (" WHERE subscriber_id IN ("
                    + (",".join(str(int(i)) for i in subscriber_ids) or "NULL") + ")")
        rows = self.db.execute(sql + " ORDER BY subscriber_id, added_at, paper_id").fetchall()
        texts = {tid: (title, abstract)
                 for tid, _pid, title, abstract in self._seed_texts({r[2] for r in rows})}
        return rows, texts

    def _seed_texts(self, wanted: set[int]) -> Iterable[tuple[int, str, str, str]]:
        """(id, paper_id, title, abstract) of the seed texts with these ids."""
        if len(wanted) > 500:  # many: one pass over the table beats thousands of lookups
            for row in self.db.execute("SELECT id, paper_id, title, abstract FROM seed_texts"):
                if row[0] in wanted:
                    yield row
        elif wanted:  # (PostgreSQL has no empty IN list)
            ids = sorted(wanted)
            marks = ",".join("?" * len(ids))
            yield from self.db.execute(
                f"SELECT id, paper_id, title, abstract FROM seed_texts WHERE id IN ({marks})", ids)

    def remove_seeds(self, subscriber_id: int, paper_ids: Iterable[str]) -> list[str]:
        """Remove the given seeds; returns the ids that were there (and are gone now)."""
        gone = []
        with self.transaction() as db:
            for pid in dict.fromkeys(paper_ids):
                if db.execute("DELETE FROM seeds WHERE subscriber_id = ? AND paper_id = ?",
                              (subscriber_id, pid)).rowcount:
                    gone.append(pid)
        return gone
