"""The store's subscribers, their rules, and what the scheduler remembers of each."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import NotFound, StoreError
from ..models import Subscriber
from .records import ScheduleMark, shard_args, utcnow


class SubscriberStore:
    """Subscribers, their rules and schedule marks."""

    # -- subscribers ---------------------------------------------------------------------------

    _SUB_COLUMNS = ("id, email, status, name, timezone, send_at, frequency, weekday, send_empty, "
                    "created_at, last_digest_at, bounces, feed_only, link_gen, recommend, min_score")

    def _subscriber(self, row: Sequence, rules: Sequence[str]) -> Subscriber:
        (id_, email, status, name, tz, send_at, frequency, weekday, send_empty, created_at,
         last_digest_at, bounces, feed_only, link_gen, recommend, min_score) = row
        return Subscriber(id=id_, email=email, status=status, rules=tuple(rules), name=name,
                          timezone=tz, send_at=send_at, frequency=frequency, weekday=weekday,
                          send_empty=bool(send_empty), created_at=created_at,
                          last_digest_at=last_digest_at, bounces=bounces,
                          feed_only=bool(feed_only), link_gen=link_gen,
                          recommend=recommend, min_score=min_score)

    def _rules_of(self, ids: Sequence[int] | None = None,
                  shard: tuple[int, int] | None = None) -> dict[int, list[str]]:
        rules: dict[int, list[str]] = {}
        sql, args = "SELECT subscriber_id, text FROM rules", ()
        if ids is not None:
            sql += f" WHERE subscriber_id IN ({','.join(str(int(i)) for i in ids) or 'NULL'})"
        elif shard is not None:
            sql, args = sql + " WHERE subscriber_id % ? = ?", shard_args(shard)
        for sid, text in self.db.execute(sql + " ORDER BY subscriber_id, position", args):
            rules.setdefault(sid, []).append(text)
        return rules

    def add_subscriber(self, email: str, rules: Sequence[str] = (), *, status: str = "active",
                       name: str = "", timezone: str = "UTC", send_at: str = "07:00",
                       frequency: str = "daily", weekday: int = 0, send_empty: bool = False,
                       feed_only: bool = False, now: str | None = None) -> Subscriber:
        now = now or utcnow()
        with self.transaction() as db:
            # the id is past every id ever used (id_high_water): links signed for a
            # deleted subscriber must never reach a new one
            next_id = self.sql.larger(
                "coalesce((SELECT max(id) FROM subscribers), 0)",
                "coalesce((SELECT value FROM id_high_water WHERE name = 'subscribers'), 0)")
            sid = db.insert_id(
                "INSERT INTO subscribers (id, email, status, name, timezone, send_at, "
                "frequency, weekday, send_empty, created_at, confirmed_at, feed_only) VALUES "
                f"({next_id} + 1,?,?,?,?,?,?,?,?,?,?,?)",
                (email, status, name, timezone, send_at, frequency, weekday, int(send_empty),
                 now, now if status == "active" else None, int(feed_only)), or_none=True)
            if sid is None:
                raise StoreError(f"subscriber {email} exists already")
            db.executemany("INSERT INTO rules (subscriber_id, position, text) VALUES (?,?,?)",
                           [(sid, i, r) for i, r in enumerate(rules)])
        return self.get_subscriber(email)

    def get_subscriber(self, email_or_id: str | int) -> Subscriber:
        column = "id" if isinstance(email_or_id, int) else "email"
        row = self.db.execute(f"SELECT {self._SUB_COLUMNS} FROM subscribers WHERE {column} = ?",
                              (email_or_id,)).fetchone()
        if row is None:
            raise NotFound(f"no subscriber {email_or_id}")
        return self._subscriber(row, self._rules_of([row[0]]).get(row[0], []))

    def subscribers(self, status: str | None = None, *,
                    shard: tuple[int, int] | None = None) -> list[Subscriber]:
        """Subscribers (with `status`, if given) in id order, with their rules. `shard`
        (k, n): only those whose id is k modulo n, read as such (a build of one shard of
        100,000 subscribers reads its tenth, not all of them)."""
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if shard is not None:
            where.append("id % ? = ?")
            args.extend(shard_args(shard))
        sql = f"SELECT {self._SUB_COLUMNS} FROM subscribers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY id", args).fetchall()
        rules = self._rules_of(shard=shard)
        return [self._subscriber(r, rules.get(r[0], [])) for r in rows]

    def remove_subscriber(self, email: str) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM subscribers WHERE email = ?", (email,)).rowcount == 0:
                raise NotFound(f"no subscriber {email}")

    def set_relevance(self, subscriber_id: int, *, recommend: int | None = None,
                      min_score: float | None = None, clear_min_score: bool = False) -> None:
        """A subscriber's relevance settings: `recommend` (0..10 "also recommended" papers
        a digest), `min_score` (cosine similarity 0..1 below which a rule match is left
        out; `clear_min_score` turns it off). None leaves a setting as it is."""
        if recommend is not None and not 0 <= recommend <= 10:
            raise StoreError(f"recommend must be 0 to 10, got {recommend}")
        if min_score is not None and not 0.0 <= min_score <= 1.0:
            raise StoreError(f"min_score must be 0 to 1, got {min_score}")
        with self.transaction() as db:
            if db.execute("UPDATE subscribers SET recommend = coalesce(?, recommend), "
                          "min_score = CASE WHEN ? = 1 THEN NULL ELSE coalesce(?, min_score) END "
                          "WHERE id = ?", (recommend, int(clear_min_score), min_score,
                                           subscriber_id)).rowcount == 0:
                raise NotFound(f"no subscriber {subscriber_id}")

    def set_name(self, subscriber_id: int, name: str) -> None:
        """A subscriber's display name ("" for none)."""
        with self.transaction() as db:
            if db.execute("UPDATE subscribers SET name = ? WHERE id = ?",
                          (name, subscriber_id)).rowcount == 0:
                raise NotFound(f"no subscriber {subscriber_id}")

    def set_status(self, subscriber_id: int, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE subscribers SET status = ? WHERE id = ?", (status, subscriber_id))

    def set_rules(self, subscriber_id: int, rules: Sequence[str]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM rules WHERE subscriber_id = ?", (subscriber_id,))
            db.executemany("INSERT INTO rules (subscriber_id, position, text) VALUES (?,?,?)",
                           [(subscriber_id, i, r) for i, r in enumerate(rules)])

    def active_rules(self) -> dict[int, list[str]]:
        """Subscriber id -> rules, for every active subscriber with at least one rule."""
        rows = self.db.execute(
            "SELECT r.subscriber_id, r.text FROM rules r JOIN subscribers s "
            "ON s.id = r.subscriber_id WHERE s.status = 'active' "
            "ORDER BY r.subscriber_id, r.position")
        out: dict[int, list[str]] = {}
        for sid, text in rows:
            out.setdefault(sid, []).append(text)
        return out

    # -- the schedule: which slot each subscriber had last -------------------------------------

    def schedule_fingerprint(self) -> str:
        """A number that changes whenever something that decides when digests are due
        changes: a subscriber added or removed, a schedule or status changed, a rule added,
        changed or removed (the "schedule_version" migration's triggers). One row read."""
        row = self.db.execute("SELECT value FROM schedule_version").fetchone()
        return str(row[0] if row else 0)

    def schedule_marks(self, shard: tuple[int, int] | None = None) -> dict[int, ScheduleMark]:
        """Subscriber id -> the last slot handled and how far their papers were checked
        (of the subscribers of `shard` (k, n) only, if given: see subscribers)."""
        sql, args = "SELECT id, last_slot_at, last_checked_at FROM subscribers", ()
        if shard is not None:
            sql, args = sql + " WHERE id % ? = ?", shard_args(shard)
        return {sid: ScheduleMark(slot, checked)
                for sid, slot, checked in self.db.execute(sql, args)}

    def mark_slot(self, subscriber_id: int, slot_at: str, *,
                  checked_through: str | None = None) -> None:
        """Remember that the slot at `slot_at` was handled (sent, empty or merged into the
        next one), and, if given, that papers up to `checked_through` were matched."""
        with self.transaction() as db:
            db.execute(f"UPDATE subscribers SET {self._mark_slot()} WHERE id = ?",
                       (slot_at, checked_through, subscriber_id))

    def _mark_slot(self) -> str:
        """The SET clause of mark_slot, with two parameters: slot_at, checked_through."""
        # the larger: a slot handled once never becomes due again, whatever the order of calls
        later = self.sql.larger
        return (f"last_slot_at = {later(_or_empty('last_slot_at'), '?')}, last_checked_at = "
                f"nullif({later(_or_empty('last_checked_at'), _or_empty('?'))}, '')")


def _or_empty(value: str) -> str:
    """SQL for `value`, or '' where it is NULL."""
    return f"coalesce({value}, '')"

