"""The store's digests: the outbox, its claims, bounces and retries, and the archive
(each digest's page, the list of past digests, the feed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from ..errors import NotFound, StoreError
from .bodies import PackedMessage, has_crlf, pack_message, unpack_message
from .records import (LEFT_OUT, PAPER_COLUMNS, ArchivedDigest, DeliveredPaper, OutboxRow,
                      QueuedDigest, lease_end, shard_args, utcnow)

log = logging.getLogger("digestd.store")


class DigestStore:
    """Digests from queueing to sent (or failed), and the archive of what each held."""

    # -- the outbox ----------------------------------------------------------------------------

    def sent_among(self, paper_pks: Iterable[int], shard: tuple[int, int] | None = None
                   ) -> dict[int, set[int]]:
        """Subscriber id -> those of the given papers already sent (or queued) to them; with
        `shard` (k, n), for subscribers whose id is k modulo n only (the other shards' marks
        of the day stay in the store).

        The papers are a build's, the newest: each subscriber's marks from the smallest of
        their keys up are read off the marks' primary key (subscriber_id, paper_pk), one
        short range a subscriber, and those of other papers dropped here. No index by paper
        is needed (SQLite has none, which saves the build half the CPU of writing the marks);
        PostgreSQL plans the join itself and reads its sent_paper index."""
        want = set(paper_pks)
        out: dict[int, set[int]] = {}
        if not want:
            return out
        only, extra = "", ()
        if shard is not None:
            only, extra = " WHERE u.id % ? = ?", shard_args(shard)
        for sid, pk in self.db.execute(
                f"SELECT s.subscriber_id, s.paper_pk FROM subscribers u {self.sql.ordered_join} "
                "sent s ON s.subscriber_id = u.id AND s.paper_pk >= ?" + only,
                (min(want), *extra)):
            if pk in want:
                out.setdefault(sid, set()).add(pk)
        return out

    def queue_digest(self, subscriber_id: int, period: str, *, recipient: str, message_id: str,
                     message: bytes | PackedMessage, paper_pks: Sequence[int],
                     whys: Sequence[str] = (), why_ids: Mapping[str, int] | None = None,
                     checked: int | None = None, kinds: Sequence[int] = (),
                     deliver: bool = True, now: str | None = None,
                     slot_at: str | None = None, checked_through: str | None = None
                     ) -> int | None:
        """Put one digest in the outbox and mark its papers as sent, in one transaction;
        with `slot_at`, also what mark_slot records (in the same statement).

        `paper_pks` are all the digest's papers in the digest's order (those the email
        leaves out too), `whys` why each matched, in the same order; both are kept for the
        digest's web page and the feed (`why_ids`, from why_ids() in the same transaction,
        saves looking the texts up digest by digest). `checked` is how many papers the
        digest checked. `kinds` says what each paper was, in the same order (0 a rule match,
        1 recommended, 2 left out by min_score; none given: all 0).
        With `deliver` False (a feed-only subscriber) nothing is mailed: the row is stored
        as sent at once, without a message. `message` is stored packed (store/bodies.py); a
        caller in a transaction packs it first with pack_message, outside the write lock.

        Returns the digest id, or None when this subscriber already has a digest for
        this period (so a rebuild after a crash cannot queue a second one); the slot is
        not marked then.
        """
        now = now or utcnow()
        with self.transaction() as db:
            # to deliver: queued and due now; else (no email: feed-only, all left out) sent
            status, sent_at, due = ("queued", None, now) if deliver else ("sent", now, None)
            did = db.insert_id(
                "INSERT INTO digests (subscriber_id, period, created_at, papers, message_id, "
                "recipient, message, status, sent_at, next_attempt_at, checked) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (subscriber_id, period, now, len(paper_pks), message_id, recipient, b"",
                 status, sent_at, due, checked), or_none=True)
            if did is None:
                return None
            if deliver:
                self._store_body(did, message)
            if whys and why_ids is None:
                why_ids = self.why_ids(whys)
            db.executemany("INSERT INTO sent (subscriber_id, paper_pk, digest_id, position, "
                           "why_id, kind) VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                           [(subscriber_id, pk, did, i,
                             why_ids[whys[i]] if why_ids is not None and i < len(whys) else None,
                             kinds[i] if i < len(kinds) else 0)
                            for i, pk in enumerate(paper_pks)])
            if slot_at is None:
                db.execute("UPDATE subscribers SET last_digest_at = ? WHERE id = ?",
                           (now, subscriber_id))
            else:
                db.execute(f"UPDATE subscribers SET last_digest_at = ?, {self._mark_slot()} "
                           "WHERE id = ?", (now, slot_at, checked_through, subscriber_id))
        return did

    def queue_digests(self, digests: Sequence[QueuedDigest], *,
                      why_ids: Mapping[str, int] | None = None, now: str | None = None,
                      checked_through: str | None = None) -> list[int | None]:
        """queue_digest for each of `digests`, in one transaction (joining the caller's):
        their ids, or None where the subscriber has a digest for the period already or is
        gone. PostgreSQL writes a batch in one statement."""
        now = now or utcnow()
        with self.transaction():
            return [self.queue_digest(
                d.subscriber_id, d.period, recipient=d.recipient, message_id=d.message_id,
                message=d.message, paper_pks=d.paper_pks, whys=d.whys, why_ids=why_ids,
                checked=d.checked, kinds=d.kinds, deliver=d.deliver, now=now,
                slot_at=d.slot_at, checked_through=checked_through) for d in digests]

    # -- the archive: each digest's page, the list of past digests, the feed -----------------

    # the left-out papers are counted off the digest's marks (index sent_digest): `papers`
    # counts them with the others
    _ARCHIVED = ("id, subscriber_id, period, created_at, papers, status, sent_at, checked, "
                 "(SELECT count(*) FROM sent s WHERE s.digest_id = digests.id "
                 f"AND s.kind = {LEFT_OUT})")

    def _web_mail(self, prefix: str = "") -> str:
        """True for the rows of queue_message (confirmation emails ...), which are not
        digests; `prefix` names the digests table ("d.")."""
        return f"({prefix}papers = 0 AND {prefix}{self.sql.web_mail_period})"

    def _superseded(self, d: str = "d.") -> str:
        """True for a row of record_build_failure (failed, no message) after which a digest
        of the same subscriber was built: that digest carried the papers the failed one
        would have had, so the failure is history, no longer outstanding (not counted, not
        listed as failed). `d` names the digests table ("d.")."""
        return (f"({d}status = 'failed' AND {d}message_id = '' AND EXISTS (SELECT 1 FROM "
                f"digests later WHERE later.subscriber_id = {d}subscriber_id AND later.id > "
                f"{d}id AND (later.message_id != '' OR later.status = 'sent') AND NOT "
                f"{self._web_mail('later.')}))")

    def digest_of(self, subscriber_id: int, period: str) -> ArchivedDigest | None:
        """The digest of `subscriber_id` for `period`, whatever its status; None if there is
        none (never built, or its subscriber was deleted)."""
        row = self.db.execute(f"SELECT {self._ARCHIVED} FROM digests WHERE subscriber_id = ? "
                              f"AND period = ? AND NOT {self._web_mail()}",
                              (subscriber_id, period)).fetchone()
        return ArchivedDigest(*row) if row else None

    def digest_archive(self, subscriber_id: int, *, limit: int = 20, offset: int = 0
                       ) -> tuple[list[ArchivedDigest], int]:
        """(a page of the subscriber's digests, newest first; how many there are in all)."""
        rows = self.db.execute(
            f"SELECT {self._ARCHIVED} FROM digests WHERE subscriber_id = ? AND "
            f"NOT {self._web_mail()} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (subscriber_id, int(limit), int(offset))).fetchall()
        total = self.db.execute(f"SELECT count(*) FROM digests WHERE subscriber_id = ? AND "
                                f"NOT {self._web_mail()}", (subscriber_id,)).fetchone()[0]
        return [ArchivedDigest(*r) for r in rows], total

    # sent is keyed by (subscriber, paper): these read a subscriber's marks in key order
    # (CROSS JOIN keeps that loop outermost) rather than add an index every build must fill
    def _delivered_sql(self) -> str:
        return (f"SELECT {PAPER_COLUMNS}, coalesce(w.text, ''), s.position, d.id, d.period, "
                f"d.sent_at, s.kind FROM sent s {self.sql.ordered_join} digests d ON "
                "d.id = s.digest_id JOIN papers p ON p.pk = s.paper_pk LEFT JOIN whys w ON "
                "w.id = s.why_id WHERE s.subscriber_id = ? ")

    def _delivered(self, row: Sequence) -> DeliveredPaper:
        return DeliveredPaper(self._paper(row), *row[12:])

    def digest_papers(self, digest: ArchivedDigest) -> list[DeliveredPaper]:
        """Every paper of `digest`, in the digest's order (best first), with why it matched.
        Read from the sent marks, so it works after the stored message was pruned."""
        return [self._delivered(r) for r in self.db.execute(
            self._delivered_sql() + "AND s.digest_id = ? ORDER BY s.position IS NULL, s.position, "
            "p.pk", (digest.subscriber_id, digest.id))]

    def feed_entries(self, subscriber_id: int, *, since: str, limit: int = 500
                     ) -> list[DeliveredPaper]:
        """The papers of the subscriber's digests delivered (status sent) at or after `since`
        (ISO time), newest digest first and each digest in its order; at most `limit`. Papers
        min_score left out of a digest (LEFT_OUT) are not delivered, and not here."""
        return [self._delivered(r) for r in self.db.execute(
            self._delivered_sql() + "AND d.status = 'sent' AND d.sent_at >= ? "
            f"AND s.kind != {LEFT_OUT} ORDER BY d.sent_at DESC, d.id DESC, "
            "s.position IS NULL, s.position, p.pk LIMIT ?",
            (subscriber_id, since, int(limit)))]

    def feed_validators(self, subscriber_id: int) -> tuple[int, int, str | None] | None:
        """(link generation, digests delivered, when the last one was) for the feed's ETag
        and Last-Modified, from one index; None when there is no such subscriber."""
        return self.db.execute(
            "SELECT link_gen, (SELECT count(*) FROM digests WHERE subscriber_id = s.id AND "
            "status = 'sent'), (SELECT max(sent_at) FROM digests WHERE subscriber_id = s.id "
            "AND status = 'sent') FROM subscribers s WHERE s.id = ?",
            (subscriber_id,)).fetchone()

    def reset_links(self, subscriber_id: int) -> int:
        """Retire the subscriber's /p/ and /f/ links (a new link generation); returns it."""
        with self.transaction() as db:
            db.execute("UPDATE subscribers SET link_gen = link_gen + 1 WHERE id = ?",
                       (subscriber_id,))
            row = db.execute("SELECT link_gen FROM subscribers WHERE id = ?",
                             (subscriber_id,)).fetchone()
        if row is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        return row[0]

    def why_ids(self, texts: Iterable[str]) -> dict[str, int]:
        """Text -> its number in the whys table, adding the texts not there yet. Call it in
        the transaction that uses the numbers (a build's batch): a rolled-back number may be
        given to another text later."""
        unique = list(dict.fromkeys(texts))
        out: dict[str, int] = {}
        with self.transaction() as db:
            db.executemany("INSERT INTO whys (text) VALUES (?) ON CONFLICT DO NOTHING",
                           [(t,) for t in unique])
            for i in range(0, len(unique), 500):
                chunk = unique[i:i + 500]
                out.update(db.execute(f"SELECT text, id FROM whys WHERE text IN "
                                      f"({','.join('?' * len(chunk))})", chunk))
        return out

    def record_build_failure(self, subscriber_id: int, period: str, *, recipient: str,
                             error: str, papers: int, now: str | None = None,
                             slot_at: str | None = None) -> int | None:
        """Record a digest that could not be built or rendered: an outbox row in state
        failed with the reason and no message (message_id ''), so `digestd outbox --failed`
        and /metrics show it. Its papers are not marked sent and the subscriber's papers stay
        unchecked, so the next digest that builds carries them; with `slot_at` the slot is
        marked handled, so a broken digest is not tried again every minute.

        Once a later digest of the subscriber is built (it carries those papers), the row
        is history: digest_counts, outbox_stats and outbox(status="failed") leave it out.

        Returns the row id, or None when the subscriber has a digest for this period.
        """
        now = now or utcnow()
        with self.transaction() as db:
            did = db.insert_id(
                "INSERT INTO digests (subscriber_id, period, created_at, papers, message_id, "
                "recipient, message, status, last_error) VALUES (?,?,?,?,'',?,?,'failed',?)",
                (subscriber_id, period, now, papers, recipient, b"", error[:500]),
                or_none=True)
            if did is None:
                return None
            if slot_at is not None:
                db.execute(f"UPDATE subscribers SET {self._mark_slot()} WHERE id = ?",
                           (slot_at, None, subscriber_id))
        return did

    def _store_body(self, digest_id: int, message: bytes | PackedMessage) -> None:
        body = message if isinstance(message, PackedMessage) else pack_message(message)
        self.db.execute("INSERT INTO digest_bodies (digest_id, message, packing) VALUES (?,?,?)",
                        (digest_id, body.data, body.packing))

    def has_digest(self, subscriber_id: int, period: str) -> bool:
        return self.db.execute("SELECT 1 FROM digests WHERE subscriber_id = ? AND period = ?",
                               (subscriber_id, period)).fetchone() is not None

    # the message is read from digest_bodies (see the "message_bodies" migration), packed as
    # its packing says ("body_packing"); a row without a body has none (empty bytes)
    _OUTBOX_COLUMNS = ("d.id, d.subscriber_id, d.period, d.recipient, d.message_id, "
                       "coalesce(b.message, d.message), coalesce(b.packing, 0), d.status, "
                       "d.attempts, d.next_attempt_at, d.last_error, d.papers, d.claimed_by, "
                       "d.claimed_until, d.sent_at FROM digests d LEFT JOIN digest_bodies b "
                       "ON b.digest_id = d.id")

    @staticmethod
    def _outbox_row(r: Sequence) -> tuple[OutboxRow, str | None]:
        """(the row, with its message unpacked; why the message does not unpack, or None).
        A row whose message does not unpack comes back with an empty message."""
        try:
            message, error = unpack_message(r[5], r[6]), None
        except StoreError as e:
            message, error = b"", str(e)
        return OutboxRow(*r[:5], message, *r[7:9], error or r[9], *r[10:],
                         crlf=error is None and has_crlf(r[6])), error

    def outbox(self, *, due_before: str | None = None, status: str = "queued",
               limit: int | None = None, newest_first: bool = False) -> list[OutboxRow]:
        """Digests waiting to be sent (`due_before`: only those whose next attempt is due),
        or of another `status` ("failed", "sent"), oldest first unless `newest_first`, each
        with its message unpacked. A row whose stored message does not unpack (a damaged
        body, or one dropped by `outbox prune`) comes with an empty message and the reason
        as its last_error. "failed" leaves out the build failures a later digest
        superseded (see record_build_failure)."""
        sql = f"SELECT {self._OUTBOX_COLUMNS} WHERE d.status = ?"
        args: list = [status]
        if status == "failed":
            sql += f" AND NOT {self._superseded()}"
        if due_before:
            sql += " AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?)"
            args.append(due_before)
        sql += " ORDER BY d.id DESC" if newest_first else " ORDER BY d.id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._outbox_row(r)[0] for r in self.db.execute(sql, args)]

    def stored_message(self, digest_id: int) -> bytes | None:
        """The RFC 5322 bytes of one digest as it is (or was) sent, unpacked; None when the
        digest is unknown or its message was dropped (`outbox prune`, or recorded without
        an email). Raises StoreError for a message that does not unpack."""
        row = self.db.execute(
            "SELECT coalesce(b.message, d.message), coalesce(b.packing, 0) FROM digests d "
            "LEFT JOIN digest_bodies b ON b.digest_id = d.id WHERE d.id = ?",
            (digest_id,)).fetchone()
        if row is None or not row[0]:
            return None
        return unpack_message(row[0], row[1])

    def mark_sent(self, digest_id: int, *, now: str | None = None) -> None:
        self.mark_sent_many([(digest_id, now or utcnow())])

    def mark_sent_many(self, marks: Iterable[tuple[int, str]]) -> int:
        """(digest id, sent at) pairs, in one transaction; rows already marked stay as they
        are, so a mark written twice (a sent journal replayed, see deliver/sender.py) is harmless.
        The bounce count is reset by a trigger. Returns the rows newly marked."""
        with self.transaction(exclusive=False) as db:
            return db.executemany(
                "UPDATE digests SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                "last_error = NULL, claimed_by = NULL, claimed_until = NULL "
                "WHERE id = ? AND status = 'queued'", [(at, did) for did, at in marks]).rowcount

    def mark_deferred(self, digest_id: int, error: str, next_attempt_at: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE digests SET attempts = attempts + 1, last_error = ?, "
                       "next_attempt_at = ?, claimed_by = NULL, claimed_until = NULL "
                       "WHERE id = ?", (error, next_attempt_at, digest_id))

    def mark_failed(self, digest_id: int, error: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE digests SET status = 'failed', attempts = attempts + 1, "
                       "last_error = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                       (error, digest_id))

    def prune_sent(self, before: str, *, chunk: int = 1000) -> int:
        """Drop the message bytes of digests sent before `before` (ISO time). The rows and
        the sent marks stay, so nothing is ever sent twice; the freed pages are reused.
        `chunk` messages per transaction: a sender or build waits for one chunk at most."""
        dropped = 0
        while True:
            with self.transaction() as db:
                # driven by digest_bodies, which holds only the messages not yet dropped
                n = db.execute(
                    "DELETE FROM digest_bodies WHERE digest_id IN (SELECT b.digest_id FROM "
                    "digest_bodies b JOIN digests d ON d.id = b.digest_id WHERE "
                    "d.status = 'sent' AND d.sent_at < ? LIMIT ?)", (before, chunk)).rowcount
            dropped += n
            if n < chunk:
                return dropped

    def digest_counts(self) -> dict[str, int]:
        """Outbox rows by status (queued, sent, failed: those there are), and build_failed
        when some of the failed could not be built (no message: `outbox retry` has nothing
        to send). Build failures a later digest superseded are not counted."""
        counts = dict(self.db.execute(
            f"SELECT d.status, count(*) FROM digests d WHERE NOT {self._superseded()} "
            "GROUP BY d.status"))
        if counts.get("failed"):
            unbuilt = self.db.execute(
                f"SELECT count(*) FROM digests d WHERE d.status = 'failed' AND "
                f"d.message_id = '' AND NOT {self._superseded()}").fetchone()[0]
            if unbuilt:
                counts["build_failed"] = unbuilt
        return counts

    def digest_kinds(self, ids: Sequence[int]) -> dict[int, dict[int, int]]:
        """Digest id -> {kind: papers} of its stored papers (sent.kind: 0 a rule match, 1
        recommended, 2 left out by min_score), for those of `ids` that have any."""
        out: dict[int, dict[int, int]] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):  # bound variables stay few
            chunk = ids[start:start + 500]
            for did, kind, n in self.db.execute(
                    f"SELECT digest_id, kind, count(*) FROM sent WHERE digest_id IN "
                    f"({','.join('?' * len(chunk))}) GROUP BY digest_id, kind", chunk):
                out.setdefault(did, {})[kind] = n
        return out

    # -- the outbox: claims, bounces and retries (used by deliver/) ---------------------------

    def claim_outbox(self, owner: str, *, limit: int, lease_s: float,
                     now: datetime | None = None) -> tuple[list[OutboxRow], int]:
        """Claim up to `limit` due rows nobody holds for `owner`, the longest due first.

        Digests (not confirmation mails) of subscribers who are no longer active are
        cancelled instead of claimed: status failed, with the reason. Returns the claimed
        rows, their messages unpacked, and the number cancelled. A row whose stored message
        does not unpack (a damaged body) is not claimed but failed, with the reason.

        `owner` names the sender across machines (deliver.new_owner: host/pid/random); the
        claim holds for `lease_s` seconds by the store's clock (store_clock: the database
        server's on PostgreSQL) unless renewed (renew_outbox_claims), then any
        sender may take the row. On PostgreSQL the rows are locked as they are read, and
        rows another sender is claiming at that moment are passed over (SKIP LOCKED): two
        instances never claim one row, and neither waits for the other or for a build.
        """
        now = now or self.store_clock()
        stamp = now.isoformat(timespec="seconds")
        until = lease_end(now, lease_s)
        with self.transaction(exclusive=False) as db:
            found = db.execute(
                f"SELECT d.id, s.status, {self._web_mail('d.')} "
                "FROM digests d JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.status = 'queued' AND d.next_attempt_at <= ? "
                "AND (d.claimed_until IS NULL OR d.claimed_until < ?) "
                f"ORDER BY d.next_attempt_at, d.id LIMIT ? {self.sql.skip_locked_digests}",
                (stamp, stamp, limit)).fetchall()
            cancel = [(f"not sent: the subscriber is {status}", did)
                      for did, status, web_mail in found if status != "active" and not web_mail]
            db.executemany("UPDATE digests SET status = 'failed', last_error = ? WHERE id = ?",
                           cancel)
            ids = [did for did, status, web_mail in found if status == "active" or web_mail]
            if not ids:
                return [], len(cancel)
            marks = ",".join("?" * len(ids))
            db.execute(f"UPDATE digests SET claimed_by = ?, claimed_until = ? "
                       f"WHERE id IN ({marks})", (owner, until, *ids))
            rows = []
            for r in db.execute(f"SELECT {self._OUTBOX_COLUMNS} WHERE d.id IN ({marks}) "
                                "ORDER BY d.next_attempt_at, d.id", ids).fetchall():
                row, error = self._outbox_row(r)
                if error is None:
                    rows.append(row)
                    continue
                db.execute("UPDATE digests SET status = 'failed', last_error = ?, "
                           "claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                           (error, row.id))
                log.error("event=message_unreadable digest=%d error=%r", row.id, error)
        return rows, len(cancel)

    def release_claims(self, owner: str) -> int:
        """Hand back what `owner` claimed and did not finish (nothing is counted as tried)."""
        with self.transaction(exclusive=False) as db:
            return db.execute("UPDATE digests SET claimed_by = NULL, claimed_until = NULL "
                              "WHERE claimed_by = ?", (owner,)).rowcount

    def outbox_claimants(self) -> dict[str, int]:
        """Owner -> rows it holds, for the rows claimed right now (live or stale)."""
        return dict(self.db.execute(
            "SELECT claimed_by, count(*) FROM digests WHERE claimed_by IS NOT NULL "
            "GROUP BY claimed_by"))

    def count_due(self, *, now: str | None = None) -> int:
        return self.db.execute("SELECT count(*) FROM digests WHERE status = 'queued' AND "
                               "next_attempt_at <= ?", (now or utcnow(),)).fetchone()[0]

    def record_bounce(self, digest_id: int, error: str, *, threshold: int) -> bool:
        """A hard bounce (5xx for the recipient): the message failed, the subscriber's count
        of bounces in a row goes up, and at `threshold` an active subscriber becomes
        bouncing and gets no more digests. True when this bounce made them bouncing. A
        message counts once: the same digest refused again (`outbox retry --failed`) fails
        again without another bounce counted."""
        with self.transaction() as db:
            row = db.execute("SELECT subscriber_id, bounced_at FROM digests WHERE id = ?",
                             (digest_id,)).fetchone()
            db.execute("UPDATE digests SET status = 'failed', attempts = attempts + 1, "
                       "last_error = ?, claimed_by = NULL, claimed_until = NULL, "
                       "bounced_at = coalesce(bounced_at, ?) WHERE id = ?",
                       (error, utcnow(), digest_id))
            if row is None or row[1] is not None:
                return False
            db.execute("UPDATE subscribers SET bounces = bounces + 1 WHERE id = ?", (row[0],))
            return db.execute("UPDATE subscribers SET status = 'bouncing' WHERE id = ? AND "
                              "status = 'active' AND bounces >= ?",
                              (row[0], threshold)).rowcount == 1

    def digest_statuses(self, ids: Sequence[int]) -> dict[int, str]:
        """Digest id -> its status (queued, sent, failed), for those of `ids` that exist."""
        marks = ",".join("?" * len(ids))
        return dict(self.db.execute(f"SELECT id, status FROM digests WHERE id IN ({marks})",
                                    [int(i) for i in ids])) if ids else {}

    def retry_outbox(self, ids: Sequence[int] = (), *, failed: bool = False,
                     now: str | None = None) -> int:
        """Make queued rows (and with `failed`, failed ones, attempts reset) due now.
        `ids` limits it to those rows. Returns how many rows changed."""
        now = now or utcnow()
        where = f" AND id IN ({','.join(str(int(i)) for i in ids)})" if ids else ""
        with self.transaction() as db:
            n = db.execute("UPDATE digests SET next_attempt_at = ? WHERE status = 'queued'"
                           + where, (now,)).rowcount
            if failed:  # a digest that was never built has no message to send
                n += db.execute("UPDATE digests SET status = 'queued', attempts = 0, "
                                "next_attempt_at = ? WHERE status = 'failed' "
                                "AND message_id != ''" + where, (now,)).rowcount
        return n
