"""The settings: one frozen dataclass per config.toml section (each field made with
`setting()`), the whole `Config`, and `settings()`/`toml_key()` to walk them."""

import dataclasses
import importlib.util
import ipaddress
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass


from .checks import (
    MAX_PAPERS_CAP,
    SOURCE_KINDS,
    check_address,
    check_announce_types,
    check_categories,
    check_dns_name,
    check_feedback_id,
    check_host,
    check_listen,
    check_networks,
    check_one_line,
    check_optional_address,
    check_optional_url,
    check_poll_every,
    check_rate,
    check_return_path,
    check_source_name,
    check_store_url,
    check_time_of_day,
    check_time_zone,
    check_url,
    derived,
    setting,
)


@dataclass(frozen=True)
class StoreConfig:
    path: str = setting("digestd.sqlite3", "The SQLite file that holds papers, subscribers and "
                        "the outbox. Relative paths are relative to the config file.", path=True)
    url: str = setting("", "A PostgreSQL database to use instead of the SQLite file: "
                       '"postgresql://user@host:5432/digestd", with libpq\'s parameters in the '
                       'query string ("?sslmode=verify-full"); libpq\'s environment variables '
                       "(PGHOST, PGSSLMODE, ...) fill in what it leaves out. Empty: the SQLite "
                       "file at path. See docs/postgresql.md.", check=check_store_url)
    password_file: str = setting("", "File holding the PostgreSQL password (for url). "
                                 "Alternatives: the environment variable DIGESTD_STORE_PASSWORD "
                                 'or the systemd credential "store-password"; else libpq\'s '
                                 "PGPASSWORD or ~/.pgpass.", path=True)
    keep_sent_days: int = setting(30, "Days the message of a sent digest stays in the store "
                                  "(for `digestd outbox` and a look at what went out); then "
                                  "`digestd run` drops it, keeping the row and the marks that "
                                  "stop a paper from being sent twice. 0 keeps them forever; "
                                  "at most 36500.", minimum=0, maximum=36500)
    leader_lease: float = setting(30.0, "With several `digestd run` on one PostgreSQL store "
                                  "(url): how long the lease of the leader, the one instance "
                                  "that polls the sources and decides which digests are due, "
                                  "lasts; it is renewed every third of it, and once a leader "
                                  'dies another takes over within this time plus a third, e.g. '
                                  '"30s"; at least "2s", at most "10m". With the SQLite file '
                                  "there is one instance and it leads; it holds a lease "
                                  "of this length named `running` while it runs, so that "
                                  "`digestd store copy` refuses a store in use.", minimum=2,
                                  maximum=600, duration=True)
    claim_lease: float = setting(120.0, "With several `digestd run` on one PostgreSQL store: "
                                 "how long a shard of a build or a batch of outbox rows stays "
                                 "claimed by an instance that no longer renews it (it renews "
                                 "every third of it while it works); then another instance "
                                 'builds or sends it, e.g. "2m"; at least "3s", at most "1h". '
                                 "With the SQLite file, a dead sender is known by its pid "
                                 "at once.", minimum=3, maximum=3600, duration=True)
    password: str = derived()

    @property
    def where(self) -> str:
        """The store for messages: the PostgreSQL URL (without a password) or the file."""
        if not self.url:
            return self.path
        from ..store import without_password

        return without_password(self.url)


@dataclass(frozen=True)
class DeliveryConfig:
    method: str = setting("", 'How digests leave: "smtp" or "outbox" (write .eml files into '
                          'outbox_dir). Empty means "smtp" when an [smtp] table is present, '
                          'else "outbox".', choices=("", "smtp", "outbox"))
    outbox_dir: str = setting("outbox", "Where the outbox method writes .eml files.", path=True)
    from_: str = setting("Paper digest <digest@example.org>", "The From address of every "
                         'digest: "digest@example.org" or "Name <digest@example.org>" (a name '
                         'with a comma in double quotes).', toml_key="from", check=check_address)
    reply_to: str = setting("", "Optional Reply-To address, written as `from` is.",
                            check=check_optional_address)
    max_attempts: int = setting(12, "Give up on a digest after this many failed SMTP "
                                "attempts (4xx and network errors are retried with backoff: 1, "
                                "2, 4 ... minutes, at most 6 hours apart; 12 tries span about 20 "
                                "hours, so a relay down for a night delays a digest, not loses "
                                "it); at most 100.", minimum=1, maximum=100)
    bounce_threshold: int = setting(3, "Hard bounces in a row (the server answered 5xx for the "
                                    "address, or a bounce report read by `digestd inbound` "
                                    "said the delivery failed for good) after which a "
                                    "subscriber is marked bouncing and gets no more digests.",
                                    minimum=1)
    feedback_id: str = setting("", "The sender id at the end of the Feedback-ID header that "
                               "Gmail's postmaster tools group complaints by: 5 to 15 letters, "
                               "digits, '-' or '_' (Google's advice). Empty means one made from "
                               "the From domain: its first label, at most 15 characters "
                               '(digest@example.org gives "example"; a shorter label than 5 '
                               'is padded: "ab.io" gives "ab-mail").', check=check_feedback_id)
    return_path: str = setting("", "The envelope sender (MAIL FROM) of every message, as "
                               '"bounces@example.org": each message goes out from '
                               '"bounces+TOKEN@example.org" (VERP: TOKEN, signed, names the '
                               "subscriber and the message), so `digestd inbound` knows who "
                               "bounced. The mail server must deliver that address, plus any "
                               '"+TOKEN", to `digestd inbound`. Its local part may have at most '
                               "27 characters (the token takes the rest of RFC 5321's 64). "
                               "Empty means the From address, without tokens.",
                               check=check_return_path)
    unsubscribe_mailto: str = setting("", "The mailto: address in List-Unsubscribe (next to the "
                                      "one-click https link). With return_path set, the mail "
                                      'goes to "LOCAL+TOKEN@DOMAIN" of this address (empty: '
                                      '"unsubscribe@" the From domain) with the subject '
                                      '"unsubscribe TOKEN", for `digestd inbound`; without '
                                      "return_path, to this address (empty: the From address).",
                                      check=check_optional_address)


@dataclass(frozen=True)
class SmtpConfig:
    host: str = setting("localhost", "The SMTP server (your relay or provider): a host name or "
                        "IP address.", check=check_host)
    port: int = setting(587, "The SMTP port: 587 for starttls, 465 for tls, 25 for none; at "
                        "most 65535.", minimum=1, maximum=65535)
    security: str = setting("starttls", '"starttls", "tls" (implicit TLS) or "none" (with a '
                            'username, only for a server on this machine: the password would '
                            'cross the network in clear text).',
                            choices=("starttls", "tls", "none"))
    username: str = setting("", "Login name; empty means no AUTH.")
    password_file: str = setting("", "File holding the SMTP password. Alternatives: the "
                                 "environment variable DIGESTD_SMTP_PASSWORD or the systemd "
                                 'credential "smtp-password".', path=True)
    timeout: float = setting(30.0, "Seconds to wait for the server at each step; at most 600.",
                             minimum=0.1, maximum=600)
    greeting_timeout: float = setting(300.0, "Seconds to wait for the server's greeting once "
                                      "connected: servers that pause before it (a tarpit, an "
                                      "anti-spam delay) are waited for, as RFC 5321 4.5.3.2.1 "
                                      "says (5 minutes); connecting itself is given `timeout`; "
                                      "at most 3600.", minimum=0.1, maximum=3600)
    data_timeout: float = setting(600.0, 'Seconds to wait for the answer to the end of a '
                                  'message (its final "."), which a server gives once it has '
                                  "the message safe: RFC 5321 4.5.3.2.6 says 10 minutes, and "
                                  "giving up sooner sends again a message the server may "
                                  "have taken; at most 3600.", minimum=0.1, maximum=3600)
    max_connections: int = setting(4, "Connections opened in parallel and reused across "
                                   "messages; at most 100.", minimum=1, maximum=100)
    max_per_second: float = setting(0.0, "Messages per second at most; 0 means no limit, "
                                    "else at least 0.001.", minimum=0, check=check_rate)
    ca_file: str = setting("", "A PEM file of certificate authorities to trust for the server's "
                           "certificate (a relay with a private CA); empty means the system's.",
                           path=True)
    password: str = derived()


@dataclass(frozen=True)
class WebConfig:
    listen: str = setting("127.0.0.1:8080", 'Address and port the web app listens on: '
                          '"HOST:PORT", "[IPv6]:PORT", ":PORT" (all interfaces) or '
                          '"unix:PATH" (a Unix socket).', check=check_listen)
    base_url: str = setting("http://127.0.0.1:8080", "The public URL of the web app, used in "
                            "every link in emails (unsubscribe, preferences): an absolute "
                            "http(s) URL; https for one-click unsubscribe to work at Gmail "
                            "and Yahoo.", check=check_url)
    secret_file: str = setting("", "File holding the secret that signs links. Alternatives: the "
                               'environment variable DIGESTD_SECRET or the systemd credential '
                               '"secret"; if none is set a secret is generated next to the store.',
                               path=True)
    enabled: bool = setting(True, "Serve the web app (subscribe, unsubscribe, preferences) "
                            "inside `digestd run`. Unsubscribe links in emails need it.")
    title: str = setting("Paper digest", "The name shown on the web pages and in confirmation "
                         "emails.", check=check_one_line)
    trusted_proxies: tuple = setting(("127.0.0.1", "::1"), "Addresses (or networks, e.g. "
                                     '"10.0.0.0/8") of reverse proxies whose X-Forwarded-For '
                                     "header names the real client, for the per-IP rate limit.",
                                     check=check_networks)
    subscribe_per_ip: int = setting(10, "Subscribe requests one client IP address (an IPv6 /64) "
                                    "may make per hour; more get 429 Too Many Requests.",
                                    minimum=1)
    mails_per_address: int = setting(3, "Confirmation or preferences-link emails one address "
                                     "gets per day at most, whoever asks (and never two within "
                                     "10 minutes).", minimum=1)


@dataclass(frozen=True)
class DigestConfig:
    max_papers: int = setting(25, "Papers shown in one email at most, the best first; the rest "
                              "are summarized as \"and N more: see all M papers\", linked to "
                              "the digest's web page, which lists every paper. At most "
                              f"{MAX_PAPERS_CAP}, so that the HTML stays under Gmail's 102 KB "
                              "clipping limit.", minimum=1, maximum=MAX_PAPERS_CAP)
    send_at: str = setting("07:00", "Default local time (HH:MM) of the digest for new "
                           "subscribers.", check=check_time_of_day)
    timezone: str = setting("UTC", 'Default IANA time zone for new subscribers, e.g. '
                            '"Europe/Berlin" (a name the web form offers: "Region/City" or '
                            '"UTC", not an alias such as "CET").', check=check_time_zone)
    frequency: str = setting("daily", "Default frequency for new subscribers.",
                             choices=("daily", "weekdays", "weekly"))
    templates_dir: str = setting("", "A folder of your own templates (it must exist); a file "
                                 "there overrides the bundled template of the same name.",
                                 path=True)
    archive_url: str = setting("", "An external archive to link to instead of digestd's own "
                               "digest pages (/d/TOKEN on web.base_url): \"View in browser\", "
                               '"see all N papers" and the Archived-At header then use this '
                               "URL, with {token} (signed, naming the subscriber and the "
                               "digest) and {period} filled in. Empty (the default) means "
                               "digestd's own pages.", check=check_optional_url)
    max_lateness: float = setting(12 * 3600.0, "A digest that could not go out on time (the "
                                  "daemon was down) is still sent up to this long after its "
                                  "time; later, it is merged into the next one instead, e.g. "
                                  '"12h"; at least "1m", at most "30d".', minimum=60,
                                  maximum=30 * 86400, duration=True)
    build_workers: int = setting(0, "Processes that build (match and render) digests while "
                                 "the sender delivers them; once done, each helps send over a "
                                 "share of smtp.max_connections (unless smtp.max_per_second is "
                                 "set). 0 means one per CPU core but one, at least 1. A second "
                                 "process starts only for 4,000 subscribers or more. At "
                                 "most 64.", minimum=0, maximum=64)
    check_every: float = setting(60.0, "How often `digestd run` builds the digests that are due "
                                 'and sends the outbox, e.g. "1m"; at most "1d" and less than '
                                 "max_lateness.", minimum=1, maximum=86400, duration=True)


@dataclass(frozen=True)
class LogConfig:
    level: str = setting("", "Log level. Empty: info for the services (`digestd run`, "
                         "`digestd web`), warning for the other commands, whose summaries "
                         "say what they did; --log-level overrides it.",
                         choices=("", "debug", "info", "warning", "error"))

    def level_for(self, service: bool) -> str:
        """The level a command logs at: the configured one, else info for a service (`run`,
        `web`) and warning for an interactive command."""
        return self.level or ("info" if service else "warning")


@dataclass(frozen=True)
class SourceConfig:
    name: str = setting("", "A unique name of letters, digits, \"-\", \"_\" and \".\"; shown "
                        "in digests and usable in rules as source:NAME.", check=check_source_name)
    kind: str = setting("", "The source kind.", choices=SOURCE_KINDS)
    url: str = setting("", "Override the endpoint (a mirror, a test server), or for kind "
                       '"feed" the feed URL or a local file path. For arxiv-rss, biorxiv and '
                       "medrxiv it is a base to which digestd appends the categories or the "
                       'API path ("https://rss.arxiv.org/rss" + "/cs.LG+stat.ML"); for '
                       "arxiv-api and hf-daily, the API's address.")
    every: float = setting(0.0, 'How often to poll, e.g. "30m", "6h", "1d". Empty or 0 means '
                           "the kind's default: arXiv kinds four times a day, shortly after "
                           "arXiv's announcements (00:30, 06:30, 12:30, 20:30 New York time); "
                           'others hourly (the bundled sample: daily). At least "1m", at most '
                           '"30d"; a number alone is seconds.',
                           minimum=0, maximum=30 * 86400, duration=True, check=check_poll_every)
    enabled: bool = setting(True, "Set to false to keep a source configured but not polled.")
    timeout: float = setting(120.0, 'The most one poll may take, e.g. "90s" or "5m": every '
                             "request, retry and wait between retries included (waiting for "
                             "digestd's own turn at a busy host is not counted). A server that "
                             "answers too slowly is cut off and the poll counts as an error "
                             "(reason timeout); nothing is lost, the next poll asks again. At "
                             'most "1h".', positive=True, maximum=3600, duration=True)
    categories: tuple = setting((), 'arXiv categories, e.g. ["cs.LG", "stat.ML"]: an archive '
                                '("hep-th") or an archive and subject class ("astro-ph.CO").',
                                kinds=("arxiv-rss",), check=check_categories)
    announce_types: tuple = setting((), "Which arXiv announcements to keep: new, cross, "
                                    "replace, replace-cross (a replacement is a new version of "
                                    "an older paper). Empty means the kind's default: arxiv-rss "
                                    'keeps ["new", "cross"]; feed keeps every item its feed '
                                    "lists, and applies this only to the items of an arXiv feed "
                                    "(a replacement of a paper already stored is never new).",
                                    kinds=("arxiv-rss", "feed"), check=check_announce_types)
    tex: bool = setting(False, "The feed writes TeX in titles, abstracts and names (as physics "
                        "journals do): convert it to text. arXiv feeds are recognized and "
                        "converted without it.", kinds=("feed",))
    query: str = setting("", 'arXiv API search query, e.g. "cat:cs.LG AND abs:diffusion".',
                         kinds=("arxiv-api",))
    max_results: int = setting(100, "Papers to fetch per poll at most; at most 10000.",
                               kinds=("arxiv-api", "biorxiv", "medrxiv", "hf-daily"), minimum=1,
                               maximum=10000)
    days: int = setting(2, "How many days back a poll looks; at most 30.",
                        kinds=("hf-daily", "biorxiv", "medrxiv"), minimum=1, maximum=30)


@dataclass(frozen=True)
class DkimConfig:
    selector: str = setting("", "DKIM selector: the key is published as a TXT record at "
                            "SELECTOR._domainkey.DOMAIN. Empty means digests are not signed.",
                            check=check_dns_name)
    domain: str = setting("", "The signing domain (d=); empty means the From domain.",
                          check=check_dns_name)
    private_key_file: str = setting("", "The private key (PEM, RSA; or a base64 ed25519 key) "
                                    'file. Alternative: the systemd credential "dkim-key".',
                                    path=True)
    private_key: bytes = derived(b"")


IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}


def check_folder(value: str) -> str:
    if not value.strip() or any(unicodedata.category(c)[0] == "C" for c in value):
        raise ValueError('must be a folder name such as "INBOX" or "bounces" (one line, not '
                         "empty)")
    return value


def check_optional_host(value: str) -> str:
    return check_host(value) if value else value


def is_loopback(host: str) -> bool:
    """localhost or a loopback address: where a password may go over IMAP without TLS."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or \
            host.lower().rstrip(".").endswith(".localhost")


@dataclass(frozen=True)
class InboundConfig:
    imap_host: str = setting("", "The IMAP server of the mailbox that receives the mail that "
                             "comes back (bounces, complaints, unsubscribe mails): `digestd "
                             "run` reads it every `every`. Empty, or no [inbound] table, means "
                             "no mailbox is read.", check=check_optional_host)
    imap_port: int = setting(0, "The IMAP port; 0 means the usual one for imap_security: 993 "
                             "for tls, 143 for starttls and none. At most 65535.", minimum=0,
                             maximum=65535)
    imap_security: str = setting("tls", '"tls" (implicit TLS), "starttls" or "none" (only '
                                 "for a server on this machine: 127.0.0.1, ::1 or localhost).",
                                 choices=("tls", "starttls", "none"))
    username: str = setting("", "The mailbox's login name; required with imap_host.",
                            check=check_one_line)
    password_file: str = setting("", "File holding the IMAP password. Alternatives: the "
                                 "environment variable DIGESTD_IMAP_PASSWORD or the systemd "
                                 'credential "imap-password".', path=True)
    folder: str = setting("INBOX", "The folder read. digestd handles its unread messages and "
                          'moves each one it handled into "digestd-processed" (one it could '
                          'not handle into "digestd-failed"), both made when first needed; a '
                          "message marked read is left alone.", check=check_folder)
    every: float = setting(300.0, 'How often `digestd run` reads the mailbox, e.g. "5m"; at '
                           'least "30s", at most "1d".', minimum=30, maximum=86400,
                           duration=True)
    timeout: float = setting(60.0, "Seconds to wait for the server at each step; at most 600.",
                             minimum=1, maximum=600)
    ca_file: str = setting("", "A PEM file of certificate authorities to trust for the "
                           "server's certificate (a private CA); empty means the system's.",
                           path=True)
    password: str = derived()

    @property
    def enabled(self) -> bool:
        return bool(self.imap_host)

    @property
    def port(self) -> int:
        return self.imap_port or IMAP_PORTS[self.imap_security]


def check_relevance_method(value: str) -> str:
    """"semantic" needs the optional extra installed (its model ships in the wheel)."""
    if value == "semantic" and importlib.util.find_spec("wordllama") is None:
        raise ValueError('must be "tfidf" unless the semantic extra is installed',
                         "pip install 'digestd[semantic]'")
    return value


@dataclass(frozen=True)
class RelevanceConfig:
    method: str = setting("tfidf", "How the daily build compares each day's papers with a "
                          "reader's seed papers and \"more/less like this\" marks, for the "
                          "readers who have them: \"tfidf\" (word statistics of the day's "
                          "titles and abstracts; deterministic; the why line can name shared "
                          "words) or \"semantic\" (WordLlama embeddings, from the optional "
                          "extra `pip install 'digestd[semantic]'`, whose model ships inside "
                          "the package: nothing is downloaded). Readers without seeds or liked "
                          "papers get the rule order either way.", choices=("tfidf", "semantic"),
                          check=check_relevance_method)


SECTIONS: dict[str, type] = {
    "store": StoreConfig,
    "delivery": DeliveryConfig,
    "smtp": SmtpConfig,
    "web": WebConfig,
    "digest": DigestConfig,
    "log": LogConfig,
    "dkim": DkimConfig,
    "inbound": InboundConfig,
    "relevance": RelevanceConfig,
}


@dataclass(frozen=True)
class Config:
    path: Path | None = None  # the file it came from; None for the embedded defaults
    store: StoreConfig = StoreConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    smtp: SmtpConfig | None = None
    web: WebConfig = WebConfig()
    digest: DigestConfig = DigestConfig()
    log: LogConfig = LogConfig()
    dkim: DkimConfig = DkimConfig()
    inbound: InboundConfig = InboundConfig()
    relevance: RelevanceConfig = RelevanceConfig()
    sources: tuple[SourceConfig, ...] = ()
    # what `config check` warns about (see _warnings), each "file:line: message"
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def delivery_method(self) -> str:
        return self.delivery.method or ("smtp" if self.smtp else "outbox")


def settings(cls: type) -> list[dataclasses.Field]:
    """The declared settings of a section class, in order (derived fields left out)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("derived")]


def toml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("toml_key") or f.name


