"""The outbox on its way out: claims due rows a few at a time, sends them over a pool of SMTP
connections, and records each outcome (.eml files instead of SMTP: outbox.py).

Crash safety comes from the order of writes. Building a digest stores the finished message
(with its Message-ID) in the outbox together with the "already sent" marks, in one
transaction. Sending claims a few rows at a time, and right after the server's 250 the mark
is made durable before anything else can fail:

- on SQLite (one machine), the row's id is appended to this run's sent journal (one write()
  to a file beside the store, which a killed process cannot take back, journal.py); the
  journal's marks reach the store in batches, from a thread of their own, and a journal left
  behind by a sender that died is applied before its claims are taken over;
- on PostgreSQL (several machines, no shared file), by a group commit: the 250s that arrive
  until a connection needs the commit to go on (at most GROUP_COMMIT_S) are committed
  together, and the connection that got one finishes its next message (the DATA that can
  earn the next 250) only once that commit is done; the next message's MAIL FROM and RCPT
  TO go out while the commit runs.

So a crash (kill -9) at any point leaves every digest either sent or queued; the only
message that can go out twice is one the server accepted in the instant before the crash
(at most one per connection), and it goes out again with the same Message-ID. Claims are
leased (`claim_lease` seconds, renewed every third of it while the run goes on): the claims
of a sender that died are taken over at once on its own host (its pid is gone), and by any
instance anywhere once the lease ran out.

The sender's store calls all run in one thread, on its own connection: while a build
commits a batch of digests, the writes that wait for the lock hold up neither the event
loop nor the other connections.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr

import aiosmtplib

from ..config import SmtpConfig
from ..mime import to_7bit
from ..store import BaseStore, OutboxRow, utcnow
from .journal import SentJournal, new_owner, owner_alive
from .marks import SentMarks
from .outbox import DeliveryReport, StoreThread, verp_address
from .session import Session, TransactionFailed
from .smtp import (Outcome, RateLimit, backoff, classify, connect, connect_failure,
                   envelope_path)

log = logging.getLogger("digestd.deliver")

LEASE_S = 900.0  # a claim not renewed for this long is taken over (without claim_lease)
FOLLOW_POLL_S = 0.01  # how often a sender that follows a build looks for new rows
TOTAL_EVERY_S = 1.0  # how often it counts the rows due, for the progress total
# A connection refused while none of this run's is open, after one worked: the server takes
# fewer connections at a time and frees one soon (a connection's count outlives it). The
# last worker tries again this many times, after 0.25, 0.5, 1 ... seconds, before it stops.
CONNECT_RETRIES = 5
CONNECT_RETRY_S = 0.25
# A message whose transaction the server ended before it went out (a 421, a hang-up, too
# many recipients) goes over a new connection in the same run, this many times at most; then
# it is deferred as any 4xx, so one message that always meets it cannot hold up the run.
AGAIN_MAX = 3
# A deferral that is the relay's or our sender's (Outcome.pause, a 4xx to MAIL FROM: "451
# 4.7.1 rate limit exceeded"): the message goes back uncounted and every connection pauses,
# PAUSE_S, then twice as long each time, PAUSES times in a run at most (a message sent in
# between starts over), or as long as the reply asks if that is longer, up to PAUSE_MAX_S.
# Past that, or for a 5xx ("553 5.7.1 sender not allowed"), that message is deferred and the
# run stops: the rest stays queued, not one attempt spent on each.
PAUSE_S = 5.0
PAUSES = 4
PAUSE_MAX_S = 300.0
BATCH_PER_CONNECTION = 16  # rows claimed at a time, per connection
HALT_WAIT_S = 30.0  # a worker failed: the others' time to finish (or smtp.timeout if longer)


class SmtpSender:
    """One delivery run: claims due rows a few at a time and sends them over a pool of
    `max_connections` connections, each reused for many messages."""

    def __init__(self, store: BaseStore, smtp: SmtpConfig, sender: str, *, max_attempts: int = 12,
                 bounce_threshold: int = 3, limit: int | None = None,
                 progress: Callable[[DeliveryReport], None] | None = None,
                 follow: asyncio.Future | None = None,
                 stop: asyncio.Event | None = None, return_path: str = "",
                 secret: bytes = b"", claim_lease: float | None = None) -> None:
        """`return_path` (with the link `secret`): every message goes out from
        `LOCAL+TOKEN@DOMAIN` of it, TOKEN naming the row and its subscriber (VERP, see
        tokens.bounce_token); empty: from the address of `sender`.

        `follow`: keep looking for new rows until this future is done (a build running
        at the same time), instead of stopping at the first empty outbox.

        `stop`: once set (a shutdown), no row is claimed or started any more; the
        transactions in flight finish (one per connection) and the rows claimed but not
        started are handed back to the outbox, for the next run.

        `claim_lease` (seconds; [store] claim_lease): how long the rows this run claims stay
        its own unless renewed; they are renewed every third of it while the run goes on.
        None: LEASE_S (and the batch's wait for the rate limit)."""
        self.store = store
        self.follow = follow
        self.stop = stop
        self.smtp = smtp
        self.envelope_from = parseaddr(sender)[1]
        self.return_path = return_path
        self.secret = secret
        self.max_attempts = max_attempts
        self.bounce_threshold = bounce_threshold
        self.limit = limit
        self.progress = progress
        self.report = DeliveryReport()
        self.owner = new_owner()
        self.rate = RateLimit(smtp.max_per_second)
        self.buffer: collections.deque[OutboxRow] = collections.deque()
        self.exhausted = False
        self.next_poll_at = 0.0  # while following a build: no claim before this (loop time)
        self.total_at = 0.0  # ... and no new count of the rows due before this (loop time)
        self.claimed = 0
        # at most one claim at a time (no row is claimed twice), started while half the
        # buffer is still there, so a claim waiting for the lock (a build committing) does
        # not leave the connections without work
        self.claim_task: asyncio.Future | None = None
        self.db = StoreThread(store)
        self.marks: SentMarks | None = None  # the run's sent marks (made by _deliver)
        self.halted = False  # a worker failed: the others send no further message
        self.clients: list[Session] = []
        # workers connecting, until their first message's answer (each holds a row)
        self.connecting = 0
        self.connected = False  # a connection of this run got through (greeting, EHLO)
        self.agains: dict[int, int] = {}  # row id -> times it went back for a new connection
        self.paused_until = 0.0  # loop time: no MAIL FROM before it (Outcome.pause)
        self.pauses = 0  # pauses since the last message sent
        batch = BATCH_PER_CONNECTION * smtp.max_connections
        self.batch = min(batch, limit) if limit else batch
        # the claim must outlive the time its rows may wait for the rate limit
        wait = self.batch / smtp.max_per_second if smtp.max_per_second else 0
        self.lease = (claim_lease if claim_lease else LEASE_S) + wait

    async def run(self) -> DeliveryReport:
        started = time.monotonic()
        try:
            await self._take_over_dead_senders()
            due = await self.db("count_due")
            self.report.total = min(due, self.limit) if self.limit else due
            if (due or self.follow is not None) and not self._stopping():
                await self._deliver()
        finally:
            await self.db.close()
        r = self.report
        if r.done or r.stopped or r.handed_back:
            log.info("event=delivery_run sent=%d deferred=%d failed=%d bounced=%d "
                     "cancelled=%d took_ms=%d%s%s", r.sent, r.deferred, r.failed, r.bounced,
                     r.cancelled, (time.monotonic() - started) * 1000,
                     f" stopped={r.stopped!r}" if r.stopped else "",
                     f" handed_back={r.handed_back}" if r.handed_back else "")
        return r

    async def _deliver(self) -> None:
        marks = self.marks = SentMarks(self.store, self.db, self.owner)
        writer = asyncio.ensure_future(marks.writer())
        renewer = asyncio.ensure_future(self._renew_claims())
        stored = False
        workers = [asyncio.ensure_future(self._worker(n))
                   for n in range(self.smtp.max_connections)]
        try:
            await asyncio.gather(*workers)
        except Exception:
            # one worker failed (the store, the journal): the others finish the message they
            # are sending and start no other (halted). Cut off once its body went out, a
            # message the server may have taken would be sent again by the next run.
            self.halted = True
            await asyncio.wait(workers, timeout=max(self.smtp.timeout, HALT_WAIT_S))
            raise
        finally:
            # one worker failed (or this run is cancelled): the others end before their claims
            # are handed back below, or a row one of them is still sending could be claimed
            # and sent again by another sender
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            writer.cancel()
            renewer.cancel()
            # a claim still running ends first: its rows are handed back below
            await asyncio.gather(writer, renewer,
                                 *([self.claim_task] if self.claim_task else []),
                                 return_exceptions=True)
            try:
                # with those a cancelled group commit never wrote
                await marks.store_all()
                stored = True
                # whatever is still claimed was never tried: hand it back untouched (after
                # the marks are in, or a sent row could be claimed again)
                self.report.handed_back = await self.db("release_claims", self.owner)
            finally:
                # the journal is kept when its marks are not all stored: the next sender
                # applies it
                marks.close(stored=stored)

    async def _renew_claims(self) -> None:
        """Every third of the lease, push the lease of this run's claims on: a long run
        (a slow server, a rate limit) keeps them, a dead one loses them in time."""
        while True:
            await asyncio.sleep(self.lease / 3)
            held = await self.db("renew_outbox_claims", self.owner, self.lease)
            log.debug("event=claims_renewed owner=%s rows=%d", self.owner, held)

    async def _take_over_dead_senders(self) -> None:
        """Apply the sent journals of senders that died, then free their claims: the rows
        they sent stay sent, the others are sent again."""
        for path, owner, marks in SentJournal.left_behind(self.store.side_files):
            applied = await self.db("mark_sent_many", marks)
            path.unlink(missing_ok=True)
            log.warning("event=sent_journal_applied owner=%s marks=%d newly_marked=%d",
                        owner, len(marks), applied)
        for owner, rows in (await self.db("outbox_claimants")).items():
            if not owner_alive(owner):
                await self.db("release_claims", owner)
                # these rows may have been in the middle of DATA when their sender died: if
                # the server had said 250, the resend repeats them (same Message-ID)
                log.warning("event=claims_taken_over owner=%s rows=%d", owner, rows)

    def _stopping(self) -> bool:
        return self.halted or self.stop is not None and self.stop.is_set()

    async def _next_row(self) -> OutboxRow | None:
        loop = asyncio.get_running_loop()
        while not self.report.stopped and not self._stopping():
            claiming = self.claim_task is not None and not self.claim_task.done()
            if (not claiming and not self.exhausted and len(self.buffer) <= self.batch // 2
                    and self.next_poll_at <= loop.time()):
                self.claim_task = asyncio.ensure_future(self._claim())
                claiming = True
            if self.buffer:
                return self.buffer.popleft()
            if self.exhausted:
                if not self.connecting:
                    return None
                # a worker still connecting holds a row: if the server refuses it, the row
                # comes back for a connection that works
                await asyncio.sleep(FOLLOW_POLL_S)
                continue
            if claiming:
                assert self.claim_task is not None
                await asyncio.shield(self.claim_task)  # its error, if any, is ours too
            else:  # the build had nothing new a moment ago: look again a bit later
                await asyncio.sleep(max(0.0, self.next_poll_at - loop.time()))
        return None

    async def _claim(self) -> None:
        want = self.batch if not self.limit else min(self.batch, self.limit - self.claimed)
        if want <= 0:
            self.exhausted = True
            return
        # read before claiming: once the build is over, every row it queued is visible
        build_over = self.follow is None or self.follow.done()
        rows, cancelled = await self.db("claim_outbox", self.owner, limit=want,
                                        lease_s=self.lease)
        if cancelled:
            self.report.failed += cancelled
            self.report.cancelled += cancelled
            log.info("event=digests_cancelled count=%d reason=subscriber_not_active",
                     cancelled)
        self.claimed += len(rows)
        self.buffer.extend(rows)
        now = asyncio.get_running_loop().time()
        if rows and self.follow is not None and now >= self.total_at:
            # the build is still adding rows: the total grows as they come (counted at most
            # every TOTAL_EVERY_S: a count reads every queued row, ~4 ms with 10,000 queued)
            self.total_at = now + TOTAL_EVERY_S
            self.report.total = max(self.report.total,
                                    self.report.done + await self.db("count_due"))
        if rows or cancelled:
            return
        if build_over:
            self.exhausted = True
        else:  # the build has not committed the next one yet
            self.next_poll_at = asyncio.get_running_loop().time() + FOLLOW_POLL_S

    async def _worker(self, n: int) -> None:
        client: Session | None = None
        # PostgreSQL: the group commit of this connection's last 250, awaited before the
        # next DATA (a kill loses at most that one mark per connection)
        committing: asyncio.Future | None = None
        carried = 0  # messages this connection took to the end (any answer but "again")
        retries = 0  # connections refused (or ended before a message) in a row
        # A new connection counts as connecting (self.connecting) until its first message got
        # an answer: a relay may take the connection and end it before any message (too many
        # connections, shutting down), and that row then comes back for the others
        proving = False
        try:
            while (row := await self._next_row()) is not None:
                if client is None or not client.is_connected:
                    self.connecting += 1
                    proving = True
                    try:
                        client = Session(await connect(self.smtp))
                    except (aiosmtplib.SMTPException, OSError) as e:
                        client, proving = None, False
                        if not await self._refused(n, row, retries, f"connect to "
                                                   f"{self.smtp.host}:{self.smtp.port}: "
                                                   f"{connect_failure(e)}"):
                            break
                        retries += 1
                        continue
                    self.clients = [c for c in self.clients if c.is_connected]
                    self.clients.append(client)
                    self.connected, carried = True, 0
                await self.rate.wait()
                await self._pause_over()  # (Outcome.pause)
                if self._stopping() or self.report.stopped:
                    # asked to stop (or stopped) while connecting or waiting: not started
                    self.buffer.appendleft(row)
                    break
                outcome = await self._send(client, row, committing)
                if outcome.kind == "again":
                    client.close()
                    if not carried and outcome.ended:
                        # ended before its first message: the server takes fewer connections
                        # than configured, or is going away; as if it had refused it
                        proving = False
                        if not await self._refused(
                                n, row, retries, f"{self.smtp.host}:{self.smtp.port} ended "
                                f"the session before a message: {outcome.error}"):
                            break
                        retries += 1
                        continue
                    self.agains[row.id] = tries = self.agains.get(row.id, 0) + 1
                    if carried and tries <= AGAIN_MAX:
                        # the server ended a connection that carried messages before this
                        # one (a limit of messages or recipients per connection, a restart):
                        # a new connection takes it
                        log.info("event=connection_ended worker=%d after=%d error=%r", n,
                                 carried, outcome.error)
                        self.buffer.appendleft(row)
                        continue
                    # too many recipients on a new connection (this recipient, not the
                    # count), or this message keeps meeting it: deferred as any 4xx
                    outcome = Outcome("deferred", outcome.error, outcome.retry_after)
                if proving:  # this connection works: a message of it got an answer
                    self.connecting, proving, retries = self.connecting - 1, False, 0
                if outcome.pause:  # the relay's or our sender's: not this message's
                    if not await self._paused(n, row, outcome):
                        break
                    continue
                carried += 1
                committing = await self._finish(row, outcome) or committing
            if committing is not None:  # this worker's last mark is in before it ends
                await self.marks.committed(committing)
        finally:
            if proving:
                self.connecting -= 1
            if client is not None:
                await client.quit()

    async def _refused(self, n: int, row: OutboxRow, retries: int, error: str) -> bool:
        """A connection refused, or ended before its first message: whether this worker
        tries again (after a wait). While other connections are open or opening, this only
        says the server takes fewer: the row goes back to them and this worker ends. None
        open, but one got through in this run: the server frees its place soon (a
        connection's count outlives it, a restart), so it is tried again CONNECT_RETRIES
        times. Else nothing works: the row is deferred and the run stops, the rest queued.
        Either way this worker's connection no longer counts as connecting once it returns."""
        try:
            if any(c.is_connected for c in self.clients) or self.connecting > 1:
                self.buffer.appendleft(row)
                log.info("event=connection_refused worker=%d error=%r", n, error)
                return False
            if self.connected and retries < CONNECT_RETRIES:
                self.buffer.appendleft(row)
                log.info("event=connection_refused worker=%d retry_in_s=%.2f error=%r", n,
                         CONNECT_RETRY_S * 2 ** retries, error)
                await asyncio.sleep(CONNECT_RETRY_S * 2 ** retries)
                return True
            await self._finish(row, Outcome("deferred", error))
            self.report.stopped = error
            return False
        finally:
            self.connecting -= 1

    async def _paused(self, n: int, row: OutboxRow, outcome: Outcome) -> bool:
        """A deferral that every message would meet (Outcome.pause): whether this worker goes
        on (after the pause, see PAUSE_S). The row goes back uncounted and every connection
        waits; met again once the pause is over, the next pause is twice as long. A 5xx, a
        wait longer than PAUSE_MAX_S, or PAUSES pauses without a message sent: this row is
        deferred (one attempt) and the run stops, the rest queued for the next run."""
        loop = asyncio.get_running_loop()
        if self.report.stopped:  # another connection stopped the run: this row stays queued
            self.buffer.appendleft(row)
            return False
        if loop.time() < self.paused_until:  # another connection met it first: wait too
            self.buffer.appendleft(row)
            await self._pause_over()
            return not self.report.stopped
        wait = max(outcome.retry_after, PAUSE_S * 2 ** self.pauses)
        if outcome.pause == "stop" or self.pauses >= PAUSES or wait > PAUSE_MAX_S:
            # (stopped first: another connection's answer meanwhile leaves its row queued)
            self.report.stopped = (f"the relay refuses every message for now ({outcome.error});"
                                   " the rest stays queued for the next run")
            await self._finish(row, replace(outcome, pause=""))
            log.warning("event=delivery_paused_too_long pauses=%d error=%r", self.pauses,
                        outcome.error)
            return False
        self.pauses += 1
        self.buffer.appendleft(row)
        self.paused_until = loop.time() + wait
        log.warning("event=delivery_paused worker=%d pause=%d wait_s=%.1f error=%r", n,
                    self.pauses, wait, outcome.error)
        await self._pause_over()
        return not self.report.stopped

    async def _pause_over(self) -> None:
        """Wait until the pause (if any) is over, or the run stops."""
        loop = asyncio.get_running_loop()
        while (left := self.paused_until - loop.time()) > 0 and not self._stopping() and (
                not self.report.stopped):
            await asyncio.sleep(min(left, 0.5))

    async def _send(self, client: Session, row: OutboxRow,
                    committing: asyncio.Future | None = None) -> Outcome:
        """One transaction (Session.send, which says the stage of a failure, for classify).
        `committing` (the group commit of this connection's last 250) is awaited before
        DATA: its error ends the worker, and this row, never sent, is handed back with the
        run's claims."""
        message, crlf = row.message, row.crlf
        eight_bit = not message.isascii()  # an 8bit text part (render.encode_body)
        if eight_bit and not client.supports_extension("8bitmime"):
            message, eight_bit, crlf = to_7bit(message), False, False
        options = [b"SIZE=%d" % len(message)] if client.supports_extension("size") else []
        if eight_bit:
            options.append(b"BODY=8BITMIME")
        sender = verp_address(self.return_path, self.secret, row) if self.return_path \
            else self.envelope_from
        try:
            paths = envelope_path(sender), envelope_path(row.recipient)
        except ValueError as e:  # nothing sent yet: this message fails alone
            return Outcome("failed", f"MAIL {e}")
        try:
            await client.send(paths[0], options, paths[1], message,
                              done_timeout=self.smtp.data_timeout,
                              before_data=None if committing is None else
                              lambda: self.marks.committed(committing), crlf=crlf)
        except TransactionFailed as e:
            outcome = classify(e.stage, e.error, body_sent=e.body_sent)
            if not isinstance(e.error, aiosmtplib.SMTPResponseException) or \
                    outcome.kind == "again":
                client.close()
            elif client.is_connected:
                await client.rset()
            return outcome
        return Outcome("sent")

    async def _finish(self, row: OutboxRow, outcome: Outcome) -> asyncio.Future | None:
        """Record the outcome: a 250 in the journal at once (that is what a crash cannot
        undo), anything else in the store before this connection sends again. PostgreSQL: a
        250 joins the next group commit, whose future is returned (the worker awaits it
        before its next DATA)."""
        r = self.report
        done: asyncio.Future | None = None
        if outcome.kind == "sent":
            self.pauses = 0
            done = self.marks.record(row.id, utcnow())
            r.sent += 1
            log.debug("event=sent digest=%d message_id=%s", row.id, row.message_id)
        elif outcome.kind == "bounced":
            now_bouncing = await self.db("record_bounce", row.id, outcome.error,
                                         threshold=self.bounce_threshold)
            r.failed += 1
            r.bounced += 1
            log.warning("event=bounce digest=%d subscriber=%d error=%r%s", row.id,
                        row.subscriber_id, outcome.error,
                        " subscriber_status=bouncing" if now_bouncing else "")
        elif outcome.kind == "failed" or row.attempts + 1 >= self.max_attempts:
            error = outcome.error if outcome.kind == "failed" else \
                f"gave up after {row.attempts + 1} attempts: {outcome.error}"
            await self.db("mark_failed", row.id, error)
            r.failed += 1
            log.warning("event=failed digest=%d attempts=%d error=%r", row.id, row.attempts + 1,
                        error)
        else:
            # the server's own wait, when it names one ("greylisted, try again in 300 s"):
            # an attempt sooner would only meet the same answer
            delay = max(backoff(row.attempts + 1) * random.uniform(0.9, 1.1),
                        outcome.retry_after)
            when = datetime.now(timezone.utc) + timedelta(seconds=delay)
            await self.db("mark_deferred", row.id, outcome.error,
                          when.isoformat(timespec="seconds"))
            r.deferred += 1
            log.warning("event=deferred digest=%d attempts=%d retry_in_s=%d error=%r", row.id,
                        row.attempts + 1, delay, outcome.error)
        if self.progress:
            self.progress(r)
        return done



async def send_smtp(store: BaseStore, smtp: SmtpConfig, sender: str, *, max_attempts: int = 12,
                    bounce_threshold: int = 3, limit: int | None = None,
                    progress: Callable[[DeliveryReport], None] | None = None,
                    follow: asyncio.Future | None = None,
                    stop: asyncio.Event | None = None, return_path: str = "",
                    secret: bytes = b"", claim_lease: float | None = None) -> DeliveryReport:
    """Send the due rows of the outbox (at most `limit`) until done or `stop` is set;
    see SmtpSender."""
    return await SmtpSender(store, smtp, sender, max_attempts=max_attempts,
                            bounce_threshold=bounce_threshold, limit=limit,
                            progress=progress, follow=follow, stop=stop,
                            return_path=return_path, secret=secret,
                            claim_lease=claim_lease).run()


