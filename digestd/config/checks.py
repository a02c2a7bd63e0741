"""Single settings: `setting()`, which declares one, and the checks of single values
(addresses, URLs, hosts, times, rates) that its `check=` names; durations."""

import difflib
import ipaddress
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import field
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

from ..tokens import MAIL_TOKEN_MAX
from ..validators import EmailNotValidError, is_time_zone, mailbox, time_zone_hint

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
# arXiv's category taxonomy (https://arxiv.org/category_taxonomy): archive -> its subject
# classes; the archives without any are listed alone ("hep-th")
_ARXIV_SUBJECTS = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS "
          "NA NE NI OH OS PF PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA "
            "RA RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an "
               "ed-ph flu-dyn gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph "
               "soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
}
ARXIV_CATEGORIES = frozenset(
    [f"{archive}.{subject}" for archive, subjects in _ARXIV_SUBJECTS.items()
     for subject in subjects.split()] + list(ARXIV_ARCHIVES))


def unknown_arxiv_category(category: str) -> str | None:
    """Why `category` (of a known archive) names nothing in arXiv's taxonomy, with the
    category meant where one is close ("cs.LGG", "cs.lg"), or None."""
    if category in ARXIV_CATEGORIES:
        return None
    near = [c for c in ARXIV_CATEGORIES if c.lower() == category.lower()] or \
        difflib.get_close_matches(category, sorted(ARXIV_CATEGORIES), n=1, cutoff=0.8)
    return f'"{category}" is no arXiv category' + (f' (did you mean "{near[0]}"?)' if near
                                                   else "")


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


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# "http//example.org", "https:/example.org", "http:example.org": a URL with its "://" mistyped
_MISTYPED_SCHEME = re.compile(r"^https?(?::/?(?!/)|//)", re.IGNORECASE)


def source_url_problem(value: str) -> str | None:
    """Why a source's `url` can never be polled, or None: an http(s) URL needs a host and a
    valid port and no white space; a file:// URL or a local path (no scheme) is read from
    disk; any other scheme, or an http URL whose "://" was mistyped, is refused."""
    m = _SCHEME.match(value)
    if m is None:
        if _MISTYPED_SCHEME.match(value):
            return ('looks like a URL with its "://" mistyped: write it as '
                    '"https://journal.example.org/feed.xml"')
        return None  # a local file path
    scheme = m[1].lower()
    if scheme == "file":
        return None
    if scheme not in ("http", "https"):
        return (f'must be an http(s) URL or a local file path, got the scheme "{m[1]}" '
                f'("{value}")')
    if _unprintable(value):
        return f'holds white space or a control character ("{value}"): write a space as %20'
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        return f'is not a valid URL ("{value}"): {e}'
    if not parts.hostname:
        return f'has no host ("{value}")'
    return None


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
                         "as the web form offers them" + time_zone_hint(value))
    return value


MIN_POLL_EVERY_S = 60.0  # a source polled more often is a mistake ("every = 30" for minutes)


def check_poll_every(value: float) -> float:
    # a number alone is seconds: "every = 30", meant as minutes, would poll twice a minute
    if 0 < value < MIN_POLL_EVERY_S:
        raise ValueError('must be 0 (the kind\'s default) or at least "1m"; a number alone is '
                         'seconds (write "30m" for 30 minutes)')
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


# -- durations -------------------------------------------------------------------------------

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
        # (short examples: sources.timeout allows at most "1h"; the value quoted as the
        # config writes strings)
        got = f'"{raw}"' if isinstance(raw, str) else repr(raw)
        msg = (f'{name} must be a duration: a number with s, m, h or d, e.g. "90s" or "30m"; '
               f"got {got}")
        if fail:
            fail(msg)
        raise ValueError(msg)
    return float(m[1]) * _UNIT[m[2]]
