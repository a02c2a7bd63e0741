"""Shared fixtures: a real SMTP server on 127.0.0.1, config files in tmp_path, the store."""

from __future__ import annotations

import socket
import subprocess
import textwrap
from pathlib import Path

import hypothesis  # noqa: F401 (see below)
import pytest

from digestd.config import load_config
from digestd.store import is_postgres_url, open_store

from .dovecot import DOVECOT, Dovecot, Mailbox
from .postgres import Postgres
from .smtp_server import SmtpSink

# hypothesis is imported above, at collection, and not by its pytest plugin's summary at the
# session's end: there pytest's assertion rewriting parses it (ast.parse) while a server
# thread of the last tests may still format a traceback, which on Python 3.11 parses its
# source line too, and CPython 3.11 keeps one AST construction depth for all threads
# ("SystemError: AST constructor recursion depth mismatch", python/cpython#106905): a
# run of some test files alone ended with that error after every test had passed

FIXTURES = Path(__file__).parent / "fixtures"
DATA = Path(__file__).parent / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_sink():
    """A real aiosmtpd server on 127.0.0.1 that records what it accepts."""
    sink = SmtpSink(port=free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def dovecot_server():
    """A real Dovecot IMAP server on 127.0.0.1 for the session (tests/dovecot.py)."""
    if DOVECOT is None:
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
    server = Dovecot()
    try:
        server.start()
    except (OSError, RuntimeError) as e:
        server.stop()
        pytest.skip(f"Dovecot cannot start here: {e}")
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot_server: Dovecot) -> Mailbox:
    """An empty mailbox of its own on the session's Dovecot."""
    return dovecot_server.mailbox()


@pytest.fixture
def write_config(tmp_path):
    """Write a config file into tmp_path and load it."""

    def write(text: str, name: str = "digestd.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return load_config(path)

    return write


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster for the session (tests/postgres.py)."""
    server = Postgres()
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        server.stop()
        pytest.skip(f"PostgreSQL cannot start here: {e}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: Postgres):
    """The URL of a fresh, migrated PostgreSQL database of this test's own."""
    name = postgres_server.new_database()
    yield postgres_server.url(name)
    postgres_server.drop(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """Where this test's store is: a SQLite file in tmp_path, then a PostgreSQL database
    (the test runs once on each backend)."""
    if request.param == "sqlite":
        return str(tmp_path / "digestd.sqlite3")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store_toml(store_url) -> str:
    """The [store] table's line for this test's store: `path` (SQLite) or `url` (PostgreSQL)."""
    return f'{"url" if is_postgres_url(store_url) else "path"} = "{store_url}"'


@pytest.fixture
def store(store_url):
    """The store, once on each backend."""
    with open_store(store_url) as s:
        yield s


@pytest.fixture(autouse=True)
def _restore_logging():
    """`digestd.cli.main` points the root logger at this test's (captured) stderr; put the
    handlers back afterwards, or a late record from an SMTP server thread hits a closed file."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def init_offline(tmp_path) -> int:
    """`digestd init` in tmp_path, then the bundled sample papers instead of arXiv (tests
    have no network)."""
    from digestd.cli import main

    code = main(["init", "--dir", str(tmp_path)])
    path = tmp_path / "digestd.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('kind = "arxiv-rss"', 'kind = "arxiv-rss"\nenabled = false')
    text = text.replace('# [[sources]]\n# name = "sample"\n# kind = "sample"',
                        '[[sources]]\nname = "sample"\nkind = "sample"')
    path.write_text(text, encoding="utf-8")
    return code
