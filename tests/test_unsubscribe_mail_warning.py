"""Unsubscribe requests by mail (the mailto: of List-Unsubscribe) that nothing reads: with
[smtp] and neither delivery.return_path nor delivery.unsubscribe_mailto they go to the From
address. `config check` and `doctor` warn (not an error) and say what to set."""

from __future__ import annotations

import pytest

from digestd.cli import main

from .conftest import free_port

BASE = """\
[store]
path = "{store}"
[delivery]
from = "Digest <digest@papers.example.net>"
{delivery}
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
"""


@pytest.fixture(autouse=True)
def _no_secrets_from_the_environment(monkeypatch):
    monkeypatch.delenv("DIGESTD_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def _config(tmp_path, delivery: str = "", port: int = 25) -> str:
    path = tmp_path / "digestd.toml"
    path.write_text(BASE.format(store=tmp_path / "s.sqlite3", delivery=delivery, port=port),
                    encoding="utf-8")
    return str(path)


def test_config_check_warns_and_says_what_to_set(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["-c", cfg, "config", "check"]) == 0  # a warning, not an error
    err = capsys.readouterr().err
    warning = next(x for x in err.splitlines() if "return_path" in x)
    assert warning.startswith(f"digestd: warning: {cfg}:3: delivery.return_path is not set")
    assert "goes to the From address (digest@papers.example.net)" in warning
    assert "stays subscribed" in warning
    assert 'Set delivery.return_path (e.g. "bounces@papers.example.net")' in warning
    assert "unsubscribe@papers.example.net" in warning and "`digestd inbound`" in warning
    assert "delivery.unsubscribe_mailto" in warning


@pytest.mark.parametrize("delivery", ['return_path = "bounces@papers.example.net"',
                                      'unsubscribe_mailto = "leave@papers.example.net"'])
def test_no_warning_once_the_mail_goes_somewhere_read(tmp_path, capsys, delivery):
    assert main(["-c", _config(tmp_path, delivery), "config", "check"]) == 0
    assert "return_path is not set" not in capsys.readouterr().err


def test_no_warning_without_smtp(tmp_path, capsys):
    """The outbox method mails nothing: no List-Unsubscribe reaches anybody yet."""
    path = tmp_path / "digestd.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n', encoding="utf-8")
    assert main(["-c", str(path), "config", "check"]) == 0
    assert "return_path" not in capsys.readouterr().err


def test_doctor_warns_too(tmp_path, capsys):
    cfg = _config(tmp_path, port=free_port())  # nothing listens: the smtp checks fail
    main(["-c", cfg, "doctor"])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "unsubscribe by mail" in x)
    assert line.startswith("warn  unsubscribe by mail")
    assert "delivery.return_path is not set" in line
    main(["-c", _config(tmp_path, 'return_path = "bounces@papers.example.net"',
                        port=free_port()), "doctor"])
    assert "unsubscribe by mail" not in capsys.readouterr().out
