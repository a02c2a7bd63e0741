"""`digestd store copy`: move from the SQLite store to PostgreSQL."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import read_secret
from ..errors import StoreError
from .common import _config


def cmd_store_copy(args: argparse.Namespace) -> int:
    from ..config import StoreConfig
    from ..store import Store, is_postgres_url, open_store, without_password
    from ..store.copy import copy_store

    config = _config(args)
    if config.store.url:
        raise StoreError(f"the config's store is PostgreSQL already "
                         f"({config.store.where}): the copy reads a SQLite store")
    if not is_postgres_url(args.to):
        raise StoreError(f'--to must be a PostgreSQL URL "postgresql://user@host/db", got '
                         f"{without_password(args.to)!r}")
    source_path = Path(args.source or config.store.path)
    if not source_path.is_file() or source_path.stat().st_size == 0:
        # opening it would make a new, empty store, and the copy of nothing would "succeed"
        state = "is empty" if source_path.is_file() else "does not exist"
        named = "--from" if args.source else f"the config {config.path}" if config.path \
            else "no config file: the defaults' ./digestd.sqlite3"
        raise StoreError(f"the SQLite store {source_path} {state} ({named}): nothing to "
                         "copy. Name the store with --from PATH (the demo's is "
                         "digestd-demo/digestd.sqlite3), or --config the config whose "
                         "[store] path it is")
    password = read_secret("store-password", config.store.password_file,
                           "DIGESTD_STORE_PASSWORD", None, config.path)
    to = StoreConfig(url=args.to, password=password or "")
    where = without_password(args.to)
    with Store(source_path) as source, open_store(to) as target:
        report = copy_store(source, target, progress=lambda table, n: print(
            f"  {table:<16} {n:>10,} rows"))
    print(f"copied {source_path} into {where} in {report.took_s:.1f} s; every table's "
          "count matches")
    same = source_path.resolve() == Path(config.store.path).resolve()
    keep = "keep `path` as it is" if same else f'set `path = "{source_path.resolve()}"` too'
    print(f"\nTo switch, stop digestd, then in {config.path or 'the config file'} set\n\n"
          f'  [store]\n  url = "{where}"\n\n'
          f"and {keep}: its folder keeps the sent journals and the link secret "
          "(the links in digests already sent stay valid). The password comes from "
          "store.password_file, DIGESTD_STORE_PASSWORD, the credential store-password, "
          "or libpq's own PGPASSWORD and ~/.pgpass. "
          "Keep the SQLite file as a backup; `digestd config check` says whether PostgreSQL "
          "answers. Then start digestd again.")
    return 0
