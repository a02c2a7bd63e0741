"""What a config needs beyond each key's own check: keys that must agree, the files and
folders it names, its secrets. Every mistake is noted, none raised at the first, so that one
`config check` names them all (with the keys' own mistakes, see load.py)."""

import dataclasses
import os
import typing
from pathlib import Path

from ..errors import ConfigError
from .checks import check_mailto_address, duration_text
from .credentials import read_secret
from .schema import Config, is_loopback, settings

# note(message, section, key): adds a mistake, naming the file, the line and the key
Note = typing.Callable[[str, str, str], None]


def all_of(errors: list[ConfigError]) -> ConfigError:
    """One error for several: the first's file, line and key; every message, in file order."""
    ordered = sorted(errors, key=lambda e: e.line or 0)
    first = ordered[0]
    if len(ordered) == 1:
        return first
    combined = ConfigError(first.message, path=first.path, line=first.line, key=first.key)
    combined.args = ("\n".join(str(e) for e in ordered)
                     + f"\n({len(ordered)} mistakes in the config)",)
    return combined


def check_together(config: Config, data: dict, note: Note, skip: typing.Container[str]) -> None:
    """The rules between keys. `data` is the TOML as read (to name the key written); a
    section in `skip` had mistakes of its own, its values are the defaults: not checked."""
    digest = config.digest
    if "digest" not in skip and digest.check_every >= digest.max_lateness:
        written = data.get("digest", {})
        note(f'digest.check_every ("{duration_text(digest.check_every)}") must be less than '
             f'digest.max_lateness ("{duration_text(digest.max_lateness)}"): a digest due '
             "between two checks would be merged into the next one instead of sent",
             "digest", "check_every" if "check_every" in written or "max_lateness" not in
             written else "max_lateness")
    inbound = config.inbound
    if "inbound" not in skip and inbound.enabled:
        if not inbound.username:
            note("inbound.username is required with inbound.imap_host (the mailbox's login "
                 "name)", "inbound",
                 "username" if "username" in data.get("inbound", {}) else "imap_host")
        if inbound.imap_security == "none" and not is_loopback(inbound.imap_host):
            note(f'inbound.imap_security "none" sends the password in clear text: it is '
                 f'allowed only for a server on this machine (127.0.0.1, ::1, localhost), not '
                 f'"{inbound.imap_host}"; use "tls" or "starttls"', "inbound", "imap_security")
    smtp = config.smtp
    if "smtp" not in skip and smtp is not None and smtp.username and \
            smtp.security == "none" and not is_loopback(smtp.host):
        note(f'smtp.security "none" with smtp.username sends the password in clear text: it '
             f'is allowed only for a server on this machine (127.0.0.1, ::1, localhost), not '
             f'"{smtp.host}"; use "starttls" or "tls" (or no username, for a relay that '
             f'needs no login)', "smtp", "security")
    mailto = config.delivery.unsubscribe_mailto
    if "delivery" not in skip and config.delivery.return_path and mailto:
        try:
            check_mailto_address(mailto)
        except ValueError as e:
            note(f"delivery.unsubscribe_mailto {e.args[0]}"
                 + (f" ({e.args[1]})" if len(e.args) > 1 else "")
                 + ' once delivery.return_path is set (it becomes "LOCAL+TOKEN@DOMAIN")',
                 "delivery", "unsubscribe_mailto")


def folder_problem(folder: str) -> str | None:
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


def finish(config: Config, path: Path | None, env: typing.Mapping[str, str], locate=None,
           note: Note | None = None, skip: typing.Container[str] = ()) -> Config:
    """Resolve relative paths against the config file's folder, check that the files and
    folders named exist, and read secrets. Each mistake goes to `note`; without one, they
    are raised together at the end as one ConfigError. `skip`: as for check_together."""
    found: list[ConfigError] = []
    if note is None:
        def note(message: str, section: str, key: str) -> None:
            line = locate(section, None, key) if locate else None
            found.append(ConfigError(message, path=str(path) if path else None, line=line,
                                     key=key))

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
    # (an [smtp] with mistakes of its own may be why the method looks like "outbox")
    if config.delivery_method == "outbox" and "smtp" not in skip:
        problem = folder_problem(config.delivery.outbox_dir)
        if problem:
            note(f'delivery.outbox_dir "{config.delivery.outbox_dir}" {problem}: the outbox '
                 "method writes its .eml files there", "delivery", "outbox_dir")
    store_path = config.store.path
    if not config.store.url and store_path != ":memory:" and os.path.isdir(store_path):
        note(f'store.path must be the store\'s file, got "{store_path}": it is a folder '
             f'(e.g. "{os.path.join(store_path, "digestd.sqlite3")}")', "store", "path")
    templates = config.digest.templates_dir
    if templates and not os.path.isdir(templates):
        note(f'digest.templates_dir must be a folder, got "{templates}": '
             + ("it is not a folder" if os.path.exists(templates) else "it does not exist"),
             "digest", "templates_dir")

    unread: set[str] = set()  # "section.key" of the secret files that cannot be read

    def secret(credential: str, section: str, key: str, value: str, env_var: str) -> str | None:
        try:
            return read_secret(credential, value, env_var, env, path)
        except ConfigError as e:
            note(f"{section}.{key}: {e.message}", section, key)
            unread.add(f"{section}.{key}")
            return None

    def readable(section: str, value: str) -> None:
        try:
            with open(value, "rb"):
                pass
        except OSError as e:
            note(f'{section}.ca_file must be a readable file, got "{value}": {e.strerror}',
                 section, "ca_file")

    if config.store.url:
        password = secret("store-password", "store", "password_file",
                          config.store.password_file, "DIGESTD_STORE_PASSWORD")
        config = dataclasses.replace(config, store=dataclasses.replace(
            config.store, password=password or ""))
    if config.smtp is not None:
        if config.smtp.ca_file:
            readable("smtp", config.smtp.ca_file)
        password = secret("smtp-password", "smtp", "password_file", config.smtp.password_file,
                          "DIGESTD_SMTP_PASSWORD")
        config = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp,
                                                                      password=password or ""))
    if config.inbound.enabled:
        if config.inbound.ca_file:
            readable("inbound", config.inbound.ca_file)
        password = secret("imap-password", "inbound", "password_file",
                          config.inbound.password_file, "DIGESTD_IMAP_PASSWORD")
        config = dataclasses.replace(config, inbound=dataclasses.replace(
            config.inbound, password=password or ""))
    if config.web.secret_file:  # read when the web app starts or a digest is built: check now
        secret("secret", "web", "secret_file", config.web.secret_file, "")
    if config.dkim.selector:
        key = secret("dkim-key", "dkim", "private_key_file", config.dkim.private_key_file, "")
        if key:
            config = dataclasses.replace(config, dkim=dataclasses.replace(
                config.dkim, private_key=key.encode() + b"\n"))
        elif "dkim.private_key_file" not in unread:  # (a file that cannot be read is said)
            note("dkim.selector is set but there is no key: set dkim.private_key_file",
                 "dkim", "selector")
    if found:
        raise all_of(found)
    return config
