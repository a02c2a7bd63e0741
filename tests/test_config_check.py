"""`digestd config check` refuses, with file:line: key and exit 2, whatever `run`, `send` or
`poll` would refuse or crash on later; it warns (exit 0) about what works but is probably
not meant. Addresses and time zones follow one rule in the config, the CLI and the web."""

from __future__ import annotations

import dataclasses
import logging
import math
import textwrap
import typing

import pytest

from digestd import jobs
from digestd.cli import main
from digestd.config import (
    ARXIV_ARCHIVES,
    SECTIONS,
    SourceConfig,
    duration_text,
    load_config,
    settings,
    toml_key,
)
from digestd.store import Store
from digestd.validators import is_time_zone, time_zones

ADDRESS = ('must be an email address such as "digest@example.org" or '
           '"Paper digest <digest@example.org>"')
URL = 'must be an absolute http(s) URL such as "https://digest.example.org"'
LISTEN = 'must be "HOST:PORT", "[IPv6]:PORT", ":PORT" or "unix:PATH", e.g. "127.0.0.1:8080"'
HOST = 'must be a host name or IP address such as "smtp.example.org"'
NAME = ('may hold only the letters a-z and A-Z, digits, "-", "_" and "." (it appears in logs, '
        'mail headers and rules as source:NAME)')
CATEGORIES = 'must be arXiv categories such as "cs.LG", "math.GT", "hep-th" or "astro-ph.CO"'
ZONE = 'must be an IANA time zone name such as "Europe/Berlin" (or "UTC"), as the web form offers'


@pytest.fixture(autouse=True)
def _no_secrets_from_the_environment(monkeypatch):
    monkeypatch.delenv("DIGESTD_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def check(tmp_path, capsys):
    """Write a config, run `digestd config check` on it: (exit code, stderr, config path)."""

    def run(text: str) -> tuple[int, str, str]:
        path = tmp_path / "digestd.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        code = main(["--config", str(path), "config", "check"])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return code, err, str(path)

    return run


def refused(check, text: str, line: int, message: str) -> None:
    code, err, path = check(text)
    assert (code, err) == (2, f"digestd: error: {path}:{line}: {message}\n")


def accepted(check, text: str) -> str:
    code, err, _ = check(text)
    assert code == 0, err
    return err


# -- addresses ---------------------------------------------------------------------------------

def test_from_that_is_not_an_address(check):
    refused(check, '[delivery]\nmethod = "outbox"\nfrom = "not an address"\n', 3,
            f'delivery.from {ADDRESS}, got "not an address": An email address must have an '
            "@-sign.")
    refused(check, '[delivery]\nfrom = ""\n', 2,
            f'delivery.from {ADDRESS}, got "": An email address must have an @-sign.')


@pytest.mark.parametrize("key", ["reply_to", "unsubscribe_mailto"])
def test_every_address_setting_is_checked(check, key):
    refused(check, f'[delivery]\n{key} = "bad one@example.org"\n', 2,
            f'delivery.{key} {ADDRESS}, got "bad one@example.org": The email address contains '
            "invalid characters before the @-sign: SPACE.")
    refused(check, f'[delivery]\n{key} = "Digest <digest@example.org>\\r\\nBcc: x@example.org"\n',
            2, f"delivery.{key} {ADDRESS}, got 'Digest <digest@example.org>\\r\\nBcc: "
            "x@example.org': It contains a control character (a line break, say).")


def test_display_names_are_accepted_as_the_mail_code_reads_them(check, tmp_path):
    for value in ("digest@example.org", "Paper digest <digest@example.org>",
                  '\\"Digest, Inc.\\" <digest@example.org>', "Müller <digest@example.org>"):
        accepted(check, f'[delivery]\nfrom = "{value}"\nreply_to = "{value}"\n')
    # a comma outside quotes would make the mail code read "Digest" as the address
    refused(check, '[delivery]\nfrom = "Digest, Inc. <digest@example.org>"\n', 2,
            f'delivery.from {ADDRESS}, got "Digest, Inc. <digest@example.org>": The name is not '
            'read as a name: put it in double quotes, as in "\\"Digest, Inc.\\" '
            '<digest@example.org>".')
    # an international domain goes into headers and the envelope in its ASCII form
    path = tmp_path / "idn.toml"
    path.write_text('[delivery]\nfrom = "Bücher <digest@bücher.example>"\n', encoding="utf-8")
    assert load_config(path).delivery.from_ == "Bücher <digest@xn--bcher-kva.example>"


# -- URLs, listen, hosts -----------------------------------------------------------------------

@pytest.mark.parametrize("value, shown, detail", [
    ("digest.example.org", '"digest.example.org"', ""),
    ("javascript:alert(1)", '"javascript:alert(1)"', ""),
    ("https://", '"https://"', ""),
    ("https://digest.example.org\\r\\nBcc: x@example.org",
     "'https://digest.example.org\\r\\nBcc: x@example.org'",
     ": it holds whitespace or a control character"),
    ("https://digest.example.org/a b", '"https://digest.example.org/a b"',
     ": it holds whitespace or a control character"),
    ("https://digest.example.org/?x=1", '"https://digest.example.org/?x=1"',
     ": without ? or #: links are made by adding a path to it"),
    ("https://digest.example.org:99999", '"https://digest.example.org:99999"',
     ": Port out of range 0-65535"),
])
def test_base_url_must_be_an_absolute_http_url(check, value, shown, detail):
    refused(check, f'[web]\nbase_url = "{value}"\n', 2, f"web.base_url {URL}, got {shown}{detail}")


def test_base_url_forms_that_work(check):
    for value in ("https://digest.example.org", "https://example.org/papers/",
                  "http://[2001:db8::1]:8080/x"):
        accepted(check, f'[web]\nbase_url = "{value}"\n')


def test_archive_url_is_checked_too(check):
    accepted(check, '[digest]\narchive_url = "https://example.org/a?p={period}&t={token}"\n')
    refused(check, '[digest]\narchive_url = "example.org/{period}"\n', 2,
            f'digest.archive_url {URL}, got "example.org/{{period}}"')


@pytest.mark.parametrize("value, detail", [
    ("localhost", ""),
    ("8080", ""),
    ("127.0.0.1:70000", ": port 70000 is out of range 0..65535"),
    ("[::1x]:8080", ': "::1x" is not an IPv6 address'),
    ("local host:8080", ""),
    ("127.0.0.300:8080", ': "127.0.0.300" is not a host name or IPv4 address'),
    ("-x:8080", ': "-x" is not a host name or IPv4 address'),
    ("unix:", ": the socket path is missing"),
])
def test_listen(check, value, detail):
    refused(check, f'[web]\nlisten = "{value}"\n', 2, f'web.listen {LISTEN}, got "{value}"{detail}')


def test_listen_forms_that_work(check):
    for value in ("127.0.0.1:8080", "[::1]:8080", ":8080", "localhost:8080", "127.0.0.1:0",
                  "unix:/run/digestd/web.sock"):
        accepted(check, f'[web]\nlisten = "{value}"\n')


def test_smtp_port_and_host(check):
    refused(check, "[smtp]\nport = 70000\n", 2, "smtp.port must be at most 65535, got 70000")
    refused(check, "[smtp]\nport = 0\n", 2, "smtp.port must be at least 1, got 0")
    detail = ": no spaces, line breaks, brackets or ports"
    refused(check, '[smtp]\nhost = "mail.example.org\\r\\nX"\n', 2,
            f"smtp.host {HOST}, got 'mail.example.org\\r\\nX'{detail}")
    refused(check, '[smtp]\nhost = "mail example.org"\n', 2,
            f'smtp.host {HOST}, got "mail example.org"{detail}')
    refused(check, '[smtp]\nhost = "mail.example.org:25"\n', 2,
            f'smtp.host {HOST}, got "mail.example.org:25"{detail}')
    for host in ("mail.example.org", "localhost", "127.0.0.1", "::1"):
        accepted(check, f'[smtp]\nhost = "{host}"\n[web]\nbase_url = "https://example.org"\n')


# -- numbers -----------------------------------------------------------------------------------

def test_max_connections_has_an_upper_bound(check):
    refused(check, "[smtp]\nmax_connections = 100000000\n", 2,
            "smtp.max_connections must be at most 100, got 100000000")
    accepted(check, "[smtp]\nmax_connections = 100\n")


@pytest.mark.parametrize("text, message", [
    ("[store]\nkeep_sent_days = 1000000",
     "store.keep_sent_days must be at most 36500, got 1000000"),
    ("[delivery]\nmax_attempts = 5000", "delivery.max_attempts must be at most 100, got 5000"),
    ("[smtp]\ntimeout = 1e9", "smtp.timeout must be at most 600, got 1000000000.0"),
    ("[smtp]\nmax_per_second = 1e-9",
     "smtp.max_per_second must be 0 (no limit) or at least 0.001, got 1e-09"),
    ("[digest]\nbuild_workers = 100000", "digest.build_workers must be at most 64, got 100000"),
    ('[digest]\nmax_lateness = "400d"', 'digest.max_lateness must be at most "30d", got "400d"'),
    ('[digest]\ncheck_every = "2d"', 'digest.check_every must be at most "1d", got "2d"'),
    ("[digest]\nmax_lateness = 1e12",
     'digest.max_lateness must be at most "30d", got 1000000000000.0'),
])
def test_other_numbers_with_an_upper_bound(check, text, message):
    refused(check, text + "\n", 2, message)


@pytest.mark.parametrize("key, value, message", [
    ("every", '"400d"', 'sources.every must be at most "30d", got "400d"'),
    ("timeout", '"2h"', 'sources.timeout must be at most "1h", got "2h"'),
    ("max_results", "1000000", "sources.max_results must be at most 10000, got 1000000"),
    ("days", "100000", "sources.days must be at most 30, got 100000"),
])
def test_source_numbers_with_an_upper_bound(check, key, value, message):
    refused(check, f'[[sources]]\nname = "hf"\nkind = "hf-daily"\n{key} = {value}\n', 4, message)


def test_check_every_must_be_less_than_max_lateness(check):
    # else a digest due between two checks is always later than max_lateness: merged, not sent
    refused(check, '[digest]\ncheck_every = "2h"\nmax_lateness = "1h"\n', 2,
            'digest.check_every ("2h") must be less than digest.max_lateness ("1h"): a digest '
            "due between two checks would be merged into the next one instead of sent")
    refused(check, '[digest]\nmax_lateness = "1m"\n', 2,
            'digest.check_every ("1m") must be less than digest.max_lateness ("1m"): a digest '
            "due between two checks would be merged into the next one instead of sent")


def test_every_maximum_is_in_the_help():
    for cls in [*SECTIONS.values(), SourceConfig]:
        for f in settings(cls):
            maximum = f.metadata["maximum"]
            if maximum is None:
                continue
            shown = f'"{duration_text(maximum)}"' if f.metadata["duration"] else f"{maximum:g}"
            assert f"at most {shown}" in f.metadata["help"].lower(), toml_key(f)


def float_settings() -> list[tuple[str, str, str]]:
    out = []
    for section, cls in [*SECTIONS.items(), ("sources", SourceConfig)]:
        hints = typing.get_type_hints(cls)
        out += [(section, toml_key(f), value) for f in settings(cls) if hints[f.name] is float
                for value in ("nan", "inf", "-inf")]
    return out


@pytest.mark.parametrize("section, key, value", float_settings())
def test_nan_and_infinity_are_refused_in_every_float_setting(check, section, key, value):
    if section == "sources":
        text, line = f'[[sources]]\nname = "s"\nkind = "sample"\n{key} = {value}\n', 4
    else:
        text, line = f"[{section}]\n{key} = {value}\n", 2
    shown = repr(float(value))
    assert not math.isfinite(float(value))
    refused(check, text, line, f"{section}.{key} must be a finite number, got {shown}")


# -- sources -----------------------------------------------------------------------------------

@pytest.mark.parametrize("toml, shown", [
    ('"arxiv\\nml"', "'arxiv\\nml'"),
    ('"arxiv\\u0007"', "'arxiv\\x07'"),
    ('"arxiv ml"', '"arxiv ml"'),
    ('"arxiv:ml"', '"arxiv:ml"'),
])
def test_source_names(check, toml, shown):
    refused(check, f'[[sources]]\nkind = "sample"\nname = {toml}\n', 3,
            f"sources.name {NAME}, got {shown}")


def test_source_names_that_work_and_duplicates(check):
    accepted(check, '[[sources]]\nname = "arxiv-ml_2.cs"\nkind = "sample"\n')
    refused(check, '[[sources]]\nname = "a"\nkind = "sample"\n\n[[sources]]\nname = "a"\n'
            'kind = "sample"\n', 6, 'sources.name "a" is used twice')
    # said in the same check as the other mistakes, even of the sources that hold them
    code, err, path = check('[[sources]]\nname = "a"\nkind = "sample"\nevery = "5x"\n\n'
                            '[[sources]]\nname = "a"\nkind = "sample"\n')
    assert code == 2 and f'{path}:7: sources.name "a" is used twice' in err
    assert "(2 mistakes in the config)" in err


def test_an_arxiv_category_outside_the_taxonomy_is_warned_about(check):
    err = accepted(check, '[[sources]]\nname = "a"\nkind = "arxiv-rss"\ncategories = '
                          '["cs.LGG", "cs.lg", "stat.ML", "hep-th", "cond-mat.stat-mech"]\n')
    assert ('sources.categories of "a": "cs.LGG" is no arXiv category (did you mean "cs.LG"?); '
            '"cs.lg" is no arXiv category (did you mean "cs.LG"?): arXiv answers it') in err
    assert "stat.ML" not in err and "hep-th" not in err
    assert "warning" not in accepted(check, '[[sources]]\nname = "a"\nkind = "arxiv-rss"\n'
                                            'categories = ["cs.LG", "astro-ph.CO", "q-bio.NC"]\n')


def test_arxiv_categories(check):
    known = ["cs.LG", "math.GT", "hep-th", "astro-ph.CO", "q-bio.NC", "stat.ML", "econ.EM",
             "eess.SP", "physics.optics", "cond-mat.str-el", "physics.acc-ph", "cs",
             *ARXIV_ARCHIVES]
    listed = ", ".join(f'"{c}"' for c in known)
    accepted(check, f'[[sources]]\nname = "x"\nkind = "arxiv-rss"\ncategories = [{listed}]\n')
    refused(check, '[[sources]]\nname = "x"\nkind = "arxiv-rss"\ncategories = ["cs.LG", '
            '"foo.BAR"]\n', 4, f'sources.categories {CATEGORIES}, got ["cs.LG", "foo.BAR"]: "foo" '
            f'is not an arXiv archive; they are {", ".join(ARXIV_ARCHIVES)}')
    for bad in ("cs LG", "cs.", ".LG", "cs.LG.x", "cs.LG\\n", "cs_LG"):
        code, err, _ = check(f'[[sources]]\nname = "x"\nkind = "arxiv-rss"\n'
                             f'categories = ["{bad}"]\n')
        assert code == 2 and f":4: sources.categories {CATEGORIES}, got [" in err, bad
        assert "is not of that form" in err, bad


# -- files -------------------------------------------------------------------------------------

def test_templates_dir_must_be_a_folder(check, tmp_path):
    refused(check, '[digest]\ntemplates_dir = "mine"\n', 2,
            f'digest.templates_dir must be a folder, got "{tmp_path / "mine"}": it does not exist')
    (tmp_path / "mine").write_text("")
    refused(check, '[digest]\ntemplates_dir = "mine"\n', 2,
            f'digest.templates_dir must be a folder, got "{tmp_path / "mine"}": it is not a '
            "folder")
    (tmp_path / "mine").unlink()
    (tmp_path / "mine").mkdir()
    accepted(check, '[digest]\ntemplates_dir = "mine"\n')


def test_outbox_dir_must_be_a_folder_digestd_can_write(check, tmp_path):
    (tmp_path / "afile").write_text("")
    refused(check, '[delivery]\noutbox_dir = "afile"\n', 2,
            f'delivery.outbox_dir "{tmp_path / "afile"}" is a file, not a folder: the outbox '
            "method writes its .eml files there")
    refused(check, '[delivery]\noutbox_dir = "afile/sub"\n', 2,
            f'delivery.outbox_dir "{tmp_path / "afile" / "sub"}" cannot be made: '
            f"{tmp_path / 'afile'} is a file: the outbox method writes its .eml files there")
    accepted(check, '[delivery]\noutbox_dir = "new/deep/out"\n')
    assert not (tmp_path / "new").exists()  # checked, not made


def test_the_outbox_method_stops_in_one_line_when_its_folder_cannot_be_made(tmp_path):
    """(config check refuses such a folder first; a folder removed later is said so.)"""
    from digestd.deliver import write_outbox
    (tmp_path / "afile").write_text("")
    with Store(tmp_path / "s.sqlite3") as store:
        report = write_outbox(store, tmp_path / "afile")
    assert report.stopped and "cannot make the outbox folder" in report.stopped


@pytest.mark.parametrize("url, shown", [
    ("htp://example.org/feed", 'must be an http(s) URL or a local file path, got the scheme '
                               '"htp" ("htp://example.org/feed")'),
    ("ftp://example.org/f", 'must be an http(s) URL or a local file path, got the scheme "ftp" '
                            '("ftp://example.org/f")'),
    ("http://", 'has no host ("http://")'),
    ("http://exa mple.org/f", 'holds white space or a control character ("http://exa mple.org/'
                              'f"): write a space as %20'),
    ("https://example.org:99999/f", 'is not a valid URL ("https://example.org:99999/f"): Port '
                                    "out of range 0-65535"),
    ("http//example.org/feed", 'looks like a URL with its "://" mistyped: write it as '
                               '"https://journal.example.org/feed.xml"'),
    ("https:/example.org/feed", 'looks like a URL with its "://" mistyped: write it as '
                                '"https://journal.example.org/feed.xml"'),
])
def test_a_source_url_that_can_never_be_polled(check, url, shown):
    refused(check, f'[[sources]]\nname = "j"\nkind = "feed"\nurl = "{url}"\n', 4,
            f'sources.url of "j" {shown}')


def test_a_source_path_that_reads_as_a_web_address_or_a_folder_is_warned_about(check, tmp_path):
    err = accepted(check, '[[sources]]\nname = "j"\nkind = "feed"\nurl = "example.org/f.xml"\n')
    assert 'if it is a web address, write it with "https://"' in err
    (tmp_path / "feeds").mkdir()
    err = accepted(check, '[[sources]]\nname = "j"\nkind = "feed"\nurl = "feeds"\n')
    assert "is a folder, not a feed file" in err
    for fine in ("https://journal.example.org/feed.xml", "file:///srv/feed.xml"):
        accepted(check, f'[[sources]]\nname = "j"\nkind = "feed"\nurl = "{fine}"\n')


def test_unreadable_secret_files_name_their_key_and_line(check, tmp_path):
    missing = tmp_path / "nope"

    def how(env_var: str, credential: str) -> str:  # what a missing file's error adds
        other = f"{env_var} or " if env_var else ""
        return (" (write the secret alone into it, readable by digestd only: install -m 0600 "
                f"/dev/null FILE, then edit it; or leave the setting empty and use {other}"
                f'the systemd credential "{credential}")')

    refused(check, f'[smtp]\nusername = "me"\npassword_file = "{missing}"\n', 3,
            f"smtp.password_file: cannot read secret file {missing}: No such file or directory"
            + how("DIGESTD_SMTP_PASSWORD", "smtp-password"))
    refused(check, f'[web]\nsecret_file = "{missing}"\n', 2,
            f"web.secret_file: cannot read secret file {missing}: No such file or directory"
            + how("", "secret"))
    refused(check, f'[dkim]\nselector = "s1"\nprivate_key_file = "{missing}"\n', 3,
            f"dkim.private_key_file: cannot read secret file {missing}: No such file or "
            "directory" + how("", "dkim-key"))
    refused(check, f'[smtp]\nca_file = "{missing}"\n', 2,
            f'smtp.ca_file must be a readable file, got "{missing}": No such file or directory')
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    refused(check, '[smtp]\npassword_file = "binary"\n', 2,
            f"smtp.password_file: cannot read secret file {tmp_path / 'binary'}: not UTF-8 text")


def test_a_dkim_key_that_cannot_sign(check, tmp_path):
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nbroken\n"
                                      "-----END PRIVATE KEY-----\n")
    code, err, path = check('[dkim]\nselector = "s1"\nprivate_key_file = "key.pem"\n')
    assert code == 2
    assert err.startswith(f"digestd: error: {path}:3: dkim.private_key_file: the key cannot "
                          "sign: ")


# a From address of one's own (an example domain's draws a warning of its own, below)
# (and a return path: without one mailed unsubscribes are lost, a warning of its own too)
OWN_FROM = ('[delivery]\nfrom = "Lab digest <digest@lab.uni-example.edu>"\n'
            'return_path = "bounces@lab.uni-example.edu"\n')


def test_example_from_address_and_a_missing_store_folder_are_warnings(check, tmp_path):
    text = ('[smtp]\nhost = "mail.example.org"\n[web]\nbase_url = "https://digest.example.org"'
            '\n[store]\npath = "{}"\n[delivery]\nfrom = "{}"\n'
            'return_path = "bounces@lab.uni-example.edu"\n')
    _, _, path = check(text.format("d.sqlite3", "Digest <digest@example.org>"))
    assert accepted(check, text.format("d.sqlite3", "Digest <digest@example.org>")) == (
        f"digestd: warning: {path}:8: delivery.from is still an example address (Digest "
        "<digest@example.org>): mail servers reject mail from it (RFC 2606 reserves the "
        "domain); put your own address there\n")
    assert accepted(check, text.format("d.sqlite3", "D <digest@lab.uni-example.edu>")) == ""
    got = accepted(check, text.format("nodir/d.sqlite3", "D <digest@lab.uni-example.edu>"))
    assert got.startswith(f"digestd: warning: {path}:6: store.path: the folder ") and (
        "nodir does not exist (yet)" in got and "check it for a typo" in got)


def test_username_without_password_is_a_warning(check, tmp_path, monkeypatch):
    text = '[smtp]\nhost = "mail.example.org"\nusername = "me"\n' \
           '[web]\nbase_url = "https://digest.example.org"\n' + OWN_FROM
    _, _, path = check(text)
    assert accepted(check, text) == (
        f"digestd: warning: {path}:3: smtp.username is set but no password is: set "
        "smtp.password_file, the environment variable DIGESTD_SMTP_PASSWORD or the systemd "
        'credential "smtp-password" (else AUTH is tried with an empty password)\n')
    monkeypatch.setenv("DIGESTD_SMTP_PASSWORD", "s3cret")
    assert accepted(check, text) == ""
    monkeypatch.delenv("DIGESTD_SMTP_PASSWORD")
    (tmp_path / "pw").write_text("s3cret\n")
    assert accepted(check, text.replace('"me"\n', '"me"\npassword_file = "pw"\n')) == ""


# -- time zones --------------------------------------------------------------------------------

def test_time_zone_follows_the_web_forms_rule(check, tmp_path, capsys):
    refused(check, '[digest]\ntimezone = "CET"\n', 2,
            f'digest.timezone {ZONE} them, got "CET"')
    for zone in ("Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires"):
        accepted(check, f'[digest]\ntimezone = "{zone}"\n')
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "d.sqlite3"}"\n')
    for zone, ok in (("CET", False), ("EST", False), ("Etc/GMT+5", False), ("posix/UTC", False),
                     ("Europe/Berlin", True), ("UTC", True)):
        # one rule: the list the web form offers, the config and the CLI
        assert is_time_zone(zone) is ok and (zone in time_zones()) is ok
        code = main(["-c", str(cfg), "subscribers", "add", f"{zone.replace('/', '.')}@example.org",
                     "--rule", "x", "--timezone", zone])
        err = capsys.readouterr().err
        assert code == (0 if ok else 2), zone  # a usage error
        if not ok:
            assert (f'--timezone must be an IANA time zone name such as "Europe/Berlin" (or '
                    f'"UTC"), as the web form offers them, got "{zone}"') in err


# -- unsubscribe links -------------------------------------------------------------------------

def test_base_url_not_public_https_with_smtp_is_a_warning(check):
    text = '[smtp]\nhost = "mail.example.org"\n\n[web]\nbase_url = "{}"\n' + OWN_FROM.replace(
        "{", "{{").replace("}", "}}")
    _, _, path = check(text.format("https://digest.example.org"))
    assert accepted(check, text.format("https://digest.example.org")) == ""
    tail = (": the unsubscribe links in digests sent by SMTP need a public https URL (Gmail and "
            "Yahoo honour one-click unsubscribe, RFC 8058, only over https)\n")
    assert accepted(check, text.format("http://digest.example.org")) == (
        f"digestd: warning: {path}:5: web.base_url http://digest.example.org is not https{tail}")
    for url in ("https://localhost:8080", "https://127.0.0.1", "https://[::1]/x",
                "https://digest.localhost"):
        assert accepted(check, text.format(url)) == (
            f"digestd: warning: {path}:5: web.base_url {url} points at this machine "
            f"(subscribers cannot open it){tail}")
    assert accepted(check, text.format("http://127.0.0.1:8080")) == (
        f"digestd: warning: {path}:5: web.base_url http://127.0.0.1:8080 is not https and "
        f"points at this machine (subscribers cannot open it){tail}")
    # without SMTP nobody gets the links: no warning
    assert accepted(check, '[web]\nbase_url = "http://127.0.0.1:8080"\n') == ""


async def test_send_logs_the_unsubscribe_warning_once(write_config, tmp_path, smtp_sink, caplog,
                                                      monkeypatch):
    monkeypatch.setattr(jobs, "_warned", set())
    config = write_config(f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\n'
                          'security = "none"\n[web]\nbase_url = "http://digest.example.org"\n'
                          '[delivery]\nfrom = "Digest <digest@lab.univ.edu>"\n'
                          'return_path = "bounces@lab.univ.edu"\n'
                          f'[store]\npath = "{tmp_path / "d.sqlite3"}"\n')
    with Store(config.store.path) as store, caplog.at_level(logging.WARNING, "digestd.jobs"):
        await jobs.send_outbox(config, store)
        await jobs.send_outbox(config, store)
        await jobs.build_and_send(config, store)
    logged = [r.getMessage() for r in caplog.records if "event=config_warning" in r.getMessage()]
    assert len(logged) == 1 and "web.base_url http://digest.example.org is not https" in logged[0]
    # an example From address (RFC 2606), which servers refuse, is said once too
    example = dataclasses.replace(config, delivery=dataclasses.replace(
        config.delivery, from_="Digest <digest@example.org>"))
    caplog.clear()
    with Store(config.store.path) as store, caplog.at_level(logging.WARNING, "digestd.jobs"):
        await jobs.send_outbox(example, store)
        await jobs.send_outbox(example, store)
    logged = [r.getMessage() for r in caplog.records if "event=config_warning" in r.getMessage()]
    assert len(logged) == 1 and "key=delivery.from" in logged[0]
    assert "delivery.from is still an example address" in logged[0]
    https = dataclasses.replace(config, web=dataclasses.replace(
        config.web, base_url="https://digest.example.org"))
    caplog.clear()
    with Store(config.store.path) as store, caplog.at_level(logging.WARNING, "digestd.jobs"):
        await jobs.send_outbox(https, store)
    assert not [r for r in caplog.records if "event=config_warning" in r.getMessage()]
    # without a return path, unsubscribe mails go to the From address: said once too
    lost = dataclasses.replace(https, delivery=dataclasses.replace(
        config.delivery, return_path=""))
    with Store(config.store.path) as store, caplog.at_level(logging.WARNING, "digestd.jobs"):
        await jobs.send_outbox(lost, store)
        await jobs.send_outbox(lost, store)
    logged = [r.getMessage() for r in caplog.records if "event=config_warning" in r.getMessage()]
    assert len(logged) == 1 and "key=delivery.return_path" in logged[0]


# -- the CLI's addresses -----------------------------------------------------------------------

def test_subscribers_add_checks_the_address_as_the_web_form(tmp_path, capsys):
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "d.sqlite3"}"\n')
    for address, why in (
            ("bad one@example.org",
             "The email address contains invalid characters before the @-sign: SPACE."),
            ("not-an-email", "An email address must have an @-sign."),
            ("x@localhost", "The part after the @-sign is not valid. It should have a period.")):
        assert main(["-c", str(cfg), "subscribers", "add", address, "--rule", "x"]) == 2
        err = capsys.readouterr().err
        assert err == f'digestd: error: "{address}" is not a valid email address: {why}\n'
    # stored as the web form stores it: an international domain in its ASCII form
    assert main(["-c", str(cfg), "subscribers", "add", "ada@bücher.example", "--rule", "x"]) == 0
    assert "added ada@xn--bcher-kva.example" in capsys.readouterr().out
    with Store(tmp_path / "d.sqlite3") as store:
        assert [s.email for s in store.subscribers()] == ["ada@xn--bcher-kva.example"]


def test_checks_declared_with_their_settings(check):
    # send_at and announce_types were checked by name in the loader; now by setting(check=)
    refused(check, '[digest]\nsend_at = "7am"\n', 2, 'digest.send_at must be a time as "HH:MM", '
            'got "7am"')
    refused(check, '[[sources]]\nname = "x"\nkind = "arxiv-rss"\ncategories = ["cs.LG"]\n'
            'announce_types = ["new", "old"]\n', 5, 'sources.announce_types may hold new, cross, '
            'replace, replace-cross, got ["new", "old"]')


def test_other_one_line_settings(check):
    refused(check, '[web]\ntitle = "Digest\\nBcc: x"\n', 2,
            "web.title must be one line of text without control characters, got "
            "'Digest\\nBcc: x'")
    refused(check, '[dkim]\nselector = "s 1"\n', 2, 'dkim.selector must be a DNS name such as '
            '"digest" or "example.org" (ASCII letters, digits, "-", "_" and dots), got "s 1"')
    refused(check, '[web]\ntrusted_proxies = ["10.0.0.0/33"]\n', 2,
            'web.trusted_proxies must be IP addresses or networks such as "127.0.0.1" or '
            '"10.0.0.0/8", got ["10.0.0.0/33"]: "10.0.0.0/33" is not one')


def test_one_check_names_every_mistake(tmp_path, capsys):
    cfg = tmp_path / "digestd.toml"
    cfg.write_text('[smtp]\nport = 70000\nhost = "bad host"\n\n[delivery]\nfrom = "nobody"\n\n'
                   '[[sources]]\nname = "a"\nkind = "sample"\nfoo = 1\n\n[[sources]]\n'
                   'name = "b"\nkind = "arxiv-rss"\ncategories = ["cs.XX.YY"]\n',
                   encoding="utf-8")
    assert main(["--config", str(cfg), "config", "check"]) == 2
    err = capsys.readouterr().err
    for line, key in ((2, "smtp.port"), (3, "smtp.host"), (6, "delivery.from"),
                      (11, "sources.foo"), (16, "sources.categories")):
        assert f"{cfg}:{line}: " in err and key in err, (line, key, err)
    assert "(5 mistakes in the config)" in err


def test_a_local_feed_file_not_there_is_a_warning_naming_its_line(check, tmp_path, capsys):
    text = '[[sources]]\nname = "local"\nkind = "feed"\nurl = "later.xml"\n'
    code, err, path = check(text)
    assert code == 0
    assert (f'{path}:4: sources.url of "local": no such file {tmp_path / "later.xml"} (yet)'
            in err)
    (tmp_path / "later.xml").write_text("<rss/>")
    code, err, _ = check(text)
    assert code == 0 and "no such file" not in err


def test_config_check_without_a_config_file_says_where_it_looked(tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    assert main(["config", "check"]) == 2  # as for a config with mistakes; 0 is OK
    err = capsys.readouterr().err
    # every place find_config looks, $CONFIGURATION_DIRECTORY's too (systemd sets it)
    assert ("no config file found (looked at --config, $DIGESTD_CONFIG, ./digestd.toml, "
            "$CONFIGURATION_DIRECTORY/config.toml ($CONFIGURATION_DIRECTORY is not set))" in err)
    assert "init`" in err and not (tmp_path / "digestd.sqlite3").exists()
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path / "etc"))
    assert main(["config", "check"]) == 2
    assert (f"$CONFIGURATION_DIRECTORY/config.toml ({tmp_path / 'etc' / 'config.toml'}))"
            in capsys.readouterr().err)


@pytest.mark.parametrize("every, ok", [("30", False), ('"30s"', False), ('"59s"', False),
                                       ('"1m"', True), ('"30m"', True), ("0", True),
                                       ("3600", True)])
def test_a_source_polled_more_often_than_a_minute_is_refused(check, every, ok):
    # "every = 30" meant as minutes is 30 seconds: a poll twice a minute
    code, err, path = check(f'[[sources]]\nname = "a"\nkind = "sample"\nevery = {every}\n')
    if ok:
        assert code == 0, err
    else:
        assert code == 2
        assert "digestd.toml:4: sources.every must be 0" in err and '"30m"' in err


def test_every_mistake_of_one_source_table_in_one_check(check):
    code, err, _ = check('[[sources]]\nevery = "1 hour"\nkind = "feed"\ncategories = ["cs.LG"]\n')
    assert code == 2
    assert "digestd.toml:1: sources.name is required" in err
    assert "digestd.toml:2: sources.every must be a duration" in err
    assert 'digestd.toml:4: sources.categories does not apply to kind "feed"' in err
    assert 'sources.url is required for kind "feed"' in err
    assert "(4 mistakes in the config)" in err
    # a key that is there with a mistake of its own is not also said to be missing
    code, err, _ = check('[[sources]]\nname = "a"\nkind = "feed"\nurl = 7\n')
    assert code == 2 and "sources.url is required" not in err and "mistakes" not in err
    # a bad url is said with the table's other mistakes, not once they are fixed
    code, err, _ = check('[[sources]]\nname = "bad name!"\nkind = "feed"\nevery = 30\n'
                         'url = "htp://x"\n')
    assert code == 2 and "(3 mistakes in the config)" in err
    assert 'digestd.toml:5: sources.url of "bad name!" must be an http(s) URL' in err


def test_a_section_written_as_a_key_is_named_with_its_line(check):
    code, err, _ = check('# logging\nlog = "debug"\n\n[[sources]]\nname = "a"\nkind = "sample"\n')
    assert code == 2 and "digestd.toml:2: log must be a table" in err


def test_the_checks_beyond_single_keys_name_every_mistake_in_one_check(check, tmp_path):
    code, err, path = check(f'''\
        [digest]
        templates_dir = "mine"

        [smtp]
        host = "mail.example.org"
        password_file = "{tmp_path / "nope"}"

        [dkim]
        selector = "s1"

        [inbound]
        imap_host = "imap.example.org"
        ''')
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == (f"digestd: error: {path}:2: digest.templates_dir must be a folder, got "
                        f'"{tmp_path / "mine"}": it does not exist')
    assert lines[1].startswith(f"{path}:6: smtp.password_file: cannot read secret file "
                               f"{tmp_path / 'nope'}: No such file or directory")
    assert lines[2] == f"{path}:9: dkim.selector is set but there is no key: set " \
                       "dkim.private_key_file"
    assert lines[3] == (f"{path}:12: inbound.username is required with inbound.imap_host (the "
                        "mailbox's login name)")
    assert lines[4:] == ["(4 mistakes in the config)"]


def test_the_checks_beyond_single_keys_come_with_the_keys_own_mistakes(check, tmp_path):
    code, err, path = check('[digest]\ntemplates_dir = "mine"\n\n[dkim]\nselector = "s 1"\n\n'
                            '[smtp]\nport = 70000\nca_file = "nope"\n')
    assert code == 2
    assert f"{path}:2: digest.templates_dir must be a folder" in err
    assert f"{path}:5: dkim.selector must be a DNS name" in err
    assert f"{path}:8: smtp.port must be at most" in err
    # a section with a mistake of its own is checked no further: its values are defaults
    assert "there is no key" not in err and "ca_file" not in err
    assert "(3 mistakes in the config)" in err


def test_a_dkim_key_file_that_cannot_be_read_is_said_once(check, tmp_path):
    code, err, path = check(f'[dkim]\nselector = "s1"\nprivate_key_file = "{tmp_path / "no"}"\n')
    assert code == 2 and "dkim.private_key_file: cannot read secret file" in err
    assert "there is no key" not in err and "mistakes" not in err


def test_a_top_level_key_is_an_unknown_key_not_a_section(check):
    refused(check, 'debug = true\n\n[digest]\nmax_papers = 5\n', 1,
            'unknown key "debug" (settings go in sections such as [digest])')
    # a setting of a section, written before any table: the section it belongs in
    refused(check, 'base_url = "https://digest.example.org"\n[digest]\nmax_papers = 5\n', 1,
            'unknown key "base_url" (settings go in sections such as [web])')
    code, err, _ = check("[smpt]\nhost = 'x'\n")  # a table is still a section
    assert code == 2 and "digestd.toml:1: unknown section [smpt]" in err


def test_config_check_marks_a_disabled_source(tmp_path, capsys):
    path = tmp_path / "digestd.toml"
    path.write_text(textwrap.dedent('''
        [[sources]]
        name = "ml"
        kind = "arxiv-rss"
        categories = ["cs.LG"]
        enabled = false

        [[sources]]
        name = "blog"
        kind = "feed"
        url = "https://blog.example.org/feed.xml"
        '''), encoding="utf-8")
    assert main(["--config", str(path), "config", "check"]) == 0
    assert "sources   2: ml (arxiv-rss, disabled), blog (feed)" in capsys.readouterr().out
