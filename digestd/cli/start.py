"""Getting started: `init`, `demo`, and `config check` / `config example`."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import shlex
import shutil
import sys
import tempfile
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
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "digestd.toml"
    if path.exists():
        print(f"{path} exists already; not overwritten.", file=sys.stderr)
    else:
        path.write_text(STARTER_CONFIG, encoding="utf-8")
        print(f"wrote {path}")
    config = load_config(path)
    with _store(config) as store:
        print(f"store ready: {store.path} (schema version {store.schema_version()})")
    shown = shlex.quote(str(path))
    print("next:")
    for step in ("config check", "subscribers add you@example.org --rule 'diffusion'",
                 "poll", "send --now"):
        print(f"  {invocation()} --config {shown} {step}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Everything offline: bundled papers, two subscribers, digests written as .eml files."""
    from ..jobs import build_digests, poll_sources, send_outbox

    if not args.log_level:
        logging.getLogger().setLevel(logging.WARNING)  # the summary below says it all
    folder = Path(args.dir).resolve()
    outbox = folder / "outbox"
    # the demo starts from scratch each time, removing only what it made itself
    for name in ("digestd.sqlite3", "digestd.sqlite3-wal", "digestd.sqlite3-shm",
                 "digestd.secret"):
        (folder / name).unlink(missing_ok=True)
    if outbox.is_dir():
        shutil.rmtree(outbox)
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
    from ..config import check_dkim_key

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
    print(f"  web       {config.web.listen} (links use {config.web.base_url})")
    print(f"  sources   {len(config.sources)}: "
          + ", ".join(f"{s.name} ({s.kind})" for s in config.sources) if config.sources
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
