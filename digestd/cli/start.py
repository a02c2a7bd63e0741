"""Getting started: `init`, `demo`, and `config check` / `config example`."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
from email.utils import parseaddr
from pathlib import Path

from ..config import (
    DeliveryConfig,
    StoreConfig,
    config_places,
    default_source,
    duration_text,
    example_config,
    find_config,
    load_config,
)
from ..errors import UsageError
from ..store import open_store
from .common import _store, invocation

DEMO_SUBSCRIBERS = (
    ("ada@example.org", "Ada", ('"language models" reasoning', "diffusion", "reinforcement")),
    ("grace@example.org", "Grace", ('"object detection"', "segmentation", "3D")),
)

STARTER_CONFIG = """\
# digestd configuration: `digestd config example` prints every setting and its default.
# Check it with: digestd config check

[store]
path = "digestd.sqlite3"

[delivery]
# "outbox" writes .eml files; add an [smtp] table (or method = "smtp") to send email.
outbox_dir = "outbox"
from = "Paper digest <digest@example.org>"

[web]
# where subscribers open their links; a public https URL once digests go out by SMTP
base_url = "http://127.0.0.1:8080"

# arXiv's daily announcements of these categories (polled shortly after arXiv announces)
[[sources]]
name = "arxiv-ml"
kind = "arxiv-rss"
categories = ["cs.LG", "stat.ML"]

# The bundled sample papers, for trying rules offline (`digestd demo` uses them too):
# [[sources]]
# name = "sample"
# kind = "sample"
"""



def cmd_init(args: argparse.Namespace) -> int:
    explicit = args.config
    if explicit:
        # the file every later `-c PATH` command reads (relative to here, as for them)
        path = Path(explicit)
        folder = path.parent
        if args.dir is not None and folder.resolve() != Path(args.dir).resolve():
            raise UsageError(f"init: --config {explicit} names the file to write, and --dir "
                             f"{args.dir} another folder: give one of them")
    else:
        folder = Path(args.dir if args.dir is not None else ".")
        path = folder / "digestd.toml"
    if path.is_dir():
        raise UsageError(f"init: {path} is a folder: name the config file to write "
                         "(or give the folder with --dir)")
    folder.mkdir(parents=True, exist_ok=True)
    shared = False  # a new config whose store (the starter's path) is another config's
    if path.exists():
        print(f"{path} exists already; not overwritten.", file=sys.stderr)
    else:
        shared = (folder / "digestd.sqlite3").exists()
        path.write_text(STARTER_CONFIG, encoding="utf-8")
        print(f"wrote {path}")
    config = load_config(path)
    with _store(config) as store:
        print(f"store ready: {store.path} (schema version {store.schema_version()})")
    if shared:
        print(f"note: {store.path} was there already: {path} uses that store, its papers and "
              "subscribers. For a setup of its own, init in a folder of its own (each store "
              "needs one: see docs/operations.md)", file=sys.stderr)
    # ./digestd.toml is found without --config (unless $DIGESTD_CONFIG names another)
    found = path.resolve() == Path("digestd.toml").resolve() and not os.environ.get(
        "DIGESTD_CONFIG")
    flag = "" if found else f" --config {shlex.quote(str(path))}"
    # the config's relative outbox_dir is resolved against its folder (config.finish)
    print(f"next (digests go to {config.delivery.outbox_dir} as .eml files until you add "
          "[smtp] and your own delivery.from):")
    for step in ("config check", "subscribers add you@example.org --rule 'diffusion'",
                 "poll", "send --now"):
        print(f"  {invocation()}{flag} {step}")
    return 0


DEMO_FILES = ("digestd.sqlite3", "digestd.sqlite3-wal", "digestd.sqlite3-shm", "digestd.secret")
DEMO_MARK = ".digestd-demo"  # a note in the demo's folder: what it is, that it is emptied
_DEMO_EML = re.compile(r"\d{6}-[\w:+.-]+-(ada|grace)_example\.org\.eml")


def _not_the_demos(folder: Path) -> str:
    """Why the demo must not empty `folder` ("" when it may): it holds a store, a secret or
    an outbox the demo did not make (someone's own setup). A folder the demo made holds
    only its files (and DEMO_MARK, which says what the folder is), its two subscribers and
    the .eml files it wrote."""
    if not folder.exists():
        return ""
    if not folder.is_dir():
        return "is not a folder"
    if (folder / "digestd.toml").exists():
        return "holds a digestd.toml (a setup of its own, whose store would be the demo's)"
    outbox = folder / "outbox"
    others = sorted(p.name for p in folder.iterdir()
                    if p.name not in (*DEMO_FILES, "outbox", DEMO_MARK))
    if not any((folder / name).exists() for name in DEMO_FILES) and not outbox.exists():
        return ""  # nothing of a store there: the demo only adds its own
    if others:
        return f"holds a store or an outbox beside files the demo never makes ({others[0]})"
    if outbox.exists() and (not outbox.is_dir() or any(
            not _DEMO_EML.fullmatch(p.name) for p in outbox.iterdir())):
        return "has an outbox with files the demo did not write"
    if (folder / "digestd.sqlite3").exists():
        with open_store(str(folder / "digestd.sqlite3")) as store:
            emails = {sub.email for sub in store.subscribers()}
        if not emails <= {email for email, _, _ in DEMO_SUBSCRIBERS}:
            return "holds a store with subscribers of its own"
    return ""


def cmd_demo(args: argparse.Namespace) -> int:
    """Everything offline: bundled papers, two subscribers, digests written as .eml files."""
    from ..jobs import build_digests, poll_sources, send_outbox

    if not args.log_level:
        logging.getLogger().setLevel(logging.WARNING)  # the summary below says it all
    folder = Path(args.dir).resolve()
    outbox = folder / "outbox"
    refused = _not_the_demos(folder)
    if refused:
        print(f"digestd demo: {folder} {refused}: nothing was changed. The demo starts "
              "from scratch in a folder of its own; name another with --dir (the default "
              "is ./digestd-demo).", file=sys.stderr)
        return 2
    # the demo starts from scratch each time, removing only what it made itself
    for name in DEMO_FILES:
        (folder / name).unlink(missing_ok=True)
    if outbox.is_dir():
        shutil.rmtree(outbox)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DEMO_MARK).write_text("made by `digestd demo`, which empties this folder's "
                                    "store, secret and outbox each time it runs\n")
    base = load_config(None)
    config = dataclasses.replace(
        base, store=StoreConfig(path=str(folder / "digestd.sqlite3")),
        delivery=DeliveryConfig(method="outbox", outbox_dir=str(outbox)), smtp=None,
        sources=(default_source(),))
    print("digestd demo: offline, bundled sample papers, nothing is emailed.\n")
    with _store(config) as store:
        reports = asyncio.run(poll_sources(config.sources, store))
        for email, name, rules in DEMO_SUBSCRIBERS:
            store.add_subscriber(email, rules, name=name)
        built = build_digests(config, store, force=True)
        delivered = asyncio.run(send_outbox(config, store))
        papers = store.count_papers()
    new = sum(r.new for r in reports)
    print(f"  papers stored   {papers} ({new} new from the bundled sample)")
    print(f"  subscribers     {len(DEMO_SUBSCRIBERS)}")
    for email, _name, rules in DEMO_SUBSCRIBERS:
        print(f"    {email:<20} {built.matches.get(email, 0):>3} papers matched   rules: "
              + " | ".join(rules))
    print(f"  digests written {delivered.sent}")
    for path in delivered.written:
        print(f"    {path}")
    print(f"\nLook at them: open an .eml file in a mail client, or `less {outbox}/*.eml`.")
    print(f"Their links (the digest's web page, preferences, unsubscribe) open while "
          f"`cd {shlex.quote(str(folder))} && {invocation(elsewhere=True)} web` runs.")
    print(f"The store is {folder / 'digestd.sqlite3'}. Start your own setup with "
          f"`{invocation()} init`.")
    return 0


# the systemd credentials digestd reads (read_secret's or secret()'s first argument in
# digestd/config/)
CREDENTIALS = ("smtp-password", "secret", "dkim-key", "imap-password", "store-password")


def _credentials_hidden() -> bool:
    """$CREDENTIALS_DIRECTORY is set but this process may not look into it: systemd runs a
    unit's ExecReload= that way, the directory masked (v252) or not mounted (v256)."""
    found = os.environ.get("CREDENTIALS_DIRECTORY")
    return bool(found) and not os.access(found, os.R_OK | os.X_OK)


def cmd_config_check(args: argparse.Namespace) -> int:
    from ..config import check_dkim_key, check_store_folder
    from ..render import check_templates

    path = find_config(args.config)
    if path is None:
        # nothing to check: say where digestd looked, and what it would run on
        # (exit 2, as for a config with mistakes: there is nothing to check)
        print(f"digestd: no config file found (looked at {config_places()}); without one "
              "digestd runs on its embedded defaults (the bundled sample source, the store "
              "./digestd.sqlite3, digests into ./outbox). Name yours with -c PATH, or write "
              f"one with `{invocation()} init`.", file=sys.stderr)
        return 2
    hidden = _credentials_hidden()
    if hidden:
        # the unit's `systemctl reload` check: the file is what can be wrong here; the
        # credentials are the ones the running daemon reads, and it reads them on SIGHUP
        with tempfile.TemporaryDirectory() as stand_in:
            for name in CREDENTIALS:
                Path(stand_in, name).write_text("not checked\n", encoding="utf-8")
            config = load_config(path, env={**os.environ, "CREDENTIALS_DIRECTORY": stand_in})
    else:
        config = load_config(path)
        check_dkim_key(config, path)  # signs a test message, as `send` does before its first
    # compiled as `send` and `run` compile them before their first digest
    check_templates(config.digest.templates_dir)
    check_store_folder(config, path)  # a store the commands that open it would refuse
    if args.quiet:
        for warning in config.warnings:
            print(f"digestd: warning: {warning}", file=sys.stderr)
        return 0
    where = str(config.path) if config.path else "embedded defaults (no config file found)"
    reached = None
    if config.store.url:
        from ..store.postgres import probe

        reached = probe(config.store)
    unreachable = reached is not None and not reached[0]
    print(f"config read, but the store cannot be reached: {where}" if unreachable
          else f"config OK: {where}")
    if hidden:
        print("  credentials not readable here (as under ExecReload=): not checked")
    if reached is not None:
        print(f"  store     {reached[1]}" if reached[0] else f"  store     {config.store.where}")
    else:
        print(f"  store     {config.store.path}")
    print(f"  delivery  {config.delivery_method}"
          + (f" via {config.smtp.host}:{config.smtp.port} ({config.smtp.security})"
             if config.smtp and config.delivery_method == "smtp"
             else f" into {config.delivery.outbox_dir}"))
    if config.delivery.return_path:
        local, _, domain = config.delivery.return_path.rpartition("@")
        print(f"  bounces   return path {local}+TOKEN@{domain}: pipe it to `digestd inbound`")
        # the List-Unsubscribe mailto: as render.Renderer makes it with a return path
        mailto = parseaddr(config.delivery.unsubscribe_mailto)[1] or \
            "unsubscribe@" + parseaddr(config.delivery.from_)[1].rpartition("@")[2]
        local, _, domain = mailto.rpartition("@")
        # (a label as wide as the others: "unsubscribe mailto" broke the column)
        print(f"  mailto    unsubscribe mails to {local}+TOKEN@{domain}: pipe it to "
              "`digestd inbound` too")
    print(f"  web       {config.web.listen} (links use {config.web.base_url})")
    print(f"  sources   {len(config.sources)}: "
          + ", ".join(f"{s.name} ({s.kind}{'' if s.enabled else ', disabled'})"
                      for s in config.sources) if config.sources
          else "  sources   none: nothing will be polled (add [[sources]] tables; "
               "`digestd config example` shows each kind)")
    inbound = config.inbound
    print("  inbound   " + (f"IMAP {inbound.username}@{inbound.imap_host}:{inbound.port} "
                            f"({inbound.imap_security}), folder {inbound.folder!r}, every "
                            f"{duration_text(inbound.every)}" if inbound.enabled else "off"))
    for warning in config.warnings:
        print(f"digestd: warning: {warning}", file=sys.stderr)
    if unreachable:
        print(f"digestd: error: {reached[1]}", file=sys.stderr)
        return 1
    return 0


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_config())
    return 0
