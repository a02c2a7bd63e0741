"""Load and validate config.toml into frozen dataclasses; the only reader of TOML.

Every setting is declared once, as a dataclass field made with `setting()`: its
default, its help text and its constraints live there. The loader, the
`config.example.toml` generator and the tests all read that one declaration.
"""

import dataclasses
import errno
import importlib.util
import ipaddress
import math
import os
import re
import secrets as _secrets
import sys
import typing
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError, StoreError
from .tokens import MAIL_TOKEN_MAX
from .validators import EmailNotValidError, is_time_zone, mailbox

CONFIG_ENV = "DIGESTD_CONFIG"
# Gmail clips an HTML part past 102 KB and hides the rest (the footer's unsubscribe link
# too): with the longest abstracts of the corpus, 50 papers stay near 80 KB
# (tests/test_render.py renders them)
MAX_PAPERS_CAP = 50
SOURCE_KINDS = ("sample", "feed", "arxiv-rss", "arxiv-api", "hf-daily", "biorxiv", "medrxiv")
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")


def setting(default: Any, help: str, *, choices: tuple = (), kinds: tuple = (),
            toml_key: str | None = None, path: bool = False, minimum: float | None = None,
            maximum: float | None = None, positive: bool = False, duration: bool = False,
            check: Callable[[Any], Any] | None = None) -> Any:
    """Declare one setting: its default, the help the docs show, and its constraints.

    `positive`: more than 0. `maximum`: the most allowed; the help says "at most N" (a
    test checks). `duration`: seconds, written in TOML as a number or as "90s", "30m",
    "12h", "1d". `check`: a function of the value that returns it (normalized) or raises
    ValueError("must be ...", optional detail); the loader adds the key, line and value.
    """
    meta = {"help": help, "choices": choices, "kinds": kinds, "toml_key": toml_key,
            "path": path, "minimum": minimum, "maximum": maximum, "positive": positive,
            "duration": duration, "check": check}
    return field(default=default, metadata=meta)


# -- checks of single settings (see setting(check=...)) ---------------------------------------

ARXIV_ARCHIVES = ("cs", "econ", "eess", "math", "physics", "q-bio", "q-fin", "stat", "astro-ph",
                  "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math-ph", "nlin",
                  "nucl-ex", "nucl-th", "quant-ph")
_ARXIV_CATEGORY = re.compile(r"(?P<archive>[a-z]+(?:-[a-z]+)?)(?:\.[A-Za-z]+(?:-[A-Za-z]+)?)?")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?")
_LISTEN = re.compile(r"\[(?P<ip6>[^\]]*)\]:(?P<port6>\d+)|(?P<host>[^:\[\]]*):(?P<port>\d+)")


def _unprintable(text: str) -> bool:
    """Whitespace or a control character: nothing a URL, host or name may hold."""
    return any(c.isspace() or unicodedata.category(c)[0] == "C" for c in text)


def check_address(value: str) -> str:
    """An address setting: "digest@example.org" or "Paper digest <digest@example.org>",
    checked as the web form checks subscribers' addresses. An international domain is
    rewritten in its ASCII form, which is what goes into the headers and the envelope."""
    try:
        _name, address = mailbox(value)
    except EmailNotValidError as e:
        raise ValueError('must be an email address such as "digest@example.org" or '
                         '"Paper digest <digest@example.org>"', str(e)) from None
    written = (value.rpartition("<")[2].partition(">")[0] if "<" in value else value).strip()
    return value.replace(written, address) if written != address and not written.isascii() \
        else value


def check_optional_address(value: str) -> str:
    return check_address(value) if value else value


def _plain_address(value: str, what: str) -> str:
    """A bare addr-spec whose local part leaves room for "+TOKEN" (RFC 5321: 64 octets)."""
    example = f'must be a plain ASCII address such as "{what}@example.org"'
    if "<" in value or " " in value.strip() or not value.isascii():
        raise ValueError(example, "without a name or spaces")
    try:
        check_address(value)
    except ValueError as e:
        raise ValueError(example, *e.args[1:]) from None
    local = value.strip().rpartition("@")[0]
    if "+" in local:
        raise ValueError(example, 'without a "+" of its own: digestd adds "+TOKEN" to it')
    longest = 64 - 1 - MAIL_TOKEN_MAX
    if len(local) > longest:
        raise ValueError(example, f"its local part ({local!r}) has {len(local)} characters, at "
                         f"most {longest} leave room for \"+TOKEN\" ({MAIL_TOKEN_MAX} "
                         "characters) within RFC 5321's 64")
    return value.strip()


def check_return_path(value: str) -> str:
    return _plain_address(value, "bounces") if value else value


def check_mailto_address(value: str) -> str:
    """unsubscribe_mailto: as from (a name is ignored); its local part must take "+TOKEN"."""
    if not value:
        return value
    check_address(value)
    address = value.rpartition("<")[2].partition(">")[0] if "<" in value else value
    _plain_address(address.strip(), "unsubscribe")
    return value


def check_feedback_id(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9_-]{1,30}", value):
        raise ValueError("must be a short id of letters, digits, '-' and '_' (Google advises "
                         "5 to 15 characters), such as \"digestd\"")
    return value


def check_url(value: str, *, query: bool = False) -> str:
    """An absolute http(s) URL with a host, in ASCII, without whitespace or control
    characters (it goes into email headers and every link)."""
    must = 'must be an absolute http(s) URL such as "https://digest.example.org"'
    if _unprintable(value):
        raise ValueError(must, "it holds whitespace or a control character")
    if not value.isascii():
        raise ValueError(must, "write it in ASCII: an international domain in its xn-- form, "
                               "other characters %-encoded")
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        raise ValueError(must, str(e)) from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(must)
    if not query and (url.query or url.fragment or value.endswith(("?", "#"))):
        raise ValueError(must, "without ? or #: links are made by adding a path to it")
    return value


def check_optional_url(value: str) -> str:
    return check_url(value, query=True) if value else value


def check_listen(value: str) -> str:
    """web.listen: what web.parse_listen takes, with a port of 0..65535 (0: any free port)."""
    must = 'must be "HOST:PORT", "[IPv6]:PORT", ":PORT" or "unix:PATH", e.g. "127.0.0.1:8080"'
    if value.startswith("unix:"):
        if not value[5:] or "\x00" in value:
            raise ValueError(must, "the socket path is missing")
        return value
    m = _LISTEN.fullmatch(value)
    if not m or _unprintable(value):
        raise ValueError(must)
    port = int(m["port6"] or m["port"])
    if port > 65535:
        raise ValueError(must, f"port {port} is out of range 0..65535")
    if m["ip6"] is not None:
        try:
            ipaddress.IPv6Address(m["ip6"])
        except ValueError:
            raise ValueError(must, f'"{m["ip6"]}" is not an IPv6 address') from None
    elif m["host"]:
        host = m["host"]
        numeric = re.fullmatch(r"[\d.]+", host)
        if not _HOSTNAME.fullmatch(host) or (numeric and not _ipv4(host)):
            raise ValueError(must, f'"{host}" is not a host name or IPv4 address')
    return value


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def check_host(value: str) -> str:
    """A host name or an IP address (IPv6 without brackets)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise ValueError('must be a host name or IP address such as "smtp.example.org"',
                         "no spaces, line breaks, brackets or ports")
    return value


def check_source_name(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9._-]+", value):
        raise ValueError('may hold only the letters a-z and A-Z, digits, "-", "_" and "." (it '
                         "appears in logs, mail headers and rules as source:NAME)")
    return value


def check_categories(value: tuple) -> tuple:
    must = 'must be arXiv categories such as "cs.LG", "math.GT", "hep-th" or "astro-ph.CO"'
    for category in value:
        m = _ARXIV_CATEGORY.fullmatch(category)
        if not m:
            raise ValueError(must, f'"{category}" is not of that form')
        if m["archive"] not in ARXIV_ARCHIVES:
            raise ValueError(must, f'"{m["archive"]}" is not an arXiv archive; they are '
                                   f'{", ".join(ARXIV_ARCHIVES)}')
    return value


def check_networks(value: tuple) -> tuple:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError('must be IP addresses or networks such as "127.0.0.1" or '
                             '"10.0.0.0/8"', f'"{item}" is not one') from None
    return value


def check_one_line(value: str) -> str:
    if any(unicodedata.category(c)[0] == "C" for c in value):
        raise ValueError("must be one line of text without control characters")
    return value


def check_dns_name(value: str) -> str:
    """A DKIM selector or signing domain: ASCII DNS labels."""
    if value and not _HOSTNAME.fullmatch(value):
        raise ValueError('must be a DNS name such as "digest" or "example.org" (ASCII letters, '
                         'digits, "-", "_" and dots)')
    return value


def check_time_of_day(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError('must be a time as "HH:MM"')
    return value


def check_announce_types(value: tuple) -> tuple:
    if any(v not in ANNOUNCE_TYPES for v in value):
        raise ValueError(f"may hold {', '.join(ANNOUNCE_TYPES)}")
    return value


def check_time_zone(value: str) -> str:
    if not is_time_zone(value):
        raise ValueError('must be an IANA time zone name such as "Europe/Berlin" (or "UTC"), '
                         "as the web form offers them")
    return value


def check_rate(value: float) -> float:
    # a rate near 0 makes the claim on the outbox rows last for ages (deliver/sender.py's lease)
    if 0 < value < 0.001:
        raise ValueError("must be 0 (no limit) or at least 0.001")
    return value


def derived(default: Any = "") -> Any:
    """A field computed by the loader (a resolved secret, say), never read from TOML."""
    return field(default=default, repr=False, compare=False, metadata={"derived": True})


def check_store_url(value: str) -> str:
    """Empty, or a libpq URL of a PostgreSQL database."""
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError('must be empty or a PostgreSQL URL "postgresql://user@host/database"')
    return value


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
                                  "there is one instance and it leads.", minimum=2,
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
        from .store import without_password

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
    max_attempts: int = setting(8, "Give up on a digest after this many failed SMTP attempts "
                                "(4xx and network errors are retried with backoff); at most 100.",
                                minimum=1, maximum=100)
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
    security: str = setting("starttls", '"starttls", "tls" (implicit TLS) or "none".',
                            choices=("starttls", "tls", "none"))
    username: str = setting("", "Login name; empty means no AUTH.")
    password_file: str = setting("", "File holding the SMTP password. Alternatives: the "
                                 "environment variable DIGESTD_SMTP_PASSWORD or the systemd "
                                 'credential "smtp-password".', path=True)
    timeout: float = setting(30.0, "Seconds to wait for the server at each step; at most 600.",
                             minimum=0.1, maximum=600)
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
                           'others hourly (the bundled sample: daily). At most "30d".',
                           minimum=0, maximum=30 * 86400, duration=True)
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


# -- loading -----------------------------------------------------------------------------------

def find_config(explicit: str | os.PathLike | None = None) -> Path | None:
    """The config file to use: --config, $DIGESTD_CONFIG, ./digestd.toml,
    $CONFIGURATION_DIRECTORY/config.toml (systemd); None means embedded defaults."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    candidates = [Path("digestd.toml")]
    if os.environ.get("CONFIGURATION_DIRECTORY"):
        candidates.append(Path(os.environ["CONFIGURATION_DIRECTORY"]) / "config.toml")
    return next((c for c in candidates if c.is_file()), None)


def load_config(path: str | os.PathLike | None = None, *, env: typing.Mapping[str, str] | None
                = None) -> Config:
    """Read and validate a config file; None gives the embedded defaults.

    Raises ConfigError naming the file, line and key.
    """
    env = os.environ if env is None else env
    if path is None:
        return _finish(Config(sources=(default_source(),)), None, env)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found (create one with `digestd init`)",
                          path=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file: {e}", path=str(path)) from None
    return parse_config(text, path, env=env)


def parse_config(text: str, path: Path, *, env: typing.Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    locate = _Locator(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        msg = re.sub(r"\s*\(at line.*\)", "", str(e))
        raise ConfigError(f"invalid TOML: {msg}" + (f" (column {m[2]})" if m else ""),
                          path=str(path), line=int(m[1]) if m else None) from None

    def fail(message: str, section: str, key: str | None = None, index: int | None = None):
        line = locate(section, index, key)
        raise ConfigError(message, path=str(path), line=line, key=key)

    values: dict[str, Any] = {}
    errors: list[ConfigError] = []  # every mistake, so that one check names them all
    for section, table in data.items():
        if section == "sources":
            continue
        try:
            cls = SECTIONS.get(section)
            if cls is None:
                fail(f'unknown section [{section}] (sections: '
                     f'{", ".join([*SECTIONS, "sources"])})', section)
            if not isinstance(table, dict):
                fail(f"{section} must be a table", section)
        except ConfigError as e:
            errors.append(e)
            continue
        built = _build(cls, table, section, None, fail, errors)
        if built is not None:
            values[section] = built

    sources_data = data.get("sources", [])
    if not isinstance(sources_data, list):
        errors.append(_caught(fail, "sources must be an array of tables: write [[sources]]",
                              "sources"))
        sources_data = []
    sources = []
    names: set[str] = set()
    for i, table in enumerate(sources_data):
        if not isinstance(table, dict):
            errors.append(_caught(fail, "sources must be an array of tables: write [[sources]]",
                                  "sources"))
            continue
        src = _build(SourceConfig, table, "sources", i, fail, errors)
        if src is None:
            continue
        try:
            sources.append(_check_source(src, table, i, names, fail))
        except ConfigError as e:
            errors.append(e)
    if errors:
        raise _all_of(errors)

    config = Config(path=path.resolve(), sources=tuple(sources), **values)
    if config.delivery.method == "smtp" and config.smtp is None:
        config = dataclasses.replace(config, smtp=SmtpConfig())
    digest = config.digest
    if digest.check_every >= digest.max_lateness:
        written = data.get("digest", {})
        fail(f'digest.check_every ("{duration_text(digest.check_every)}") must be less than '
             f'digest.max_lateness ("{duration_text(digest.max_lateness)}"): a digest due '
             "between two checks would be merged into the next one instead of sent",
             "digest", "check_every" if "check_every" in written or "max_lateness" not in
             written else "max_lateness")
    _check_inbound(config.inbound, data.get("inbound", {}), fail)
    mailto = config.delivery.unsubscribe_mailto
    if config.delivery.return_path and mailto:
        try:
            check_mailto_address(mailto)
        except ValueError as e:
            fail(f"delivery.unsubscribe_mailto {e.args[0]}"
                 + (f" ({e.args[1]})" if len(e.args) > 1 else "")
                 + ' once delivery.return_path is set (it becomes "LOCAL+TOKEN@DOMAIN")',
                 "delivery", "unsubscribe_mailto")
    config = _finish(config, path, env, locate)
    return dataclasses.replace(config, warnings=_warnings(config, path, locate))


def _check_inbound(inbound: InboundConfig, written: dict, fail) -> None:
    """What [inbound] needs beyond its keys' own checks; raises ConfigError."""
    if not inbound.enabled:
        return
    if not inbound.username:
        fail("inbound.username is required with inbound.imap_host (the mailbox's login name)",
             "inbound", "username" if "username" in written else "imap_host")
    if inbound.imap_security == "none" and not is_loopback(inbound.imap_host):
        fail(f'inbound.imap_security "none" sends the password in clear text: it is allowed '
             f'only for a server on this machine (127.0.0.1, ::1, localhost), not '
             f'"{inbound.imap_host}"; use "tls" or "starttls"', "inbound", "imap_security")


def _finish(config: Config, path: Path | None, env: typing.Mapping[str, str],
            locate: "_Locator | None" = None) -> Config:
    """Resolve relative paths against the config file's folder, check that the files and
    folders named exist, and read secrets."""
    def fail(message: str, section: str, key: str) -> typing.NoReturn:
        line = locate(section, None, key) if locate else None
        raise ConfigError(message, path=str(path) if path else None, line=line, key=key)

    base = config.base_dir
    replaced = {}
    for name in ("store", "delivery", "smtp", "web", "digest", "dkim", "inbound"):
        section = getattr(config, name)
        if section is None:
            continue
        changes = {}
        for f in settings(type(section)):
            value = getattr(section, f.name)
            if f.metadata.get("path") and value:
                changes[f.name] = str((base / os.path.expanduser(value)).resolve())
        if changes:
            replaced[name] = dataclasses.replace(section, **changes)
    config = dataclasses.replace(config, **replaced)
    # a feed given as a local file path is relative to the config file, like every path
    sources = tuple(
        dataclasses.replace(s, url=str((base / os.path.expanduser(s.url)).resolve()))
        if s.kind == "feed" and s.url and "://" not in s.url and not os.path.isabs(s.url)
        else s for s in config.sources)
    config = dataclasses.replace(config, sources=sources)
    templates = config.digest.templates_dir
    if templates and not os.path.isdir(templates):
        fail(f'digest.templates_dir must be a folder, got "{templates}": '
             + ("it is not a folder" if os.path.exists(templates) else "it does not exist"),
             "digest", "templates_dir")

    def secret(credential: str, section: str, key: str, value: str, env_var: str) -> str | None:
        try:
            return read_secret(credential, value, env_var, env, path)
        except ConfigError as e:
            fail(f"{section}.{key}: {e.message}", section, key)

    if config.store.url:
        password = secret("store-password", "store", "password_file",
                          config.store.password_file, "DIGESTD_STORE_PASSWORD")
        config = dataclasses.replace(config, store=dataclasses.replace(
            config.store, password=password or ""))
    if config.smtp is not None:
        if config.smtp.ca_file:
            try:
                with open(config.smtp.ca_file, "rb"):
                    pass
            except OSError as e:
                fail(f'smtp.ca_file must be a readable file, got "{config.smtp.ca_file}": '
                     f"{e.strerror}", "smtp", "ca_file")
        password = secret("smtp-password", "smtp", "password_file", config.smtp.password_file,
                          "DIGESTD_SMTP_PASSWORD")
        config = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp,
                                                                      password=password or ""))
    if config.inbound.enabled:
        if config.inbound.ca_file:
            try:
                with open(config.inbound.ca_file, "rb"):
                    pass
            except OSError as e:
                fail(f'inbound.ca_file must be a readable file, got "{config.inbound.ca_file}": '
                     f"{e.strerror}", "inbound", "ca_file")
        password = secret("imap-password", "inbound", "password_file",
                          config.inbound.password_file, "DIGESTD_IMAP_PASSWORD")
        config = dataclasses.replace(config, inbound=dataclasses.replace(
            config.inbound, password=password or ""))
    if config.web.secret_file:  # read when the web app starts or a digest is built: check now
        secret("secret", "web", "secret_file", config.web.secret_file, "")
    if config.dkim.selector:
        key = secret("dkim-key", "dkim", "private_key_file", config.dkim.private_key_file, "")
        if not key:
            fail("dkim.selector is set but there is no key: set dkim.private_key_file",
                 "dkim", "selector")
        config = dataclasses.replace(config, dkim=dataclasses.replace(
            config.dkim, private_key=key.encode() + b"\n"))
    return config


def check_dkim_key(config: Config, path: str | os.PathLike | None = None) -> None:
    """Sign a test message with the DKIM key, as `send` does before its first digest;
    raises ConfigError naming the key file (and `path`, the config file as the user named
    it). Not part of loading: it costs a signature."""
    if not config.dkim.selector:
        return
    from email.utils import parseaddr

    from .mime import DkimSigner

    domain = config.dkim.domain or parseaddr(config.delivery.from_)[1].rpartition("@")[2]
    try:
        DkimSigner(config.dkim.selector, domain, config.dkim.private_key)
    except Exception as e:  # noqa: BLE001 - dkimpy raises several types for a bad key
        line = None
        if config.path:
            locate = _Locator(config.path.read_text(encoding="utf-8"))
            line = locate("dkim", None, "private_key_file")
        raise ConfigError(f"dkim.private_key_file: the key cannot sign: {e}",
                          path=str(path or config.path or "") or None, line=line,
                          key="private_key_file") from None


def unsubscribe_warning(config: Config) -> str | None:
    """Why the one-click unsubscribe link in digests sent by SMTP will not work, if it will
    not: `config check` shows it and `send` logs it once."""
    if config.delivery_method != "smtp":
        return None
    url = urlsplit(config.web.base_url)
    host = (url.hostname or "").lower()
    try:
        local = ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(
            host).is_unspecified
    except ValueError:
        local = host == "localhost" or host.endswith(".localhost")
    problems = ([] if url.scheme == "https" else ["is not https"]) + (
        ["points at this machine (subscribers cannot open it)"] if local else [])
    if not problems:
        return None
    return (f"web.base_url {config.web.base_url} {' and '.join(problems)}: the unsubscribe "
            "links in digests sent by SMTP need a public https URL (Gmail and Yahoo honour "
            "one-click unsubscribe, RFC 8058, only over https)")


def _warnings(config: Config, path: Path, locate: "_Locator") -> tuple[str, ...]:
    """What `config check` warns about: allowed, but probably not what was meant."""
    def where(section: str, key: str) -> str:
        line = locate(section, None, key)
        return f"{path}:{line}: " if line else f"{path}: "

    out = []
    if config.smtp is not None and config.smtp.username and not config.smtp.password:
        out.append(where("smtp", "username") + "smtp.username is set but no password is: set "
                   "smtp.password_file, the environment variable DIGESTD_SMTP_PASSWORD or the "
                   'systemd credential "smtp-password" (else AUTH is tried with an empty '
                   "password)")
    inbound = config.inbound
    if inbound.enabled and not inbound.password:
        out.append(where("inbound", "imap_host") + "inbound.imap_host is set but no IMAP "
                   "password is: set inbound.password_file, the environment variable "
                   'DIGESTD_IMAP_PASSWORD or the systemd credential "imap-password" (else '
                   "`digestd run` reads no mailbox)")
    sender_id = config.delivery.feedback_id
    if sender_id and not 5 <= len(sender_id) <= 15:
        out.append(where("delivery", "feedback_id") + f'delivery.feedback_id "{sender_id}" has '
                   f"{len(sender_id)} characters: Google's Feedback-ID advice is 5 to 15")
    unsubscribe = unsubscribe_warning(config)
    if unsubscribe:
        out.append(where("web", "base_url") + unsubscribe)
    return tuple(out)


def default_source() -> SourceConfig:
    """The source used when a config names none: the bundled sample papers."""
    return SourceConfig(name="sample", kind="sample")



def _caught(fail, message: str, section: str) -> ConfigError:
    """The ConfigError that `fail` raises, as a value."""
    try:
        fail(message, section)
    except ConfigError as e:
        return e
    raise AssertionError("fail() must raise")  # pragma: no cover


def _check_source(src: SourceConfig, table: dict, i: int, names: set[str],
                  fail) -> SourceConfig:
    """What one [[sources]] table needs beyond its keys' own checks; raises ConfigError."""
    for key in ("name", "kind"):
        if not getattr(src, key):
            fail(f"sources.{key} is required", "sources", None, i)
    if src.name in names:
        fail(f'sources.name "{src.name}" is used twice', "sources", "name", i)
    names.add(src.name)
    for f in settings(SourceConfig):
        kinds = f.metadata["kinds"]
        if kinds and src.kind not in kinds and toml_key(f) in table:
            fail(f"sources.{toml_key(f)} does not apply to kind \"{src.kind}\" "
                 f"(only to {', '.join(kinds)})", "sources", toml_key(f), i)
    if src.kind == "arxiv-rss" and not src.categories:
        fail('sources.categories is required for kind "arxiv-rss"', "sources", None, i)
    if src.kind == "arxiv-api" and not src.query:
        fail('sources.query is required for kind "arxiv-api"', "sources", None, i)
    if src.kind == "feed" and not src.url:
        fail('sources.url is required for kind "feed"', "sources", None, i)
    return src

def _build(cls: type, table: dict, section: str, index: int | None, fail,
           errors: list[ConfigError] | None = None) -> Any:
    """The dataclass `cls` from a TOML table. With `errors`, every key's mistake is added
    to it (and None returned) instead of raising at the first, so that one `config check`
    names them all."""
    known = {toml_key(f): f for f in settings(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    failed = False
    for key, raw in table.items():
        try:
            f = known.get(key)
            if f is None:
                fail(f'unknown key "{section}.{key}" (known: {", ".join(known)})', section, key,
                     index)
            kwargs[f.name] = _coerce(raw, hints[f.name], f, f"{section}.{key}",
                                     lambda msg, key=key: fail(msg, section, key, index))
        except ConfigError as e:
            if errors is None:
                raise
            errors.append(e)
            failed = True
    return None if failed else cls(**kwargs)


def _all_of(errors: list[ConfigError]) -> ConfigError:
    """One error for several: the first's file, line and key; every message, in file order."""
    ordered = sorted(errors, key=lambda e: e.line or 0)
    first = ordered[0]
    if len(ordered) == 1:
        return first
    combined = ConfigError(first.message, path=first.path, line=first.line, key=first.key)
    combined.args = ("\n".join(str(e) for e in ordered)
                     + f"\n({len(ordered)} mistakes in the config)",)
    return combined


def _coerce(raw: Any, typ: Any, f: dataclasses.Field, name: str, fail) -> Any:
    def got() -> str:
        # as TOML writes it; a line break or other control character shown escaped
        def shown(x: Any) -> str:
            return f'"{x}"' if isinstance(x, str) and x.isprintable() else repr(x)
        if isinstance(raw, list):
            return "got [" + ", ".join(shown(x) for x in raw) + "]"
        return f"got {shown(raw)}"

    def limit(value: float) -> str:
        return f'"{duration_text(value)}"' if f.metadata.get("duration") else f"{value:g}"

    if f.metadata.get("duration"):
        value = parse_duration(raw, name, fail)
    elif typ is bool:
        if not isinstance(raw, bool):
            fail(f"{name} must be true or false, {got()}")
        value = raw
    elif typ is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            fail(f"{name} must be an integer, {got()}")
        value = raw
    elif typ is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            fail(f"{name} must be a number, {got()}")
        value = float(raw)
    elif typ is tuple:
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            fail(f"{name} must be a list of strings, {got()}")
        value = tuple(raw)
    else:
        if not isinstance(raw, str):
            fail(f"{name} must be a string, {got()}")
        value = raw
    if isinstance(value, float) and not math.isfinite(value):
        fail(f"{name} must be a finite number, {got()}")  # TOML has inf and nan
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        shown = ", ".join(f'"{c}"' for c in choices if c)
        fail(f"{name} must be one of {shown}, {got()}")
    minimum, maximum = f.metadata.get("minimum"), f.metadata.get("maximum")
    if minimum is not None and value < minimum:
        fail(f"{name} must be at least {limit(minimum)}, {got()}")
    if maximum is not None and value > maximum:
        fail(f"{name} must be at most {limit(maximum)}, {got()}")
    if f.metadata.get("positive") and not value > 0:
        fail(f"{name} must be more than 0, {got()}")
    if f.metadata.get("check"):
        try:
            value = f.metadata["check"](value)
        except ValueError as e:
            must, *detail = e.args
            fail(f"{name} {must}, {got()}" + (f": {detail[0]}" if detail else ""))
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNIT = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def duration_text(seconds: float) -> str:
    """43200.0 -> "12h": the shortest exact way to write a duration in TOML."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_duration(raw: Any, name: str = "duration", fail=None) -> float:
    """'90s', '30m', '6h', '1d' or a number of seconds -> seconds."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    m = _DURATION.match(raw) if isinstance(raw, str) else None
    if raw == "":
        return 0.0
    if not m:
        msg = f'{name} must be a duration such as "30m", "6h" or "1d", got {raw!r}'
        if fail:
            fail(msg)
        raise ValueError(msg)
    return float(m[1]) * _UNIT[m[2]]


class _Locator:
    """Finds the line of a key in the TOML text, for error messages (tomllib gives no lines)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def __call__(self, section: str, index: int | None, key: str | None) -> int | None:
        current, seen, header_line = None, -1, None
        for n, line in enumerate(self.lines, 1):
            m = self._HEADER.match(line)
            if m:
                current = m[2].strip()
                if current == section:
                    seen += 1
                    if index is None or seen == index:
                        header_line = n
                continue
            if current != section or (index is not None and seen != index):
                continue
            if key and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
                return n
        return header_line


# -- secrets -----------------------------------------------------------------------------------

def read_secret(credential: str, file_setting: str, env_var: str,
                env: typing.Mapping[str, str] | None = None, config_path: Path | None = None
                ) -> str | None:
    """A secret from, in order: the *_file setting, the environment, a systemd credential."""
    env = os.environ if env is None else env
    if file_setting:
        try:
            return Path(file_setting).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
            raise ConfigError(f"cannot read secret file {file_setting}: {why}",
                              path=str(config_path) if config_path else None) from None
    if env.get(env_var):
        return env[env_var]
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / credential).is_file():
        return (Path(cred_dir) / credential).read_text(encoding="utf-8").strip()
    return None


def web_secret(config: Config) -> bytes:
    """The key that signs links: configured, or generated once next to the store and kept."""
    found = read_secret("secret", config.web.secret_file, "DIGESTD_SECRET", None, config.path)
    if found:
        return found.encode()
    path = Path(config.store.path).with_name("digestd.secret")
    try:
        found_bytes = path.read_bytes().strip()
    except FileNotFoundError:
        found_bytes = None
    if found_bytes:
        return found_bytes
    if found_bytes is not None:
        raise StoreError(f"the link secret {path} is empty: remove it and digestd makes a new "
                         "one (links in digests sent before stop working), or restore it")
    # written whole under another name, then linked into place: a full disk leaves no empty
    # secret behind, and of two processes making one at once the first wins
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(_secrets.token_urlsafe(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            pass
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            # a filesystem without hard links: create-if-absent, as before
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(partial.read_text(encoding="utf-8"))
    except OSError as e:
        what = "disk full: " if e.errno == errno.ENOSPC else ""
        raise StoreError(f"{what}cannot write the link secret {path} next to the store: "
                         f"{e.strerror or e}") from None
    finally:
        partial.unlink(missing_ok=True)
    return path.read_bytes().strip()


# -- the example file --------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str, width: int = 92) -> list[str]:
    import textwrap
    return ["# " + line for line in textwrap.wrap(text, width)]


EXAMPLE_SOURCES = (
    {"name": "arxiv-ml", "kind": "arxiv-rss", "categories": ("cs.LG", "stat.ML")},
    {"name": "arxiv-diffusion", "kind": "arxiv-api", "query": "cat:cs.LG AND abs:diffusion",
     "max_results": 100},
    {"name": "hf", "kind": "hf-daily"},
    {"name": "biorxiv", "kind": "biorxiv", "days": 2},
    {"name": "nature-ml", "kind": "feed", "url": "https://www.nature.com/natmachintell.rss"},
)


def example_config() -> str:
    """The text of config.example.toml, generated from the declarations above."""
    out = ["# digestd configuration. Every setting is shown with its default.",
           "# Relative paths are relative to this file. Check it with: digestd config check",
           "# Secrets (SMTP password, link-signing secret) never need to be written here.", ""]
    for section, cls in SECTIONS.items():
        out.append(f"[{section}]")
        for f in settings(cls):
            out.extend(_comment(f.metadata["help"]))
            value = duration_text(f.default) if f.metadata.get("duration") else f.default
            out.append(f"{toml_key(f)} = {_toml_value(value)}")
        out.append("")
    out.extend(_comment("Paper sources: one [[sources]] table each. Settings for every kind:"))
    for f in settings(SourceConfig):
        kinds = f.metadata["kinds"]
        scope = f" [{', '.join(kinds)}]" if kinds else ""
        out.extend(_comment(f"{toml_key(f)}{scope}: {f.metadata['help']}"))
        if f.metadata["choices"]:
            out.extend(_comment(f"  one of: {', '.join(f.metadata['choices'])}"))
    for example in EXAMPLE_SOURCES:
        out.append("")
        out.append("[[sources]]")
        for key, value in example.items():
            out.append(f"{key} = {_toml_value(value)}")
    return "\n".join(out) + "\n"
