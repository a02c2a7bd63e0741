"""The SQLite schema: an ordered list of named migration steps; the schema version
is the number of steps applied (PRAGMA user_version).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    ("papers", """
        CREATE TABLE papers (
            pk         INTEGER PRIMARY KEY,
            id         TEXT NOT NULL UNIQUE,     -- canonical id, e.g. arxiv:2401.01234
            title      TEXT NOT NULL,
            abstract   TEXT NOT NULL DEFAULT '',
            authors    TEXT NOT NULL DEFAULT '[]',  -- JSON list
            categories TEXT NOT NULL DEFAULT '[]',  -- JSON list
            source     TEXT NOT NULL DEFAULT '',
            url        TEXT NOT NULL DEFAULT '',
            pdf_url    TEXT NOT NULL DEFAULT '',
            published  TEXT NOT NULL DEFAULT '',
            upvotes    INTEGER,
            version    INTEGER,
            first_seen TEXT NOT NULL
        );
        CREATE INDEX papers_first_seen ON papers(first_seen);
        -- every id a paper is known by (canonical id included), so two sources meet in one row
        CREATE TABLE paper_ids (
            alias    TEXT PRIMARY KEY,
            paper_pk INTEGER NOT NULL REFERENCES papers(pk) ON DELETE CASCADE
        ) WITHOUT ROWID;
        CREATE INDEX paper_ids_paper ON paper_ids(paper_pk);
    """),
    ("source_state", """
        CREATE TABLE source_state (
            name               TEXT PRIMARY KEY,
            etag               TEXT,
            last_modified      TEXT,
            cursor             TEXT,
            last_poll          TEXT,
            last_success       TEXT,
            last_error         TEXT,
            last_error_at      TEXT,
            consecutive_errors INTEGER NOT NULL DEFAULT 0,
            errors_total       INTEGER NOT NULL DEFAULT 0,
            polls              INTEGER NOT NULL DEFAULT 0,
            papers_seen        INTEGER NOT NULL DEFAULT 0
        );
    """),
    ("subscribers", """
        CREATE TABLE subscribers (
            id             INTEGER PRIMARY KEY,
            email          TEXT NOT NULL UNIQUE COLLATE NOCASE,
            name           TEXT NOT NULL DEFAULT '',
            status         TEXT NOT NULL DEFAULT 'active'
                           CHECK (status IN ('pending','active','paused','unsubscribed','bouncing')),
            timezone       TEXT NOT NULL DEFAULT 'UTC',
            send_at        TEXT NOT NULL DEFAULT '07:00',
            frequency      TEXT NOT NULL DEFAULT 'daily',
            weekday        INTEGER NOT NULL DEFAULT 0,
            send_empty     INTEGER NOT NULL DEFAULT 0,
            created_at     TEXT NOT NULL,
            confirmed_at   TEXT,
            last_digest_at TEXT,
            bounces        INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX subscribers_status ON subscribers(status);
        CREATE TABLE rules (
            id            INTEGER PRIMARY KEY,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            position      INTEGER NOT NULL,
            text          TEXT NOT NULL
        );
        CREATE INDEX rules_subscriber ON rules(subscriber_id, position);
    """),
    ("outbox", """
        -- one row per subscriber and period: the UNIQUE constraint is what makes a digest
        -- impossible to build twice; status moves to 'sent' only after the server said 250
        CREATE TABLE digests (
            id              INTEGER PRIMARY KEY,
            subscriber_id   INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            period          TEXT NOT NULL,
            created_at      TEXT NOT NULL,
            papers          INTEGER NOT NULL,
            message_id      TEXT NOT NULL,
            recipient       TEXT NOT NULL,
            message         BLOB NOT NULL,
            status          TEXT NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued','sent','failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            last_error      TEXT,
            sent_at         TEXT,
            UNIQUE (subscriber_id, period)
        );
        CREATE INDEX digests_pending ON digests(status, next_attempt_at);
        -- a paper goes to a subscriber at most once, ever
        CREATE TABLE sent (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            paper_pk      INTEGER NOT NULL REFERENCES papers(pk) ON DELETE CASCADE,
            digest_id     INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
            PRIMARY KEY (subscriber_id, paper_pk)
        ) WITHOUT ROWID;
        CREATE INDEX sent_paper ON sent(paper_pk);
    """),
    ("web", """
        -- double opt-in: the nonce is signed into the confirmation link and cleared when it is
        -- used, so a replayed link changes nothing; web_mail_at throttles mails to one address
        ALTER TABLE subscribers ADD COLUMN confirm_nonce TEXT;
        ALTER TABLE subscribers ADD COLUMN web_mail_at TEXT;
        -- rate-limit bookkeeping for the subscribe form; keys are keyed hashes, never the
        -- address or the IP itself
        CREATE TABLE web_events (
            kind TEXT NOT NULL,   -- 'ip' or 'address'
            key  TEXT NOT NULL,
            at   REAL NOT NULL    -- unix time
        );
        CREATE INDEX web_events_key ON web_events(kind, key, at);
        -- links are signed over subscriber ids, so an id must never be given out twice: a new
        -- subscriber who got a deleted one's id would be controlled by the old links
        CREATE TABLE id_high_water (
            name  TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        );
        CREATE TRIGGER subscribers_high_water AFTER DELETE ON subscribers BEGIN
            INSERT INTO id_high_water (name, value) VALUES ('subscribers', old.id)
            ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value);
        END;
    """),
    ("schedule", """
        -- the scheduled send time (UTC) of the last slot handled: sent, empty, or merged into
        -- the next one because it was too late; a slot at or before it is never due again
        ALTER TABLE subscribers ADD COLUMN last_slot_at TEXT;
        -- papers first seen before this were already matched against the subscriber's rules
        ALTER TABLE subscribers ADD COLUMN last_checked_at TEXT;
    """),
    ("outbox_claims", """
        -- a sender claims the rows it is about to send (owner "host/pid/run", lease end), so
        -- two senders (the daemon and `digestd send`) never send the same row; the claim of a
        -- sender that died is taken over at once when its pid is gone, else when it expires
        ALTER TABLE digests ADD COLUMN claimed_by TEXT;
        ALTER TABLE digests ADD COLUMN claimed_until TEXT;
        CREATE INDEX digests_claimed ON digests(claimed_by) WHERE claimed_by IS NOT NULL;
    """),
    ("sent_resets_bounces", """
        -- hard bounces count in a row: a delivered message starts the count again (a trigger,
        -- so marking a message sent stays one statement: the sender does it after every 250)
        CREATE TRIGGER digests_sent_resets_bounces AFTER UPDATE OF status ON digests
        WHEN new.status = 'sent' BEGIN
            UPDATE subscribers SET bounces = 0 WHERE id = new.subscriber_id AND bounces > 0;
        END;
    """),
    ("message_bodies", """
        -- the message bytes live apart from the row that changes after every attempt: SQLite
        -- rewrites a whole row on UPDATE, and a 50 KB message is nearly all of it. Rows
        -- inserted with their message (queue_message) have it moved here by the trigger.
        CREATE TABLE digest_bodies (
            digest_id INTEGER PRIMARY KEY REFERENCES digests(id) ON DELETE CASCADE,
            message   BLOB NOT NULL
        );
        INSERT INTO digest_bodies (digest_id, message)
            SELECT id, message FROM digests WHERE length(message) > 0;
        UPDATE digests SET message = x'' WHERE length(message) > 0;
        CREATE TRIGGER digests_body_apart AFTER INSERT ON digests
        WHEN length(new.message) > 0 BEGIN
            INSERT INTO digest_bodies (digest_id, message) VALUES (new.id, new.message);
            UPDATE digests SET message = x'' WHERE id = new.id;
        END;
    """),
    ("digest_pages", """
        -- every digest has a web page listing all its papers, in the digest's order and with
        -- why each matched, also after its message was pruned: the order and the reason
        -- live beside the sent mark (NULL for digests built before this step). The sent
        -- table grows by every paper sent, forever, so each reason's text is stored once
        -- (whys) and a mark holds its number: a few bytes instead of ~50.
        CREATE TABLE whys (
            id   INTEGER PRIMARY KEY,
            text TEXT NOT NULL UNIQUE
        );
        ALTER TABLE sent ADD COLUMN position INTEGER;
        ALTER TABLE sent ADD COLUMN why_id INTEGER;   -- whys.id; whys are never deleted
        -- how many papers a digest (or a "nothing matched" note) checked, for its page
        ALTER TABLE digests ADD COLUMN checked INTEGER;
        -- the feed's ETag: what a subscriber got, and when, without reading the rows
        CREATE INDEX digests_delivered ON digests(subscriber_id, sent_at) WHERE status = 'sent';
        -- "feed only": matches are recorded (the feed and the archive fill), no email is sent
        ALTER TABLE subscribers ADD COLUMN feed_only INTEGER NOT NULL DEFAULT 0;
        -- signed into /p/, /f/ and /u/ links: "reset my links" raises it, which retires the
        -- old /p/ and /f/ links (old /u/ links keep unsubscribing)
        ALTER TABLE subscribers ADD COLUMN link_gen INTEGER NOT NULL DEFAULT 0;
    """),
    ("schedule_version", """
        -- bumped by every change that can make a digest due sooner: the daemon skips a
        -- build process on ticks where nothing changed and the next slot is still ahead
        CREATE TABLE schedule_version (value INTEGER NOT NULL);
        INSERT INTO schedule_version (value) VALUES (0);
        CREATE TRIGGER schedule_version_sub_insert AFTER INSERT ON subscribers BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
        CREATE TRIGGER schedule_version_sub_delete AFTER DELETE ON subscribers BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
        CREATE TRIGGER schedule_version_sub_update AFTER UPDATE OF timezone, send_at,
            frequency, weekday, send_empty, status ON subscribers BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
        CREATE TRIGGER schedule_version_rule_insert AFTER INSERT ON rules BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
        CREATE TRIGGER schedule_version_rule_delete AFTER DELETE ON rules BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
    """),
    # a subscriber's relevance settings: how many "also recommended" papers beyond the rules
    # (0: none) and the similarity below which a rule match is left out (NULL: never)
    ("relevance_settings", """
        ALTER TABLE subscribers ADD COLUMN recommend INTEGER NOT NULL DEFAULT 0
            CHECK (recommend BETWEEN 0 AND 10);
        ALTER TABLE subscribers ADD COLUMN min_score REAL
            CHECK (min_score IS NULL OR min_score BETWEEN 0 AND 1);
    """),
    ("inbound", """
        -- a message that bounced after the server accepted it (a DSN, read by `digestd
        -- inbound`), or at SMTP time: the rows bounced in a row are what bounces counts
        ALTER TABLE digests ADD COLUMN bounced_at TEXT;
        -- mail that came back and was handled, by a hash of its Message-ID (or of its
        -- bytes), so the same message twice changes nothing; never the address itself
        CREATE TABLE inbound_seen (
            key  TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            at   TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX inbound_seen_at ON inbound_seen(at);
        -- messages read, by what they were (bounce, delay, complaint, unsubscribe, ...):
        -- `digestd inbound` is a process per message, /metrics reads these
        CREATE TABLE inbound_counts (
            kind TEXT PRIMARY KEY,
            n    INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX digests_message_id ON digests(message_id);
    """),
    ("feedback", """
        -- "more like this" (+1) and "less like this" (-1) from the links in digests: one row
        -- per subscriber and paper, a later choice replaces the earlier, undo deletes it
        CREATE TABLE feedback (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            paper_pk      INTEGER NOT NULL REFERENCES papers(pk) ON DELETE CASCADE,
            value         INTEGER NOT NULL CHECK (value IN (-1, 1)),
            at            TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, paper_pk)
        ) WITHOUT ROWID;
        CREATE INDEX feedback_paper ON feedback(paper_pk);
    """),
    # a subscriber's seed papers (digestd subscribers seed, the preferences page): by id, with
    # the text the profile is built from, kept here so a seed outlives the paper's row
    ("seeds", """
        CREATE TABLE seeds (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            paper_id      TEXT NOT NULL,  -- canonical id, or title:<words> without one
            title         TEXT NOT NULL,
            abstract      TEXT NOT NULL DEFAULT '',
            origin        TEXT NOT NULL DEFAULT '',  -- the seed file's name, '' for ids
            added_at      TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, paper_id)
        ) WITHOUT ROWID;
    """),
    # what each paper of a digest was (digestd/ranking.py): 0 a rule match, 1 an "also
    # recommended" paper beyond the rules, 2 a rule match min_score left out of the email
    # (listed on the digest's page only, and never offered again)
    ("sent_kinds", """
        ALTER TABLE sent ADD COLUMN kind INTEGER NOT NULL DEFAULT 0 CHECK (kind IN (0, 1, 2));
    """),
    # a seed's text is kept once, however many readers gave the same paper: the daily build
    # reads every profile's seeds, and 30,000 profiles of 5 to 50 seeds name far fewer
    # distinct papers; a text no seed names any more goes with its last seed (the triggers)
    ("seed_texts", """
        CREATE TABLE seed_texts (
            id       INTEGER PRIMARY KEY,
            paper_id TEXT NOT NULL,
            title    TEXT NOT NULL,
            abstract TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX seed_texts_paper ON seed_texts(paper_id, title);
        INSERT INTO seed_texts (paper_id, title, abstract)
            SELECT DISTINCT paper_id, title, abstract FROM seeds;
        CREATE TABLE seeds_new (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            paper_id      TEXT NOT NULL,  -- canonical id, or title:<words> without one
            text_id       INTEGER NOT NULL REFERENCES seed_texts(id),
            origin        TEXT NOT NULL DEFAULT '',  -- the seed file's name, '' for ids
            added_at      TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, paper_id)
        ) WITHOUT ROWID;
        INSERT INTO seeds_new (subscriber_id, paper_id, text_id, origin, added_at)
            SELECT s.subscriber_id, s.paper_id, t.id, s.origin, s.added_at
            FROM seeds s JOIN seed_texts t
              ON t.paper_id = s.paper_id AND t.title = s.title AND t.abstract = s.abstract;
        DROP TABLE seeds;
        ALTER TABLE seeds_new RENAME TO seeds;
        CREATE INDEX seeds_text ON seeds(text_id);
        CREATE TRIGGER seed_texts_gone_delete AFTER DELETE ON seeds BEGIN
            DELETE FROM seed_texts WHERE id = old.text_id
                AND NOT EXISTS (SELECT 1 FROM seeds WHERE text_id = old.text_id);
        END;
        CREATE TRIGGER seed_texts_gone_update AFTER UPDATE OF text_id ON seeds
        WHEN old.text_id <> new.text_id BEGIN
            DELETE FROM seed_texts WHERE id = old.text_id
                AND NOT EXISTS (SELECT 1 FROM seeds WHERE text_id = old.text_id);
        END;
    """),
    # the semantic extra's vector of each seed text ([relevance] method = "semantic"): a
    # text's embedding never changes, so the build embeds only the texts it has not seen
    ("seed_vectors", """
        CREATE TABLE seed_vectors (
            text_id INTEGER NOT NULL REFERENCES seed_texts(id) ON DELETE CASCADE,
            model   TEXT NOT NULL,  -- the model and its size, e.g. wordllama/l2_supercat/256
            vector  BLOB NOT NULL,  -- float32, little-endian
            PRIMARY KEY (text_id, model)
        ) WITHOUT ROWID;
    """),
    # how a message body is kept (store/bodies.py): 0 as it goes out, 1 zlib, 2 zstd. Packing is done
    # in Python, so the bytes written per digest (the body is most of them, once in the WAL
    # and once more in this file) fall to about a quarter; rows from before stay 0, and the
    # digests_body_apart trigger still moves a raw message (packing 0) here
    ("body_packing", """
        ALTER TABLE digest_bodies ADD COLUMN packing INTEGER NOT NULL DEFAULT 0;
    """),
    # several `digestd run` against one store (PostgreSQL; on SQLite one instance holds them
    # all): `leases` are named leases (the leader's "poll", ...) held until `until` (seconds
    # since the epoch by the store's own clock, so the instances' clocks need not agree);
    # `build_shards` are the shards of one build round, decided by the leader and claimed
    # by any instance; `rate_windows` count the web app's requests per client and window
    ("cluster", """
        CREATE TABLE leases (
            name   TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            until  REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE build_shards (
            round    TEXT NOT NULL,     -- the build's "now" (ISO time), the same for every shard
            shard    INTEGER NOT NULL,  -- k of shards: subscribers whose id is k modulo shards
            shards   INTEGER NOT NULL,
            holder   TEXT,
            until    REAL,              -- the holder's lease (store clock, epoch seconds)
            done_at  TEXT,
            next_due TEXT,              -- built: the shard's earliest slot after the round
            fingerprint TEXT NOT NULL,  -- the schedule fingerprint when the round was opened
            PRIMARY KEY (round, shard)
        ) WITHOUT ROWID;
        CREATE TABLE rate_windows (
            key    TEXT NOT NULL,       -- what is counted, keyed ("feedback:<hash of client>")
            started INTEGER NOT NULL,   -- the window's start, epoch seconds
            hits   INTEGER NOT NULL,
            PRIMARY KEY (key, started)
        ) WITHOUT ROWID;
    """),
    # a digest's sent marks are found by the digest (the outbox's counts by kind, a digest's
    # page, and ON DELETE CASCADE from digests, which without an index read the whole
    # table for every digest of a deleted subscriber: 0.18 s a digest at 1.6 million
    # marks); by paper they are not needed (store.sent_among reads a subscriber's marks of
    # the newest papers off the primary key, and papers are never deleted). The build
    # appends to this index, where sent_paper took 17 inserts a digest all over it: half
    # the CPU of writing the marks (0.18 -> 0.08 ms a digest, 17 marks, 1.6 million kept)
    ("sent_by_digest", """
        DROP INDEX sent_paper;
        CREATE INDEX sent_digest ON sent(digest_id);
    """),
]

SCHEMA_VERSION = len(MIGRATIONS)
