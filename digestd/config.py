"""Load and validate config.toml into frozen dataclasses; the only reader of TOML.

Every setting is declared once, as a dataclass field made with `setting()`: its
default, its help text and its constraints live there. The loader, the
`config.example.toml` generator and the tests all read that one declaration.
"""

import dataclasses
import os
import re
import secrets as _secrets
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError

CONFIG_ENV = "DIGESTD_CONFIG"
# Gmail clips an HTML part past 102 KB and hides the rest (the footer's unsubscribe link
# too): with the longest abstracts of the corpus, 50 papers stay near 80 KB
# (tests/test_render.py renders them)
MAX_PAPERS_CAP = 50
SOURCE_KINDS = ("sample", "feed", "arxiv-rss", "arxiv-api", "hf-daily", "biorxiv", "medrxiv")


def setting(default: Any, help: str, *, choices: tuple = (), kinds: tuple = (),
            toml_key: str | None = None, path: bool = False, minimum: float | None = None,
            maximum: float | None = None, duration: bool = False) -> Any:
    """Declare one setting: its default, the help the docs show, and its constraints.

    `duration`: seconds, written in TOML as a number or as "90s", "30m", "12h", "1d".
    """
    meta = {"help": help, "choices": choices, "kinds": kinds, "toml_key": toml_key,
            "path": path, "minimum": minimum, "maximum": maximum, "duration": duration}
    return field(default=default, metadata=meta)


def derived(default: Any = "") -> Any:
    """A field computed by the loader (a resolved secret, say), never read from TOML."""
    return field(default=default, repr=False, compare=False, metadata={"derived": True})


@dataclass(frozen=True)
class StoreConfig:
    path: str = setting("digestd.sqlite3", "The SQLite file that holds papers, subscribers and "
                        "the outbox. Relative paths are relative to the config file.", path=True)
    keep_sent_days: int = setting(30, "Days the message of a sent digest stays in the store "
                                  "(for `digestd outbox` and a look at what went out); then "
                                  "`digestd run` drops it, keeping the row and the marks that "
                                  "stop a paper from being sent twice. 0 keeps them forever.",
                                  minimum=0)


@dataclass(frozen=True)
class DeliveryConfig:
    method: str = setting("", 'How digests leave: "smtp" or "outbox" (write .eml files into '
                          'outbox_dir). Empty means "smtp" when an [smtp] table is present, '
                          'else "outbox".', choices=("", "smtp", "outbox"))
    outbox_dir: str = setting("outbox", "Where the outbox method writes .eml files.", path=True)
    from_: str = setting("Paper digest <digest@example.org>", "The From address of every digest.",
                         toml_key="from")
    reply_to: str = setting("", "Optional Reply-To address.")
    max_attempts: int = setting(8, "Give up on a digest after this many failed SMTP attempts "
                                "(4xx and network errors are retried with backoff).", minimum=1)
    bounce_threshold: int = setting(3, "Hard bounces in a row (the server answered 5xx for the "
                                    "address) after which a subscriber is marked bouncing and "
                                    "gets no more digests.", minimum=1)
    feedback_id: str = setting("", "The sender id at the end of the Feedback-ID header that "
                               "Gmail's postmaster tools group complaints by; empty means the "
                               "From domain.")
    unsubscribe_mailto: str = setting("", "The mailto: address in List-Unsubscribe (next to the "
                                      "one-click https link); the mail's subject is "
                                      '"unsubscribe TOKEN". Empty means the From address.')


@dataclass(frozen=True)
class SmtpConfig:
    host: str = setting("localhost", "The SMTP server (your relay or provider).")
    port: int = setting(587, "The SMTP port: 587 for starttls, 465 for tls, 25 for none.",
                        minimum=1)
    security: str = setting("starttls", '"starttls", "tls" (implicit TLS) or "none".',
                            choices=("starttls", "tls", "none"))
    username: str = setting("", "Login name; empty means no AUTH.")
    password_file: str = setting("", "File holding the SMTP password. Alternatives: the "
                                 "environment variable DIGESTD_SMTP_PASSWORD or the systemd "
                                 'credential "smtp-password".', path=True)
    timeout: float = setting(30.0, "Seconds to wait for the server at each step.", minimum=0.1)
    max_connections: int = setting(4, "Connections opened in parallel and reused across "
                                   "messages.", minimum=1)
    max_per_second: float = setting(0.0, "Messages per second at most; 0 means no limit.",
                                    minimum=0)
    ca_file: str = setting("", "A PEM file of certificate authorities to trust for the server's "
                           "certificate (a relay with a private CA); empty means the system's.",
                           path=True)
    password: str = derived()


@dataclass(frozen=True)
class WebConfig:
    listen: str = setting("127.0.0.1:8080", "Address and port the web app listens on.")
    base_url: str = setting("http://127.0.0.1:8080", "The public URL of the web app, used in "
                            "every link in emails (unsubscribe, preferences).")
    secret_file: str = setting("", "File holding the secret that signs links. Alternatives: the "
                               'environment variable DIGESTD_SECRET or the systemd credential '
                               '"secret"; if none is set a secret is generated next to the store.',
                               path=True)
    enabled: bool = setting(True, "Serve the web app (subscribe, unsubscribe, preferences) "
                            "inside `digestd run`. Unsubscribe links in emails need it.")
    title: str = setting("Paper digest", "The name shown on the web pages and in confirmation "
                         "emails.")
    trusted_proxies: tuple = setting(("127.0.0.1", "::1"), "Addresses (or networks, e.g. "
                                     '"10.0.0.0/8") of reverse proxies whose X-Forwarded-For '
                                     "header names the real client, for the per-IP rate limit.")
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
                           "subscribers.")
    timezone: str = setting("UTC", "Default IANA time zone for new subscribers.")
    frequency: str = setting("daily", "Default frequency for new subscribers.",
                             choices=("daily", "weekdays", "weekly"))
    templates_dir: str = setting("", "A folder of your own templates; a file there overrides the "
                                 "bundled template of the same name.", path=True)
    archive_url: str = setting("", "An external archive to link to instead of digestd's own "
                               "digest pages (/d/TOKEN on web.base_url): \"View in browser\", "
                               '"see all N papers" and the Archived-At header then use this '
                               "URL, with {token} (signed, naming the subscriber and the "
                               "digest) and {period} filled in. Empty (the default) means "
                               "digestd's own pages.")
    max_lateness: float = setting(12 * 3600.0, "A digest that could not go out on time (the "
                                  "daemon was down) is still sent up to this long after its "
                                  "time; later, it is merged into the next one instead, e.g. "
                                  '"12h".', minimum=60, duration=True)
    build_workers: int = setting(0, "Processes that build (match and render) digests while "
                                 "the sender delivers them; once done, each helps send over a "
                                 "share of smtp.max_connections (unless smtp.max_per_second is "
                                 "set). 0 means one per CPU core but one, at least 1. A second "
                                 "process starts only for 4,000 subscribers or more.",
                                 minimum=0)
    check_every: float = setting(60.0, "How often `digestd run` builds the digests that are due "
                                 'and sends the outbox, e.g. "1m".', minimum=1, duration=True)


@dataclass(frozen=True)
class LogConfig:
    level: str = setting("info", "Log level.", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class SourceConfig:
    name: str = setting("", "A unique name; shown in digests and usable in rules as source:NAME.")
    kind: str = setting("", "The source kind.", choices=SOURCE_KINDS)
    url: str = setting("", "Override the endpoint (a mirror, a test server, or for kind "
                       '"feed" the feed URL or a local file path).')
    every: float = setting(0.0, 'How often to poll, e.g. "30m", "6h", "1d". Empty or 0 means '
                           "the kind's default: arXiv kinds four times a day, shortly after "
                           "arXiv's announcements (00:30, 06:30, 12:30, 20:30 New York time); "
                           "others hourly (the bundled sample: daily).", minimum=0)
    enabled: bool = setting(True, "Set to false to keep a source configured but not polled.")
    categories: tuple = setting((), 'arXiv categories, e.g. ["cs.LG", "stat.ML"].',
                                kinds=("arxiv-rss",))
    announce_types: tuple = setting(("new", "cross"), "Which arXiv announcements to keep: new, "
                                    "cross, replace, replace-cross.", kinds=("arxiv-rss",))
    query: str = setting("", 'arXiv API search query, e.g. "cat:cs.LG AND abs:diffusion".',
                         kinds=("arxiv-api",))
    max_results: int = setting(100, "Papers to fetch per poll at most.",
                               kinds=("arxiv-api", "biorxiv", "medrxiv", "hf-daily"), minimum=1)
    days: int = setting(2, "How many days back a poll looks.",
                        kinds=("hf-daily", "biorxiv", "medrxiv"), minimum=1)


@dataclass(frozen=True)
class DkimConfig:
    selector: str = setting("", "DKIM selector: the key is published as a TXT record at "
                            "SELECTOR._domainkey.DOMAIN. Empty means digests are not signed.")
    domain: str = setting("", "The signing domain (d=); empty means the From domain.")
    private_key_file: str = setting("", "The private key (PEM, RSA; or a base64 ed25519 key) "
                                    'file. Alternative: the systemd credential "dkim-key".',
                                    path=True)
    private_key: bytes = derived(b"")


SECTIONS: dict[str, type] = {
    "store": StoreConfig,
    "delivery": DeliveryConfig,
    "smtp": SmtpConfig,
    "web": WebConfig,
    "digest": DigestConfig,
    "log": LogConfig,
    "dkim": DkimConfig,
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
    sources: tuple[SourceConfig, ...] = ()

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
        return _finish(Config(sources=(default_source(),)), {}, None, env)
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
    for section, table in data.items():
        if section == "sources":
            continue
        cls = SECTIONS.get(section)
        if cls is None:
            fail(f'unknown section [{section}] (sections: {", ".join([*SECTIONS, "sources"])})',
                 section)
        if not isinstance(table, dict):
            fail(f"{section} must be a table", section)
        values[section] = _build(cls, table, section, None, fail)

    sources_data = data.get("sources", [])
    if not isinstance(sources_data, list):
        fail("sources must be an array of tables: write [[sources]]", "sources")
    sources = []
    names: set[str] = set()
    for i, table in enumerate(sources_data):
        src = _build(SourceConfig, table, "sources", i, fail)
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
        sources.append(src)

    config = Config(path=path.resolve(), sources=tuple(sources), **values)
    if config.delivery.method == "smtp" and config.smtp is None:
        config = dataclasses.replace(config, smtp=SmtpConfig())
    return _finish(config, values, path, env)


def _finish(config: Config, values: dict, path: Path | None, env: typing.Mapping[str, str]
            ) -> Config:
    """Resolve relative paths against the config file's folder and read secrets."""
    base = config.base_dir
    replaced = {}
    for name in ("store", "delivery", "smtp", "web", "digest", "dkim"):
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
    if config.smtp is not None:
        password = read_secret("smtp-password", config.smtp.password_file,
                               "DIGESTD_SMTP_PASSWORD", env, path)
        config = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp,
                                                                      password=password or ""))
    if config.dkim.selector:
        key = read_secret("dkim-key", config.dkim.private_key_file, "", env, path)
        if not key:
            raise ConfigError("dkim.selector is set but there is no key: set "
                              "dkim.private_key_file", path=str(path) if path else None,
                              key="private_key_file")
        config = dataclasses.replace(config, dkim=dataclasses.replace(
            config.dkim, private_key=key.encode() + b"\n"))
    return config


def default_source() -> SourceConfig:
    """The source used when a config names none: the bundled sample papers."""
    return SourceConfig(name="sample", kind="sample")


def _build(cls: type, table: dict, section: str, index: int | None, fail) -> Any:
    known = {toml_key(f): f for f in settings(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, raw in table.items():
        f = known.get(key)
        if f is None:
            fail(f'unknown key "{section}.{key}" (known: {", ".join(known)})', section, key, index)
        kwargs[f.name] = _coerce(raw, hints[f.name], f, f"{section}.{key}",
                                 lambda msg, key=key: fail(msg, section, key, index))
    return cls(**kwargs)


def _coerce(raw: Any, typ: Any, f: dataclasses.Field, name: str, fail) -> Any:
    def got() -> str:
        return f'got "{raw}"' if isinstance(raw, str) else f"got {raw!r}"

    if f.name == "every" or f.metadata.get("duration"):
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
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        shown = ", ".join(f'"{c}"' for c in choices if c)
        fail(f"{name} must be one of {shown}, {got()}")
    minimum = f.metadata.get("minimum")
    if minimum is not None and value < minimum:
        fail(f"{name} must be at least {minimum:g}, {got()}")
    maximum = f.metadata.get("maximum")
    if maximum is not None and value > maximum:
        fail(f"{name} must be at most {maximum:g}, {got()}")
    if f.name in ("send_at",) and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        fail(f'{name} must be a time as "HH:MM", {got()}')
    if f.name == "timezone":
        from zoneinfo import ZoneInfo
        try:
            ZoneInfo(value)
        except Exception:
            fail(f'{name} must be an IANA time zone such as "Europe/Berlin", {got()}')
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
        except OSError as e:
            raise ConfigError(f"cannot read secret file {file_setting}: {e.strerror}",
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
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_secrets.token_urlsafe(32))
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
    {"name": "arxiv-ml", "kind": "arxiv-rss", "categories": ("cs.LG", "stat.ML"), "every": "6h"},
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
