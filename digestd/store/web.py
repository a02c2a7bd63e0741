"""The store's side of the web app: double opt-in, preferences, rate limits, health and
metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from ..models import Subscriber
from .records import utcnow


# the rows for which a condition holds, closed by the caller: f"{_COUNT}status = 'sent')"
_COUNT = "count(*) FILTER (WHERE "


class WebStore:
    """Double opt-in, preferences, rate-limit events, health and metrics."""

    # -- the web: double opt-in, preferences, rate limits, health and metrics -------------------

    def find_subscriber(self, email: str) -> Subscriber | None:
        row = self.db.execute(f"SELECT {self._SUB_COLUMNS} FROM subscribers WHERE email = ?",
                              (email,)).fetchone()
        if row is None:
            return None
        return self._subscriber(row, self._rules_of([row[0]]).get(row[0], []))

    def request_subscription(self, email: str, rules: Sequence[str], *, nonce: str,
                             timezone: str, send_at: str, frequency: str, weekday: int = 0,
                             now: str | None = None) -> tuple[Subscriber, str | None]:
        """A subscription asked for on the web: a new pending subscriber, or an unconfirmed,
        unsubscribed or bouncing one made pending again with these rules and schedule.

        Returns the subscriber and the confirmation nonce to sign into the link; the nonce is
        None when the address is active or paused, whose settings a stranger must not change.
        A pending subscriber keeps its nonce, so an earlier confirmation link stays valid.
        """
        now = now or utcnow()
        with self.transaction() as db:
            row = db.execute("SELECT id, status, confirm_nonce FROM subscribers WHERE email = ?",
                             (email,)).fetchone()
            if row is None:
                sid = None
            elif row[1] in ("active", "paused"):
                return self.get_subscriber(row[0]), None
            else:
                sid = row[0]
                nonce = row[2] if row[1] == "pending" and row[2] else nonce
                db.execute("UPDATE subscribers SET status = 'pending', confirm_nonce = ?, "
                           "timezone = ?, send_at = ?, frequency = ?, weekday = ? WHERE id = ?",
                           (nonce, timezone, send_at, frequency, weekday, sid))
                db.execute("DELETE FROM rules WHERE subscriber_id = ?", (sid,))
                db.executemany("INSERT INTO rules (subscriber_id, position, text) "
                               "VALUES (?,?,?)", [(sid, i, r) for i, r in enumerate(rules)])
        if sid is None:
            sid = self.add_subscriber(email, rules, status="pending", timezone=timezone,
                                      send_at=send_at, frequency=frequency, weekday=weekday,
                                      now=now).id
            with self.transaction() as db:
                db.execute("UPDATE subscribers SET confirm_nonce = ? WHERE id = ?", (nonce, sid))
        return self.get_subscriber(sid), nonce

    def web_mail_at(self, subscriber_id: int) -> str | None:
        """When the web last mailed this subscriber (a confirmation or a preferences link)."""
        row = self.db.execute("SELECT web_mail_at FROM subscribers WHERE id = ?",
                              (subscriber_id,)).fetchone()
        return row[0] if row else None

    def confirm_subscriber(self, subscriber_id: int, nonce: str, *, now: str | None = None
                           ) -> bool:
        """Activate a pending subscriber whose confirmation nonce is `nonce`. False when there
        is nothing to confirm: not pending (a replayed link), or a newer request's nonce.
        The nonce is kept, so a second click can be told apart from a forged link; a new
        request after an unsubscribe gets a new one."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE subscribers SET status = 'active', confirmed_at = ?, bounces = 0 "
                "WHERE id = ? AND status = 'pending' AND confirm_nonce = ?",
                (now or utcnow(), subscriber_id, nonce)).rowcount == 1

    def confirm_nonce(self, subscriber_id: int) -> str | None:
        row = self.db.execute("SELECT confirm_nonce FROM subscribers WHERE id = ?",
                              (subscriber_id,)).fetchone()
        return row[0] if row else None

    def update_preferences(self, subscriber_id: int, rules: Sequence[str], *, timezone: str,
                           send_at: str, frequency: str, weekday: int, send_empty: bool,
                           feed_only: bool | None = None) -> None:
        """Rules and schedule; `feed_only` when given (None leaves it as it is)."""
        with self.transaction() as db:
            db.execute("UPDATE subscribers SET timezone = ?, send_at = ?, frequency = ?, "
                       "weekday = ?, send_empty = ?, feed_only = coalesce(?, feed_only) "
                       "WHERE id = ?",
                       (timezone, send_at, frequency, weekday, int(send_empty),
                        None if feed_only is None else int(feed_only), subscriber_id))
            db.execute("DELETE FROM rules WHERE subscriber_id = ?", (subscriber_id,))
            db.executemany("INSERT INTO rules (subscriber_id, position, text) VALUES (?,?,?)",
                           [(subscriber_id, i, r) for i, r in enumerate(rules)])

    def resume_subscriber(self, subscriber_id: int) -> None:
        """Active again (after a pause, an unsubscribe or bounces), with the bounce count reset."""
        with self.transaction() as db:
            db.execute("UPDATE subscribers SET status = 'active', bounces = 0, "
                       "confirmed_at = coalesce(confirmed_at, ?) WHERE id = ?",
                       (utcnow(), subscriber_id))

    def queue_message(self, subscriber_id: int, kind: str, *, recipient: str, message_id: str,
                      message: bytes, now: float) -> int | None:
        """Put a single message (a confirmation, say) in the outbox, so the sender delivers and
        retries it like a digest. Unlike queue_digest it marks no papers and leaves
        last_digest_at alone. The period is "KIND-<unix time>"; None if that exists already."""
        stamp = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
        with self.transaction() as db:
            # due at once by the sender's (real) clock, whatever clock `now` came from; the
            # message goes to digest_bodies, packed (_store_body), not into this row
            did = db.insert_id(
                "INSERT INTO digests (subscriber_id, period, created_at, papers, message_id, "
                "recipient, message, next_attempt_at) VALUES (?,?,?,0,?,?,?,?)",
                (subscriber_id, f"{kind}-{int(now)}", utcnow(), message_id, recipient,
                 b"", utcnow()), or_none=True)
            if did is None:
                return None
            self._store_body(did, message)  # packed, as a digest's (DigestStore)
            db.execute("UPDATE subscribers SET web_mail_at = ? WHERE id = ?",
                       (stamp, subscriber_id))
        return did

    def count_events(self, kind: str, key: str, since: float) -> int:
        return self.db.execute("SELECT count(*) FROM web_events WHERE kind = ? AND key = ? "
                               "AND at >= ?", (kind, key, since)).fetchone()[0]

    def add_event(self, kind: str, key: str, at: float) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO web_events (kind, key, at) VALUES (?,?,?)", (kind, key, at))

    def prune_web(self, *, events_before: float, pending_before: str) -> tuple[int, int]:
        """Forget rate-limit events older than `events_before`, and subscribers who asked before
        `pending_before` and never confirmed. Returns (events, subscribers) removed."""
        with self.transaction() as db:
            events = db.execute("DELETE FROM web_events WHERE at < ?", (events_before,)).rowcount
            # the rate windows of clients not seen since (ClusterStore.rate_hit)
            db.execute("DELETE FROM rate_windows WHERE started < ?", (int(events_before),))
            subs = db.execute("DELETE FROM subscribers WHERE status = 'pending' AND "
                              "confirmed_at IS NULL AND created_at < ?",
                              (pending_before,)).rowcount
        return events, subs

    def subscriber_export(self, subscriber_id: int) -> dict:
        """Everything stored about one subscriber, for "download my data"."""
        sub = self.get_subscriber(subscriber_id)
        created, confirmed = self.db.execute(
            "SELECT created_at, confirmed_at FROM subscribers WHERE id = ?",
            (subscriber_id,)).fetchone()
        digests = [
            {"period": r[0], "created_at": r[1], "papers": r[2], "status": r[3],
             "sent_at": r[4], "message_id": r[5]}
            for r in self.db.execute(
                "SELECT period, created_at, papers, status, sent_at, message_id FROM digests "
                "WHERE subscriber_id = ? ORDER BY id", (subscriber_id,))]
        papers = [
            {"id": r[0], "title": r[1], "url": r[2], "digest": r[3]}
            for r in self.db.execute(
                "SELECT p.id, p.title, p.url, d.period FROM sent s JOIN papers p "
                "ON p.pk = s.paper_pk JOIN digests d ON d.id = s.digest_id "
                "WHERE s.subscriber_id = ? ORDER BY d.id, p.pk", (subscriber_id,))]
        return {"email": sub.email, "name": sub.name, "status": sub.status,
                "rules": list(sub.rules), "timezone": sub.timezone, "send_at": sub.send_at,
                "frequency": sub.frequency, "weekday": sub.weekday,
                "send_empty": sub.send_empty, "feed_only": sub.feed_only,
                "recommend": sub.recommend, "min_score": sub.min_score,
                "created_at": created, "confirmed_at": confirmed,
                "last_digest_at": sub.last_digest_at, "bounces": sub.bounces,
                "messages": digests, "papers_sent": papers,
                "feedback": self.feedback_export(subscriber_id),
                "seeds": [{"id": s.paper_id, "title": s.title, "origin": s.origin,
                           "added_at": s.added_at} for s in self.seeds(subscriber_id)]}

    def outbox_stats(self, *, now: str | None = None) -> dict[str, dict[str, int]]:
        """Outbox rows by kind ("digest", or the kind of queue_message) and state: queued
        (first attempt pending), deferred (retrying), due (either, due now), sent, failed
        (delivery gave up), build_failed (the digest could not be built, and no later
        digest of the subscriber was: see record_build_failure)."""
        now = now or utcnow()
        out: dict[str, dict[str, int]] = {}
        for kind, queued, deferred, due, sent, failed, unbuilt in self.db.execute(
                f"SELECT CASE WHEN {self._web_mail()} THEN {self.sql.web_mail_kind} "
                "ELSE 'digest' END AS kind, "
                f"{_COUNT}status = 'queued' AND attempts = 0), "
                f"{_COUNT}status = 'queued' AND attempts > 0), "
                f"{_COUNT}status = 'queued' AND (next_attempt_at IS NULL OR "
                f"next_attempt_at <= ?)), {_COUNT}status = 'sent'), "
                f"{_COUNT}status = 'failed' AND message_id != ''), "
                f"{_COUNT}status = 'failed' AND message_id = '' AND NOT {self._superseded()}) "
                "FROM digests d GROUP BY 1", (now,)):
            out[kind] = {"queued": queued, "deferred": deferred, "due": due, "sent": sent,
                         "failed": failed, "build_failed": unbuilt}
        return out

    def subscriber_counts(self) -> tuple[dict[str, int], int]:
        """(subscribers by status, hard bounces counted over all subscribers)."""
        counts = dict(self.db.execute("SELECT status, count(*) FROM subscribers GROUP BY status"))
        bounces = self.db.execute("SELECT coalesce(sum(bounces), 0) FROM subscribers").fetchone()
        return counts, bounces[0]
