"""The store's reader feedback: "more like this" and "less like this" per subscriber and paper,
and the paper a digest link points at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..models import Paper
from .records import PAPER_COLUMNS, shard_args, utcnow

MORE, LESS = 1, -1


class FeedbackStore:
    """Feedback from the links in digests: one value (+1 more, -1 less) per subscriber and
    paper; a later choice replaces the earlier one, undo deletes it."""

    def record_feedback(self, subscriber_id: int, paper_pk: int, value: int, *,
                        now: str | None = None) -> int | None:
        """Store `value` (MORE or LESS) for the subscriber and paper, replacing an earlier
        choice. Returns the value there was before (None: none); the same choice twice
        changes nothing, not even its time."""
        if value not in (MORE, LESS):
            raise ValueError(f"feedback must be {MORE} or {LESS}, got {value!r}")
        with self.transaction() as db:
            row = db.execute("SELECT value FROM feedback WHERE subscriber_id = ? AND "
                             "paper_pk = ?", (subscriber_id, paper_pk)).fetchone()
            if row is None or row[0] != value:
                db.execute("INSERT INTO feedback (subscriber_id, paper_pk, value, at) "
                           "VALUES (?,?,?,?) ON CONFLICT (subscriber_id, paper_pk) DO UPDATE "
                           "SET value = excluded.value, at = excluded.at",
                           (subscriber_id, paper_pk, value, now or utcnow()))
        return row[0] if row else None

    def undo_feedback(self, subscriber_id: int, paper_pk: int, value: int | None = None
                      ) -> bool:
        """Forget the subscriber's choice on the paper (only if it is `value`, when given: an
        undo from an old page must not undo a newer, other choice). True if one was removed."""
        sql = "DELETE FROM feedback WHERE subscriber_id = ? AND paper_pk = ?"
        args: tuple = (subscriber_id, paper_pk)
        if value is not None:
            sql, args = sql + " AND value = ?", (*args, value)
        with self.transaction() as db:
            return db.execute(sql, args).rowcount > 0

    def feedback_of(self, subscriber_id: int, paper_pk: int) -> int | None:
        """The subscriber's choice on the paper: MORE, LESS or None."""
        row = self.db.execute("SELECT value FROM feedback WHERE subscriber_id = ? AND "
                              "paper_pk = ?", (subscriber_id, paper_pk)).fetchone()
        return row[0] if row else None

    def feedback_papers(self, subscriber_id: int, value: int) -> list[tuple[int, Paper]]:
        """(paper pk, paper) the subscriber marked with `value` (MORE: the positives, LESS:
        the negatives), the most recent choice first: what a profile is built from."""
        return [(row[0], self._paper(row)) for row in self.db.execute(
            f"SELECT {PAPER_COLUMNS} FROM feedback f JOIN papers p ON p.pk = f.paper_pk "
            "WHERE f.subscriber_id = ? AND f.value = ? ORDER BY f.at DESC, p.pk DESC",
            (subscriber_id, value))]

    def feedback_values(self, subscriber_ids: Sequence[int] | None = None, *,
                        shard: tuple[int, int] | None = None) -> dict[int, dict[int, int]]:
        """Subscriber id -> {paper pk: value}, for all subscribers (or those given, or those
        of `shard` (k, n): ids that are k modulo n) with any feedback: one read for a whole
        build's profiles."""
        sql, args = "SELECT subscriber_id, paper_pk, value FROM feedback", ()
        if subscriber_ids is not None:
            sql += f" WHERE subscriber_id IN ({','.join('?' * len(subscriber_ids)) or 'NULL'})"
            args = tuple(subscriber_ids)
        elif shard is not None:
            sql, args = sql + " WHERE subscriber_id % ? = ?", shard_args(shard)
        out: dict[int, dict[int, int]] = {}
        for sid, pk, value in self.db.execute(sql, args):
            out.setdefault(sid, {})[pk] = value
        return out

    def papers_by_pk(self, pks: Iterable[int]) -> dict[int, Paper]:
        """Paper pk -> paper, for the pks of feedback_values (a paper many subscribers marked
        is read once)."""
        wanted = list(dict.fromkeys(int(pk) for pk in pks))
        out: dict[int, Paper] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            for row in self.db.execute(f"SELECT {PAPER_COLUMNS} FROM papers p WHERE p.pk IN "
                                       f"({','.join('?' * len(chunk))})", chunk):
                out[row[0]] = self._paper(row)
        return out

    def feedback_counts(self, subscriber_id: int) -> tuple[int, int]:
        """(how many "more like this", how many "less like this") the subscriber gave."""
        more, less = self.db.execute(
            "SELECT count(*) FILTER (WHERE value = 1), count(*) FILTER (WHERE value = -1) "
            "FROM feedback "
            "WHERE subscriber_id = ?", (subscriber_id,)).fetchone()
        return more, less

    def all_feedback_counts(self) -> dict[int, tuple[int, int]]:
        """Subscriber id -> (how many "more like this", how many "less like this"), for every
        subscriber with any: feedback_counts of all subscribers in one read."""
        return {sid: (more, less) for sid, more, less in self.db.execute(
            "SELECT subscriber_id, count(*) FILTER (WHERE value = ?), "
            "count(*) FILTER (WHERE value = ?) FROM feedback GROUP BY subscriber_id",
            (MORE, LESS))}

    def forget_feedback(self, subscriber_id: int) -> int:
        """Delete all of the subscriber's feedback; returns how many choices were deleted."""
        with self.transaction() as db:
            return db.execute("DELETE FROM feedback WHERE subscriber_id = ?",
                              (subscriber_id,)).rowcount

    def feedback_export(self, subscriber_id: int) -> list[dict]:
        """The subscriber's feedback for "download my data": paper id, title, value, time."""
        return [{"paper": pid, "title": title, "value": "more" if value == MORE else "less",
                 "at": at} for pid, title, value, at in self.db.execute(
            "SELECT p.id, p.title, f.value, f.at FROM feedback f JOIN papers p "
            "ON p.pk = f.paper_pk WHERE f.subscriber_id = ? ORDER BY f.at, p.pk",
            (subscriber_id,))]

    def digest_paper(self, subscriber_id: int, period: str, position: int
                     ) -> tuple[int, Paper] | None:
        """(pk, paper) at `position` (0-based, the digest's order) of the subscriber's digest
        for `period`; None if there is no such digest or place (a link into a digest names
        the paper by its place: one signed token per digest, not per paper)."""
        row = self.db.execute(
            f"SELECT {PAPER_COLUMNS} FROM digests d {self.sql.ordered_join} sent s "
            "ON s.digest_id = d.id "
            "AND s.subscriber_id = d.subscriber_id JOIN papers p ON p.pk = s.paper_pk "
            "WHERE d.subscriber_id = ? AND d.period = ? AND s.position = ?",
            (subscriber_id, period, int(position))).fetchone()
        return (row[0], self._paper(row)) if row else None

    # -- "follow author": one rule added or taken back -------------------------------------

    def add_rule_once(self, subscriber_id: int, text: str, *, max_rules: int) -> str:
        """Append the rule `text` (validated by the caller) unless the subscriber has it:
        "added", "already" (the same text is a rule of theirs) or "full" (max_rules)."""
        with self.transaction() as db:
            rules = [r for (r,) in db.execute("SELECT text FROM rules WHERE subscriber_id = ? "
                                              "ORDER BY position", (subscriber_id,))]
            if text in rules:
                return "already"
            if len(rules) >= max_rules:
                return "full"
            db.execute("INSERT INTO rules (subscriber_id, position, text) VALUES (?, (SELECT "
                       "coalesce(max(position), -1) + 1 FROM rules WHERE subscriber_id = ?), ?)",
                       (subscriber_id, subscriber_id, text))
        return "added"

    def remove_rule(self, subscriber_id: int, text: str) -> bool:
        """Remove the subscriber's rule with exactly this text (undo of a follow); True if
        there was one."""
        with self.transaction() as db:
            return db.execute("DELETE FROM rules WHERE subscriber_id = ? AND text = ?",
                              (subscriber_id, text)).rowcount > 0
