"""Reading config.toml: find it, parse it, check every value, and say where a mistake is
(file, line and key); durations; what `config check` warns about."""

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import ConfigError
from .checks import (
    CONFIG_ENV,
    SOURCE_KINDS,
    check_mailto_address,
    source_url_problem,
    unknown_arxiv_category,
)
from .credentials import read_secret
from .schema import (
    SECTIONS,
    Config,
    InboundConfig,
    SmtpConfig,
    SourceConfig,
    is_loopback,
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
        lines = text.splitlines()
        shown = lines[int(m[1]) - 1].strip() if m and 0 < int(m[1]) <= len(lines) else ""
        if "overwrite" in msg.lower():  # tomllib's word for a key or table given twice
            msg += " (a key or table given twice?)"
        raise ConfigError(f"invalid TOML: {msg}" + (f" (column {m[2]})" if m else "")
                          + (f": {shown[:120]}" if shown else ""),
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


def _folder_problem(folder: str) -> str | None:
    """Why digestd cannot write files into `folder` (made if missing), or None."""
    if os.path.exists(folder):
        if not os.path.isdir(folder):
            return "is a file, not a folder"
        return None if os.access(folder, os.W_OK | os.X_OK) else "cannot be written to"
    parent = next((p for p in Path(folder).parents if p.exists()), None)  # made from there
    if parent is not None and not parent.is_dir():
        return f"cannot be made: {parent} is a file"
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be made: {parent} cannot be written to"
    return None


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
    if config.delivery_method == "outbox":
        problem = _folder_problem(config.delivery.outbox_dir)
        if problem:
            fail(f'delivery.outbox_dir "{config.delivery.outbox_dir}" {problem}: the outbox '
                 "method writes its .eml files there", "delivery", "outbox_dir")
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


# a relative path that reads as a web address without its scheme: "example.org/feed.xml"
_DOMAIN = re.compile(r"^(?:www\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?:/|$)")


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

    for key in ("name", "kind"):
        if not given(key):
            note(f"sources.{key} is required", "sources", None, i)
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
            note(f'sources.{key} is required for kind "{kind}"', "sources", None, i)
    problem = source_url_problem(src.url) if src is not None and src.url else None
    if problem:
        note(f'sources.url of "{src.name}" {problem}', "sources", "url", i)
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
        # (short examples: sources.timeout allows at most "1h"; the value quoted as the
        # config writes strings)
        got = f'"{raw}"' if isinstance(raw, str) else repr(raw)
        msg = (f'{name} must be a duration: a number with s, m, h or d, e.g. "90s" or "30m"; '
               f"got {got}")
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


