"""`digestd store copy`: move from the SQLite store to PostgreSQL."""

from __future__ import annotations

import argparse

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
    password = read_secret("store-password", "", "DIGESTD_STORE_PASSWORD", None, config.path)
    to = StoreConfig(url=args.to, password=password or "")
    where = without_password(args.to)
    with Store(config.store.path) as source, open_store(to) as target:
        report = copy_store(source, target, progress=lambda table, n: print(
            f"  {table:<16} {n:>10,} rows"))
    print(f"copied {config.store.path} into {where} in {report.took_s:.1f} s; every table's "
          "count matches")
    print(f"\nTo switch, stop digestd, then in {config.path or 'the config file'} set\n\n"
          f'  [store]\n  url = "{where}"\n\n'
          "and keep `path` as it is: its folder keeps the sent journals and the link secret "
          "(the links in digests already sent stay valid). The password comes from "
          "store.password_file, DIGESTD_STORE_PASSWORD or the credential store-password. "
          "Keep the SQLite file as a backup; `digestd config check` says whether PostgreSQL "
          "answers. Then start digestd again.")
    return 0
