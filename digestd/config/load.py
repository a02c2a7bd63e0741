"""Reading config.toml: find it, parse it, check every value, and say where a mistake is
(file, line and key); what `config check` warns about. What the keys need together and the
files they name are checked in finish.py."""

import ast
import dataclasses
import difflib
import ipaddress
import math
import os
import re
import sys
import typing
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import ConfigError
from ..validators import is_example_domain
from .checks import (
    CONFIG_ENV,
    SOURCE_KINDS,
    duration_text,
    parse_duration,
    source_url_problem,
    unknown_arxiv_category,
)
from .credentials import read_secret
from .finish import all_of, check_together, finish
from .schema import (
    SECTIONS,
    Config,
    SmtpConfig,
    SourceConfig,
    settings,
    toml_key,
)

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


def config_places(env: typing.Mapping[str, str] | None = None) -> str:
    """Where find_config looks, in its order, for a message that none was found."""
    env = os.environ if env is None else env
    found = env.get("CONFIGURATION_DIRECTORY")
    return (f"--config, ${CONFIG_ENV}, ./digestd.toml, $CONFIGURATION_DIRECTORY/config.toml ("
            + (f"{Path(found) / 'config.toml'}" if found else "$CONFIGURATION_DIRECTORY is not "
               "set") + ")")


def load_config(path: str | os.PathLike | None = None, *, env: typing.Mapping[str, str] | None
                = None) -> Config:
    """Read and validate a config file; None gives the embedded defaults.

    Raises ConfigError naming the file, line and key.
    """
    env = os.environ if env is None else env
    if path is None:
        return finish(Config(sources=(default_source(),)), None, env)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found (create one with `digestd init`)",
                          path=str(path)) from None
    except IsADirectoryError:
        inside = path / "digestd.toml"
        raise ConfigError("is a folder, not a config file"
                          + (f": did you mean {inside}?" if inside.is_file() else
                             " (give the .toml file itself)"), path=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
        raise ConfigError(f"cannot read config file: {why}", path=str(path)) from None
    return parse_config(text, path, env=env)


def _given_twice(msg: str, shown: str, before: list[str]) -> str | None:
    """tomllib's "Cannot declare ('smtp',) twice" and "Cannot overwrite a value" as a user
    reads them ("[smtp] appears twice (first at line 1) ..."), given the line it stopped at
    (`shown`) and the lines before it; None for any other TOML error."""
    declared = re.fullmatch(r"Cannot declare \((.*)\) twice", msg)
    if declared:
        try:
            parts = ast.literal_eval(f"({declared[1]})")
        except (ValueError, SyntaxError):
            return None
        table = ".".join(map(str, parts))
        first = next((n for n, text in enumerate(before, 1)
                      if (h := _Locator._HEADER.match(text)) and h[2].strip() == table), None)
        return (f"[{table}] appears twice" + (f" (first at line {first})" if first else "")
                + f": write each table once, with all its keys under one [{table}]"
                + (" (or [[sources]] for each source)" if table == "sources" else ""))
    key = re.match(r"\s*([\w.\-\"']+)\s*=", shown)
    if msg == "Cannot overwrite a value" and key:
        return f"{key[1]} is given twice: a key is set once in its table"
    return None


def parse_config(text: str, path: Path, *, env: typing.Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    locate = _Locator(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        msg = re.sub(r"\s*\(at line.*\)", "", str(e))
        lines = text.splitlines()
        line = int(m[1]) if m else None
        shown = lines[line - 1].strip() if line and 0 < line <= len(lines) else ""
        twice = _given_twice(msg, shown, lines[:line - 1] if line else [])
        if twice:
            raise ConfigError(twice, path=str(path), line=line) from None
        raise ConfigError(f"invalid TOML: {msg}" + (f" (column {m[2]})" if m else "")
                          + (f": {shown[:120]}" if shown else ""),
                          path=str(path), line=line) from None

    def fail(message: str, section: str, key: str | None = None, index: int | None = None):
        line = locate(section, index, key)
        raise ConfigError(message, path=str(path), line=line, key=key)

    values: dict[str, Any] = {}
    errors: list[ConfigError] = []  # every mistake, so that one check names them all
    failed: set[str] = set()  # the sections with mistakes of their own: checked no further
    for section, table in data.items():
        if section == "sources":
            continue
        try:
            cls = SECTIONS.get(section)
            if cls is None and not isinstance(table, dict):  # debug = true, before any table
                home = next((name for name, c in SECTIONS.items()
                             if section in {toml_key(f) for f in settings(c)}), "digest")
                fail(f'unknown key "{section}" (settings go in sections such as [{home}])',
                     section)
            if cls is None:
                fail(f'unknown section [{section}] (sections: '
                     f'{", ".join([*SECTIONS, "sources"])})', section)
            if not isinstance(table, dict):
                fail(f"{section} must be a table", section)
        except ConfigError as e:
            errors.append(e)
            failed.add(section)
            continue
        built = _build(cls, table, section, None, fail, errors)
        if built is None:
            failed.add(section)
        else:
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
        name = table.get("name")
        if isinstance(name, str) and name:  # said even when the table has other mistakes
            if name in names:
                try:
                    fail(f'sources.name "{name}" is used twice', "sources", "name", i)
                except ConfigError as e:
                    errors.append(e)
            names.add(name)
        src = _build(SourceConfig, table, "sources", i, fail, errors)
        problems = _source_problems(src, table, i, fail)  # also beside its keys' mistakes
        errors.extend(problems)
        if src is not None and not problems:
            sources.append(src)

    def note(message: str, section: str, key: str) -> None:
        if section not in failed:  # (else its values are the defaults)
            errors.append(ConfigError(message, path=str(path), line=locate(section, None, key),
                                      key=key))

    # what the keys say together, and the files they name: checked even when some keys have
    # mistakes of their own, so that one check names every mistake
    config = Config(path=path.resolve(), sources=tuple(sources), **values)
    if config.delivery.method == "smtp" and config.smtp is None:
        config = dataclasses.replace(config, smtp=SmtpConfig())
    check_together(config, data, note, failed)
    config = finish(config, path, env, locate, note, failed)
    if errors:
        raise all_of(errors)
    return dataclasses.replace(config, warnings=_warnings(config, path, locate, env))


def check_dkim_key(config: Config, path: str | os.PathLike | None = None) -> None:
    """Sign a test message with the DKIM key, as `send` does before its first digest;
    raises ConfigError naming the key file (and `path`, the config file as the user named
    it). Not part of loading: it costs a signature."""
    if not config.dkim.selector:
        return
    from email.utils import parseaddr

    from ..mime import DkimSigner

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


def check_store_folder(config: Config, path: str | os.PathLike | None = None) -> None:
    """Raise ConfigError (naming store.path's line in `path`, the config file as the user
    named it) when the SQLite store would be refused as lost: missing or empty beside a link
    secret or write-ahead log, which may have been made for another store of its folder.
    Not part of loading: opening the store says it too (StoreMissing), for the commands
    that open it; `config check` says it before any does."""
    if config.store.url or config.store.path == ":memory:":
        return
    from ..store.files import start_over_problem

    try:
        problem = start_over_problem(Path(config.store.path))
    except OSError:  # a folder this user may not look into: the store's owner can
        return
    if problem is None:
        return
    line = None
    if config.path:
        line = _Locator(config.path.read_text(encoding="utf-8"))("store", None, "path")
    raise ConfigError(f"store.path: {problem}", path=str(path or config.path or "") or None,
                      line=line, key="path")


def shared_secret_warning(config: Config, env: typing.Mapping[str, str]) -> str | None:
    """Why the link secret made beside the SQLite store (none is set: web.secret_file,
    DIGESTD_SECRET, the credential "secret") is not this store's alone, if it is not: other
    stores in its folder sign their links with it too."""
    if config.store.url or config.store.path == ":memory:" or config.web.secret_file:
        return None
    from ..store.files import SECRET_NAME, stores_beside

    store = Path(config.store.path)
    if read_secret("secret", "", "DIGESTD_SECRET", env) or not os.path.exists(store):
        return None  # (a store that is not there: check_store_folder)
    others = stores_beside(store)
    if not others:
        return None
    return (f"store.path: the folder of {store} holds the store"
            + ("s " if len(others) > 1 else " ") + ", ".join(map(str, others))
            + f" too, and each signs links with the one link secret "
            f"{store.with_name(SECRET_NAME)}: "
            "a link in one's digests is good for the other's subscriber of the same id. Give "
            "each store a folder of its own (or each config its own web.secret_file)")


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


def unsubscribe_mail_warning(config: Config) -> str | None:
    """Why unsubscribe requests sent by mail (the mailto: of List-Unsubscribe, which many
    mail clients use) are lost, if they are: without delivery.return_path or
    delivery.unsubscribe_mailto they go to the From address, which digestd does not read
    (unless [inbound] reads that very mailbox). `config check` and `doctor` show it, `send`
    logs it once."""
    delivery = config.delivery
    if config.smtp is None or delivery.return_path or delivery.unsubscribe_mailto:
        return None
    sender = parseaddr(delivery.from_)[1]
    if config.inbound.enabled and config.inbound.username.lower() == sender.lower():
        return None  # the From mailbox is the one [inbound] reads: the mail is handled
    domain = sender.rpartition("@")[2] or "example.org"
    return (f"delivery.return_path is not set: the mailto: of List-Unsubscribe goes to the "
            f"From address ({sender}), which digestd does not read, so a subscriber who "
            "unsubscribes by mail stays subscribed (the one-click https link still works). "
            f'Set delivery.return_path (e.g. "bounces@{domain}") and have the mail server '
            f'deliver it and unsubscribe@{domain}, each with any "+TOKEN", to `digestd '
            "inbound` (docs/inbound.md); or set delivery.unsubscribe_mailto to an address "
            "that reaches `digestd inbound` or the [inbound] mailbox")


def example_sender_warning(config: Config) -> str | None:
    """Why mail sent by SMTP from delivery.from will be refused, if its domain is one RFC
    2606 reserves for examples: `config check` shows it and `send` logs it once."""
    sender = parseaddr(config.delivery.from_)[1].rpartition("@")[2].lower()
    if config.smtp is None or not is_example_domain(sender):
        return None
    return (f"delivery.from is still an example address ({config.delivery.from_}): mail "
            "servers reject mail from it (RFC 2606 reserves the domain); put your own "
            "address there")


# a relative path that reads as a web address without its scheme: "example.org/feed.xml"
_DOMAIN = re.compile(r"^(?:www\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?:/|$)")


def _warnings(config: Config, path: Path, locate: "_Locator",
              env: typing.Mapping[str, str]) -> tuple[str, ...]:
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
    example = example_sender_warning(config)
    if example:
        out.append(where("delivery", "from") + example)
    store_folder = os.path.dirname(os.path.abspath(config.store.path))
    if not config.store.url and config.store.path != ":memory:" and not os.path.isdir(
            store_folder):
        out.append(where("store", "path") + f"store.path: the folder {store_folder} does not "
                   "exist (yet): the first command that writes makes it, commands that only "
                   "read say there is no store; check it for a typo")
    shared = shared_secret_warning(config, env)
    if shared:
        out.append(where("store", "path") + shared)
    sender_id = config.delivery.feedback_id
    if sender_id and not 5 <= len(sender_id) <= 15:
        out.append(where("delivery", "feedback_id") + f'delivery.feedback_id "{sender_id}" has '
                   f"{len(sender_id)} characters: Google's Feedback-ID advice is 5 to 15")
    unsubscribe = unsubscribe_warning(config)
    if unsubscribe:
        out.append(where("web", "base_url") + unsubscribe)
    by_mail = unsubscribe_mail_warning(config)
    if by_mail:
        out.append(where("delivery", "return_path") + by_mail)
    for i, src in enumerate(config.sources):
        unknown = [u for u in map(unknown_arxiv_category, src.categories) if u]
        if src.kind == "arxiv-rss" and unknown:
            line = locate("sources", i, "categories")
            out.append((f"{path}:{line}: " if line else f"{path}: ") + f'sources.categories of '
                       f'"{src.name}": {"; ".join(unknown)}: arXiv answers it with an error '
                       "or an empty feed (https://arxiv.org/category_taxonomy)")
        # a local feed file may be written later by another job: a warning, and each poll
        # fails alone (not-found) until it is there
        if src.kind != "feed" or not src.url.startswith("/"):
            continue
        line = locate("sources", i, "url")
        here = f"{path}:{line}: " if line else f"{path}: "
        if not os.path.exists(src.url):
            written = os.path.relpath(src.url, config.base_dir)
            hint = ' (if it is a web address, write it with "https://")' if _DOMAIN.match(
                written) else ""
            out.append(here + f'sources.url of "{src.name}": no such file {src.url} (yet): its '
                       f"polls fail until it is there{hint}")
        elif os.path.isdir(src.url):
            out.append(here + f'sources.url of "{src.name}": {src.url} is a folder, not a feed '
                       "file: its polls fail")
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


def _source_problems(src: SourceConfig | None, table: dict, i: int, fail
                     ) -> list[ConfigError]:
    """What one [[sources]] table needs beyond its keys' own checks, every mistake of it.
    `src` is None when a key of it had a mistake of its own (already said): then what the
    table holds is checked, and a key that is there is not said to be missing."""
    errors: list[ConfigError] = []

    def note(*args) -> None:
        try:
            fail(*args)
        except ConfigError as e:
            errors.append(e)

    def given(key: str) -> bool:
        return bool(getattr(src, key)) if src is not None else key in table

    name = src.name if src is not None else table.get("name")
    # which source: its name, or (without one) where it is among the [[sources]] tables
    which = f'source "{name}"' if isinstance(name, str) and name else \
        f"[[sources]] table {i + 1}, counted from the top"
    for key in ("name", "kind"):
        if not given(key):
            note(f"sources.{key} is required ({which})", "sources", None, i)
    kind = src.kind if src is not None else table.get("kind")
    if kind not in SOURCE_KINDS:
        return errors
    for f in settings(SourceConfig):
        kinds = f.metadata["kinds"]
        if kinds and kind not in kinds and toml_key(f) in table:
            note(f"sources.{toml_key(f)} does not apply to kind \"{kind}\" "
                 f"(only to {', '.join(kinds)})", "sources", toml_key(f), i)
    for needs, key in (("arxiv-rss", "categories"), ("arxiv-api", "query"), ("feed", "url")):
        if kind == needs and not given(key):
            note(f'sources.{key} is required for kind "{kind}" ({which})', "sources", None, i)
    # checked also when another key of the table had a mistake: every mistake at once
    url = src.url if src is not None else table.get("url")
    problem = source_url_problem(url) if isinstance(url, str) and url else None
    if problem:
        note(f'sources.url of "{name}" {problem}', "sources", "url", i)
    return errors


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
                near = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
                hint = f'did you mean "{near[0]}"? ' if near else ""
                fail(f'unknown key "{section}.{key}" ({hint}known: {", ".join(known)})',
                     section, key, index)
            kwargs[f.name] = _coerce(raw, hints[f.name], f, f"{section}.{key}",
                                     lambda msg, key=key: fail(msg, section, key, index))
        except ConfigError as e:
            if errors is None:
                raise
            errors.append(e)
            failed = True
    return None if failed else cls(**kwargs)


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
        if "" in choices:  # allowed too: the setting's default, as its help says
            shown += ', or "" (empty: the default)'
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


class _Locator:
    """Finds the line of a key in the TOML text, for error messages (tomllib gives no lines)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def __call__(self, section: str, index: int | None, key: str | None) -> int | None:
        current, seen, header_line, top_line = None, -1, None, None
        for n, line in enumerate(self.lines, 1):
            if current is None and top_line is None and re.match(
                    rf"\s*[\"']?{re.escape(section)}[\"']?\s*[=.]", line):
                top_line = n  # the section written as a key before any table: log = "debug"
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
        return header_line or top_line


