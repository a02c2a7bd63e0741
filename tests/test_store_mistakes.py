"""The store's mistakes caught with a message that says what to do: a store emptied or lost
under a running setup, a full disk, a store in a read-only folder (/etc under systemd)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from digestd.cli import main
from digestd.errors import StoreMissing, StoreWriteError
from digestd.models import Paper
from digestd.store import Store

from .conftest import init_offline


def papers(n: int, start: int = 0, size: int = 2000) -> list[Paper]:
    return [Paper(id=f"arxiv:2611.{i:05d}", title=f"Paper {i}", abstract="word " * (size // 5))
            for i in range(start, start + n)]


def setup_that_sent(tmp_path: Path) -> Path:
    """A setup that polled the sample and sent a digest: its store, and the link secret
    made next to it."""
    assert init_offline(tmp_path) == 0
    cfg = str(tmp_path / "digestd.toml")
    assert main(["-c", cfg, "subscribers", "add", "me@example.org", "--rule", "diffusion"]) == 0
    assert main(["-c", cfg, "poll"]) == 0
    assert main(["-c", cfg, "send", "--now"]) == 0
    assert (tmp_path / "digestd.secret").exists()
    return tmp_path / "digestd.toml"


# -- a store emptied or lost ---------------------------------------------------------------------

@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_a_store_emptied_under_a_used_setup_is_refused_not_started_over(tmp_path, capsys, how):
    cfg = str(setup_that_sent(tmp_path))
    store = tmp_path / "digestd.sqlite3"
    if how == "truncated":
        store.write_bytes(b"")
    else:
        store.unlink()
    capsys.readouterr()
    for command in (["poll"], ["send", "--now"], ["subscribers", "list"]):
        assert main(["-c", cfg, *command]) == 2
        err = capsys.readouterr().err
        state = "empty" if how == "truncated" else "missing"
        secret = tmp_path / "digestd.secret"
        assert (f"the store {store} is {state} but {secret} exists: refusing to start over "
                f"(restore the store from a backup, or remove {secret} to start afresh)") in err
    # nothing was made meanwhile: the restore can go in its place
    assert not store.exists() or store.stat().st_size == 0
    # the user chose to start afresh
    (tmp_path / "digestd.secret").unlink()
    assert main(["-c", cfg, "poll"]) == 0
    assert "300 new" in capsys.readouterr().out


def test_a_second_store_beside_the_first_is_told_whose_secret_it_found(tmp_path):
    """Two configs in one folder share the link secret made beside the first store: the
    second is refused (its links would be the first's), and told why."""
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    with Store(first) as store:
        store.add_subscriber("x@example.org", ["t"])
    (tmp_path / "digestd.secret").write_text("s" * 40)
    with pytest.raises(StoreMissing, match=f"belongs to the store {first} in the same folder: "
                                           "give each store a folder of its own"):
        Store(second)


def test_a_second_store_beside_several_is_told_it_cannot_tell_whose_secret(tmp_path):
    """With two stores beside the secret, the refusal names both (a file named *.sqlite3
    that is no SQLite database is none of them), not whichever the folder lists first."""
    for name in ("digestd.sqlite3", "lab.sqlite3"):
        with Store(tmp_path / name) as store:
            store.add_subscriber("x@example.org", ["t"])
    (tmp_path / "notes.sqlite3").write_text("not a database")
    (tmp_path / "digestd.secret").write_text("s" * 40)
    with pytest.raises(StoreMissing) as refused:
        Store(tmp_path / "lab3.sqlite3")
    assert str(refused.value) == (
        f"the store {tmp_path / 'lab3.sqlite3'} is missing, and the link secret "
        f"{tmp_path / 'digestd.secret'} beside it belongs to one of the stores "
        f"{tmp_path / 'digestd.sqlite3'}, {tmp_path / 'lab.sqlite3'} (digestd cannot tell "
        "which) in the same folder: give each store a folder of its own (or, if "
        f"{tmp_path / 'lab3.sqlite3'} was lost, restore it from a backup)")


def test_config_check_refuses_a_second_store_in_the_folder_as_poll_does(tmp_path, capsys):
    """lab.toml's store made the folder's digestd.secret; lab3.toml, a store in the same
    folder, passes no `config check` that its `poll` would fail, and both name lab's store;
    once two stores share the secret, `config check` warns."""
    config = ('[store]\npath = "{}"\n[delivery]\noutbox_dir = "outbox"\n'
              '[[sources]]\nname = "sample"\nkind = "sample"\n')
    lab, lab3 = tmp_path / "lab.toml", tmp_path / "lab3.toml"
    lab.write_text(config.format("lab.sqlite3"), encoding="utf-8")
    lab3.write_text(config.format("lab3.sqlite3"), encoding="utf-8")
    assert main(["-c", str(lab), "subscribers", "add", "me@example.org", "--rule", "x"]) == 0
    assert main(["-c", str(lab), "poll"]) == 0
    assert main(["-c", str(lab), "send", "--now"]) == 0
    assert (tmp_path / "digestd.secret").exists()
    assert main(["-c", str(lab), "config", "check", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    why = (f"store.path: the store {tmp_path / 'lab3.sqlite3'} is missing, and the link secret "
           f"{tmp_path / 'digestd.secret'} beside it belongs to the store "
           f"{tmp_path / 'lab.sqlite3'} in the same folder: give each store a folder of its own")
    assert main(["-c", str(lab3), "config", "check"]) == 2
    assert capsys.readouterr().err.startswith(f"digestd: error: {lab3}:2: {why}")
    assert main(["-c", str(lab3), "poll"]) == 2
    assert why.removeprefix("store.path: ") in capsys.readouterr().err
    assert not (tmp_path / "lab3.sqlite3").exists()
    # a store moved in beside lab's all the same: they share a secret
    (tmp_path / "elsewhere").mkdir()
    with Store(tmp_path / "elsewhere" / "other.sqlite3") as store:
        store.add_subscriber("you@example.org", ["y"])
    shutil.move(tmp_path / "elsewhere" / "other.sqlite3", tmp_path / "other.sqlite3")
    assert main(["-c", str(lab), "config", "check", "--quiet"]) == 0
    assert capsys.readouterr().err == (
        f"digestd: warning: {lab}:2: store.path: the folder of {tmp_path / 'lab.sqlite3'} holds "
        f"the store {tmp_path / 'other.sqlite3'} too, and each signs links with the one link "
        f"secret {tmp_path / 'digestd.secret'}: a link in one's digests is good for the other's "
        "subscriber of the same id. Give each store a folder of its own (or each config its "
        "own web.secret_file)\n")
    # a secret of its own: no warning
    lab.write_text(lab.read_text(encoding="utf-8") + '[web]\nsecret_file = "lab.secret"\n',
                   encoding="utf-8")
    (tmp_path / "lab.secret").write_text("t" * 40)
    assert main(["-c", str(lab), "config", "check", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_a_lost_store_with_its_write_ahead_log_left_is_refused(tmp_path):
    path = tmp_path / "digestd.sqlite3"
    (tmp_path / "digestd.sqlite3-wal").write_bytes(b"\0" * 32)
    with pytest.raises(StoreMissing, match="is missing but .*digestd.sqlite3-wal exists"):
        Store(path)


def test_a_brand_new_setup_starts_fresh(tmp_path):
    with Store(tmp_path / "new" / "digestd.sqlite3") as store:
        assert store.count_papers() == 0
    # an empty file and no secret: nothing was ever done with it
    (tmp_path / "empty.sqlite3").write_bytes(b"")
    with Store(tmp_path / "empty.sqlite3") as store:
        assert store.add_papers(papers(1))
    # a store that was used: its secret beside it is what it should be
    (tmp_path / "new" / "digestd.secret").write_text("s")
    with Store(tmp_path / "new" / "digestd.sqlite3") as store:
        assert store.count_papers() == 0


def test_the_demo_starts_over_each_time(tmp_path, capsys):
    # it removes what it made itself, the secret too: the refusal is not for it
    for _ in range(2):
        assert main(["demo", "--dir", str(tmp_path)]) == 0
        assert "papers stored   300 (300 new" in capsys.readouterr().out


# -- a full disk ---------------------------------------------------------------------------------

def full(store: Store) -> None:
    """SQLite's own limit on the file's pages: SQLITE_FULL, as a full disk gives."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_disk_says_disk_full_not_cannot_rollback(tmp_path):
    path = tmp_path / "digestd.sqlite3"
    with Store(path) as store:
        full(store)
        with pytest.raises(StoreWriteError) as caught:
            store.add_papers(papers(200))
        message = str(caught.value)
        assert message.startswith(f"disk full: the store {path} cannot be written")
        assert "database or disk is full" in message and "Free space there" in message
        assert "rollback" not in message
        # an sqlite3 error still, for the code that retries or counts store errors
        assert isinstance(caught.value, sqlite3.OperationalError)
        # inside a transaction of its own (adding a subscriber writes rules too)
        with pytest.raises(StoreWriteError, match="^disk full"):
            store.add_subscriber("me@example.org", ["x " * 5000])
        # the failed writes left nothing half done, and the store works once there is room
        store.db.execute("PRAGMA max_page_count = 1073741823")
        assert store.count_papers() == 0 and not store.db.in_transaction
        assert len(store.add_papers(papers(200))) == 200


def fill(path: Path) -> None:
    """Fill the filesystem `path` is on with `path`, to the last byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


@contextlib.contextmanager
def tiny_filesystem(folder: Path, size: str = "512k"):
    """A real filesystem of `size` mounted at `folder` (tmpfs; needs root and mount)."""
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tiny tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mount is not permitted here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_really_full_disk_during_a_poll_and_a_build(tmp_path, capsys):
    assert init_offline(tmp_path) == 0
    cfg = tmp_path / "digestd.toml"
    # 704 KB: the schema and its write-ahead log (every migration step, until the first
    # checkpoint) take most of it; the "cluster" step's three tables took the last 24 KB
    # that 640 KB had left for the 40 papers below
    with tiny_filesystem(tmp_path / "small", "704k") as small:
        store = small / "digestd.sqlite3"
        cfg.write_text(cfg.read_text().replace('path = "digestd.sqlite3"', f'path = "{store}"'))
        # 300 papers do not fit in 704 KB (the schema and its write-ahead log take most of it)
        capsys.readouterr()
        assert main(["-c", str(cfg), "poll"]) == 1
        err = capsys.readouterr().err
        assert f"digestd: error: disk full: the store {store} cannot be written" in err
        assert "rollback" not in err and "Traceback" not in err
        # a build that cannot write its digests: some papers and a subscriber who matches
        # them all, then the disk filled up to the last page
        for left in small.iterdir():  # the failed poll's store: no secret yet, start afresh
            left.unlink()
        with Store(store) as s:
            s.add_papers(papers(40, size=500))
            s.add_subscriber("me@example.org", ["paper"])
            s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # the daemon holds the store open (its shared memory file is made); then the disk
        # fills up
        held = Store(store)
        filler = small / "filler"
        fill(filler)
        # no room for the link secret the first build makes: it says so, and leaves no empty
        # secret behind
        assert main(["-c", str(cfg), "send", "--now"]) == 1
        assert "disk full: cannot write the link secret" in capsys.readouterr().err
        assert [p.name for p in small.iterdir() if "secret" in p.name] == []
        # with the secret made, the build opens the store too, and its writes fail
        filler.unlink()
        (small / "digestd.secret").write_text("s" * 43)
        fill(filler)
        assert main(["-c", str(cfg), "send", "--now"]) == 1
        err = capsys.readouterr().err
        assert f"disk full: the store {store} cannot be written" in err
        assert "rollback" not in err and "Traceback" not in err
        with contextlib.suppress(sqlite3.Error):
            held.close()
        # opened alone, SQLite cannot even map its shared memory file: "disk I/O error"
        assert main(["-c", str(cfg), "send", "--now"]) == 1
        err = capsys.readouterr().err
        assert f"disk full: the store {store} cannot be written" in err
        # room again: the build goes through, nothing was half written
        filler.unlink()
        assert main(["-c", str(cfg), "send", "--now"]) == 0
        assert "1 written" in capsys.readouterr().out


# -- a store in a read-only folder (/etc under systemd's ProtectSystem=strict) ------------------

WHERE = "point [store] path at the state directory, e.g. /var/lib/digestd/digestd.sqlite3"


@contextlib.contextmanager
def read_only_folder(folder: Path):
    """`folder` made read-only as ProtectSystem=strict makes /etc: a read-only mount when
    root (root writes through file modes), else the folder's mode."""
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "--bind", str(folder), str(folder)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"mount is not permitted here: {done.stderr.strip()}")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_a_store_in_a_read_only_folder_says_where_the_store_goes(tmp_path, capsys):
    assert init_offline(tmp_path) == 0
    cfg = tmp_path / "digestd.toml"
    etc = tmp_path / "etc"
    (etc / "digestd").mkdir(parents=True)
    made = etc / "digestd" / "made.sqlite3"
    with Store(made) as store:
        store.add_papers(papers(1))
    with read_only_folder(etc):
        # a new store there: it cannot be made
        for store in (etc / "digestd" / "digestd.sqlite3", etc / "new" / "digestd.sqlite3"):
            cfg.write_text(cfg.read_text().replace('path = "digestd.sqlite3"',
                                                   f'path = "{store}"'))
            capsys.readouterr()
            # a setup mistake no restart mends: exit 2, which the unit does not restart on
            assert main(["-c", str(cfg), "poll"]) == 2
            err = capsys.readouterr().err
            assert f"the store {store} cannot be written: the folder " in err
            assert "is read-only" in err and WHERE in err
            cfg.write_text(cfg.read_text().replace(f'path = "{store}"',
                                                   'path = "digestd.sqlite3"'))
        # a store made before the folder went read-only: it opens, its first write fails
        with pytest.raises(StoreWriteError, match="read-only") as caught, Store(made) as store:
            store.add_papers(papers(1, start=1))
        assert WHERE in str(caught.value)


def test_an_empty_link_secret_is_refused_not_used(tmp_path, capsys):
    cfg = str(setup_that_sent(tmp_path))
    (tmp_path / "digestd.secret").write_bytes(b"")
    assert main(["-c", cfg, "subscribers", "add", "new@example.org", "--rule", "3D"]) == 0
    capsys.readouterr()
    assert main(["-c", cfg, "send", "--now"]) == 1
    assert f"the link secret {tmp_path / 'digestd.secret'} is empty" in capsys.readouterr().err


def test_a_new_store_is_its_owners_alone(tmp_path, monkeypatch):
    """The store holds subscribers' addresses: made 0600 whatever the umask (SQLite gives its
    -wal and -shm files the same mode)."""
    import os
    import stat

    from digestd.store import open_store

    old = os.umask(0o022)
    try:
        with open_store(str(tmp_path / "s" / "digestd.sqlite3")) as store:
            store.add_subscriber("a@example.org", ["x"])
            modes = {p.name: stat.S_IMODE(p.stat().st_mode)
                     for p in (tmp_path / "s").iterdir() if p.name.startswith("digestd.sqlite3")}
    finally:
        os.umask(old)
    assert modes and set(modes.values()) == {0o600}, modes
