"""Config loading: types, unknown keys, lines in errors, secrets, the example file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digestd.cli import main
from digestd.config import (
    SECTIONS,
    SourceConfig,
    example_config,
    load_config,
    settings,
    toml_key,
    tomllib,
    web_secret,
)
from digestd.config.example import OPTIONAL_SECTIONS
from digestd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_a_file():
    config = load_config(None)
    assert config.delivery_method == "outbox"
    assert [s.kind for s in config.sources] == ["sample"]


def test_bad_type_names_file_line_and_key(write_config, tmp_path):
    with pytest.raises(ConfigError) as e:
        write_config("""\
            [store]
            path = "x.sqlite3"

            [smtp]
            host = "mail.example.org"
            port = "abc"
            """)
    assert str(e.value) == f'{tmp_path / "digestd.toml"}:6: smtp.port must be an integer, got "abc"'
    assert e.value.line == 6 and e.value.key == "port"


def test_unknown_key_is_an_error_with_its_line(write_config):
    with pytest.raises(ConfigError, match=r"digestd.toml:3: unknown key \"delivery.form\""):
        write_config("""\
            [delivery]
            method = "outbox"
            form = "me@example.org"
            """)


def test_an_smtp_password_in_clear_text_to_another_host_is_refused(write_config):
    """As for IMAP: a login over an unencrypted connection only to this machine."""
    with pytest.raises(ConfigError, match=r':4: smtp.security "none" with smtp.username sends '
                                          r'the password in clear text.*"mail.example.org"'):
        write_config("""\
            [smtp]
            host = "mail.example.org"
            username = "me"
            security = "none"
            """)
    for allowed in ('host = "127.0.0.1"\nusername = "me"', 'host = "mail.example.org"'):
        write_config(f'[smtp]\n{allowed}\nsecurity = "none"\n')  # local, or no login


def test_unknown_section(write_config):
    with pytest.raises(ConfigError, match=r":1: unknown section \[smpt\]"):
        write_config("[smpt]\nhost = 'x'\n")


def test_error_in_second_source_points_at_its_line(write_config):
    with pytest.raises(ConfigError, match=r":8: sources.every must be a duration"):
        write_config("""\
            [[sources]]
            name = "a"
            kind = "sample"

            [[sources]]
            name = "b"
            kind = "sample"
            every = "often"
            """)


def test_setting_for_another_kind_is_rejected(write_config):
    with pytest.raises(ConfigError, match=r"sources.query does not apply to kind \"feed\""):
        write_config("""\
            [[sources]]
            name = "j"
            kind = "feed"
            url = "https://example.org/rss"
            query = "x"
            """)


def test_invalid_toml_gives_line(write_config):
    with pytest.raises(ConfigError, match=r"digestd.toml:2: invalid TOML"):
        write_config("[store]\npath = \n")


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/digestd.toml")


def test_choice_and_duplicate_names(write_config):
    with pytest.raises(ConfigError, match=r'smtp.security must be one of "starttls", "tls", '
                                          r'"none", got "ssl"'):
        write_config('[smtp]\nsecurity = "ssl"\n')
    with pytest.raises(ConfigError, match=r'sources.name "a" is used twice'):
        write_config('[[sources]]\nname="a"\nkind="sample"\n[[sources]]\nname="a"\n'
                     'kind="sample"\n')


def test_relative_paths_follow_the_config_file(write_config, tmp_path):
    config = write_config('[store]\npath = "state/d.sqlite3"\n')
    assert config.store.path == str(tmp_path / "state" / "d.sqlite3")
    assert config.delivery.outbox_dir == str(tmp_path / "outbox")


def test_durations(write_config):
    config = write_config('[[sources]]\nname="s"\nkind="sample"\nevery="6h"\n')
    assert config.sources[0].every == 6 * 3600


def test_smtp_password_from_file_env_and_credential(write_config, tmp_path, monkeypatch):
    monkeypatch.delenv("DIGESTD_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "pw").write_text("from-file\n")
    assert write_config('[smtp]\npassword_file = "pw"\n').smtp.password == "from-file"
    monkeypatch.setenv("DIGESTD_SMTP_PASSWORD", "from-env")
    assert write_config("[smtp]\n").smtp.password == "from-env"
    monkeypatch.delenv("DIGESTD_SMTP_PASSWORD")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smtp-password").write_text("from-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = write_config("[smtp]\n")
    assert config.smtp.password == "from-credential"
    assert "from-credential" not in repr(config)


def test_web_secret_is_generated_once(write_config, monkeypatch):
    monkeypatch.delenv("DIGESTD_SECRET", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = write_config("[store]\npath = 'd.sqlite3'\n")
    first = web_secret(config)
    assert len(first) >= 32 and web_secret(config) == first


def test_example_file_is_generated_from_the_declarations():
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert text == example_config(), "regenerate: digestd config example > config.example.toml"


def test_example_file_parses_and_covers_every_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(example_config())
    config = load_config(path)
    assert {s.kind for s in config.sources} >= {"arxiv-rss", "arxiv-api", "hf-daily", "feed"}
    # a copy behaves as no file at all: the [smtp] table, which turns SMTP on, is commented
    assert config.smtp is None and config.delivery_method == "outbox"
    data = tomllib.loads(example_config())
    # the same text with the optional tables switched on: every setting there too, and valid
    switched_on = re.sub(r"^#(\[|\w+ = )", r"\1", example_config(), flags=re.M)
    on = tomllib.loads(switched_on)
    assert set(OPTIONAL_SECTIONS) == {"smtp"} and "smtp" not in data
    for section, cls in SECTIONS.items():
        keys = set((on if section in OPTIONAL_SECTIONS else data)[section])
        assert {toml_key(f) for f in settings(cls)} == keys, section
    (tmp_path / "on.toml").write_text(switched_on)
    assert load_config(tmp_path / "on.toml").delivery_method == "smtp"
    for f in settings(SourceConfig):
        assert re.search(rf"^# {toml_key(f)}\b", example_config(), re.M), toml_key(f)


def test_the_docs_document_every_setting():
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert "docs/configuration.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    for section, cls in [*SECTIONS.items(), ("sources", SourceConfig)]:
        table = docs.split(f"**`[{section}]`**" if section != "sources"
                           else "**`[[sources]]`**", 1)[1]
        for f in settings(cls):
            assert f"`{toml_key(f)}`" in table, f"{section}.{toml_key(f)} missing in the docs"


def test_cli_config_check_exits_2_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[smtp]\nport = true\n")
    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: smtp.port must be an integer, got True" in err
    assert "Traceback" not in err


def test_local_feed_path_is_relative_to_the_config_file(write_config, tmp_path):
    config = write_config('[[sources]]\nname = "j"\nkind = "feed"\nurl = "feeds/toc.xml"\n')
    assert config.sources[0].url == str(tmp_path / "feeds" / "toc.xml")
