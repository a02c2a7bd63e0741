"""The store's side of mail that comes back: bounces reported by mail (DSNs), complaints,
mailto: unsubscribes, the messages already handled and the counts per kind."""

from __future__ import annotations

from email.utils import parseaddr

from .records import utcnow

# a row that reached the recipient's server, or bounced there: what "bounces in a row" counts
_DELIVERED = "message_id != '' AND (status = 'sent' OR bounced_at IS NOT NULL)"


class InboundStore:
    """Bounces, complaints and unsubscribes read from mail; `inbound_seen` and its counts."""

    # -- each message once ----------------------------------------------------------------------

    def inbound_seen(self, key: str) -> bool:
        """Whether a message with this key (a hash of its Message-ID or bytes) was handled."""
        return self.db.execute("SELECT 1 FROM inbound_seen WHERE key = ?",
                               (key,)).fetchone() is not None

    def record_inbound(self, kind: str, key: str | None = None, *,
                       now: str | None = None) -> None:
        """Count one message of `kind`; with `key`, remember it as handled, so the same
        message a second time changes nothing (an MTA that retries, an IMAP run that died
        between handling a message and moving it)."""
        with self.transaction() as db:
            if key is not None:
                db.execute("INSERT INTO inbound_seen (key, kind, at) VALUES (?,?,?) "
                           "ON CONFLICT DO NOTHING",
                           (key, kind, now or utcnow()))
            db.execute("INSERT INTO inbound_counts (kind, n) VALUES (?, 1) "
                       "ON CONFLICT (kind) DO UPDATE SET n = n + 1", (kind,))

    def inbound_counts(self) -> dict[str, int]:
        """Kind (bounce, delay, complaint, unsubscribe, unrecognized, duplicate) -> messages."""
        return dict(self.db.execute("SELECT kind, n FROM inbound_counts ORDER BY kind"))

    def prune_inbound(self, before: str) -> int:
        """Forget the keys of messages handled before `before` (ISO time): an MTA retries a
        message for days, not months."""
        with self.transaction() as db:
            return db.execute("DELETE FROM inbound_seen WHERE at < ?", (before,)).rowcount

    # -- who a message is about ------------------------------------------------------------------

    def digest_subscriber(self, digest_id: int) -> int | None:
        """The subscriber of an outbox row (a digest or a web mail), None if it is gone."""
        row = self.db.execute("SELECT subscriber_id FROM digests WHERE id = ?",
                              (digest_id,)).fetchone()
        return row[0] if row else None

    def digest_by_message_id(self, message_id: str) -> tuple[int, int] | None:
        """(digest id, subscriber id) of the message we sent with this Message-ID."""
        row = self.db.execute("SELECT id, subscriber_id FROM digests WHERE message_id = ? "
                              "AND message_id != ''", (message_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def mailed_addresses(self, subscriber_id: int, digest_id: int | None) -> set[str]:
        """The addresses, lowercase, that a bounce of this subscriber's message may rightly
        name as failed: the one the message went to, and the subscriber's now."""
        rows = self.db.execute("SELECT email FROM subscribers WHERE id = ?",
                               (subscriber_id,)).fetchall()
        rows += self.db.execute("SELECT recipient FROM digests WHERE id = ? AND "
                                "subscriber_id = ?", (digest_id or 0, subscriber_id)).fetchall()
        return {parseaddr(r[0])[1].lower() for r in rows if r[0]} - {""}

    def subscriber_status(self, subscriber_id: int) -> str | None:
        row = self.db.execute("SELECT status FROM subscribers WHERE id = ?",
                              (subscriber_id,)).fetchone()
        return row[0] if row else None

    # -- what it changes -------------------------------------------------------------------------

    def record_mailed_bounce(self, subscriber_id: int, digest_id: int | None, error: str, *,
                             threshold: int, now: str | None = None
                             ) -> tuple[bool, bool, int | None]:
        """A permanent failure reported by mail (a DSN) for one message we sent: the row is
        marked bounced and counts as a hard bounce, like a 5xx at SMTP time. `digest_id`
        None (a bounce found by its address, which does not say which message): the
        subscriber's newest delivered message, and nothing is counted when that one is
        counted already: without a token, never more than the messages sent.

        Bounces in a row are counted over the subscriber's delivered messages in order, not
        only since the last one accepted: a relay accepts every message, and the DSN for one
        often arrives after the next went out (which reset the count). A message bounced
        once counts once: another DSN for it changes nothing.

        Returns (counted, now_bouncing, the digest id the bounce was put on; None when
        nothing was delivered to the subscriber)."""
        now = now or utcnow()
        with self.transaction() as db:
            if digest_id is None:
                row = db.execute(f"SELECT id FROM digests WHERE subscriber_id = ? AND "
                                 f"{_DELIVERED} ORDER BY id DESC LIMIT 1",
                                 (subscriber_id,)).fetchone()
                if row is None:  # nothing was delivered to them: nothing to count
                    return False, False, None
                digest_id = row[0]
            changed = db.execute(
                "UPDATE digests SET bounced_at = ?, last_error = ? WHERE id = ? AND "
                "subscriber_id = ? AND bounced_at IS NULL AND message_id != ''",
                (now, error[:500], digest_id, subscriber_id)).rowcount
            if not changed:
                return False, False, digest_id
            marks = [bool(b) for (b,) in db.execute(
                f"SELECT bounced_at IS NOT NULL FROM digests WHERE subscriber_id = ? AND "
                f"{_DELIVERED} AND id <= ? ORDER BY id DESC", (subscriber_id, digest_id))]
            after = [bool(b) for (b,) in db.execute(
                f"SELECT bounced_at IS NOT NULL FROM digests WHERE subscriber_id = ? AND "
                f"{_DELIVERED} AND id > ? ORDER BY id", (subscriber_id, digest_id))]
            run = _leading(marks) + _leading(after)
            db.execute(f"UPDATE subscribers SET bounces = {self.sql.larger('bounces + 1', '?')} "
                       "WHERE id = ?", (run, subscriber_id))
            now_bouncing = db.execute(
                "UPDATE subscribers SET status = 'bouncing' WHERE id = ? AND status = 'active' "
                "AND bounces >= ?", (subscriber_id, threshold)).rowcount == 1
        return True, now_bouncing, digest_id

    def unsubscribe_by_mail(self, subscriber_id: int) -> str | None:
        """Unsubscribe a subscriber who asked by mail or complained; returns the status they
        had (None: no such subscriber; "unsubscribed": nothing changed)."""
        with self.transaction() as db:
            row = db.execute("SELECT status FROM subscribers WHERE id = ?",
                             (subscriber_id,)).fetchone()
            if row is None:
                return None
            if row[0] != "unsubscribed":
                db.execute("UPDATE subscribers SET status = 'unsubscribed' WHERE id = ?",
                           (subscriber_id,))
        return row[0]


def _leading(marks: list[bool]) -> int:
    n = 0
    for m in marks:
        if not m:
            break
        n += 1
    return n
