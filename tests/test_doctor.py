"""`digestd doctor` against a real aiosmtpd server: what works, what is advertised, no mail."""

from __future__ import annotations

import dns.resolver
import pytest

from digestd import doctor
from digestd.cli import main
from digestd.config import load_config

from .conftest import free_port
from .test_deliver import certificate, tls_sink  # noqa: F401 - fixtures


def config(tmp_path, port: int, extra: str = "") -> str:
    path = tmp_path / "digestd.toml"
    path.write_text(f"""
[delivery]
from = "Digest <digest@papers.example.net>"

[smtp]
host = "127.0.0.1"
port = {port}
{extra}
""")
    return str(path)


def test_doctor_talks_to_the_server_and_sends_nothing(tmp_path, smtp_sink, capsys):
    cfg = config(tmp_path, smtp_sink.port, 'security = "none"')
    assert main(["-c", cfg, "doctor"]) == 0
    out = capsys.readouterr().out
    assert "ok    smtp connect" in out and "220" in out
    assert "ok    smtp EHLO" in out and "advertises:" in out and "SIZE" in out
    assert "no mail was sent" in out
    assert "warn  dkim" in out and "warn  unsubscribe" in out  # http base_url, no DKIM
    # here DNS cannot reach the internet, and the doctor says so rather than "no SPF record"
    assert "DNS is unreachable" in out or "spf" in out
    assert not smtp_sink.received


def test_doctor_checks_starttls_and_auth(tmp_path, tls_sink, certificate, capsys):  # noqa: F811
    base = f'security = "starttls"\nca_file = "{certificate[0]}"\nusername = "digest"\n'
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = config(tmp_path, tls_sink.port, base + f'password_file = "{tmp_path / "pw"}"')
    assert main(["-c", cfg, "doctor"]) == 0
    out = capsys.readouterr().out
    assert "ok    smtp STARTTLS" in out and "TLSv1." in out and "certificate verified" in out
    assert "ok    smtp EHLO after STARTTLS" in out and "AUTH" in out
    assert "ok    smtp AUTH" in out and "logged in as digest" in out
    (tmp_path / "pw").write_text("wrong\n")
    assert main(["-c", cfg, "doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  smtp AUTH" in out and "535" in out and "1 failed" in out
    assert not tls_sink.received


def test_doctor_reports_a_server_that_is_not_there(tmp_path, capsys):
    assert main(["-c", config(tmp_path, free_port(), 'security = "none"'), "doctor"]) == 1
    assert "FAIL  smtp connect" in capsys.readouterr().out


class FakeAnswer:
    def __init__(self, text: str) -> None:
        self.strings = [text.encode()]


def fake_dns(records: dict[str, list[str]]):
    class Resolver:
        timeout = lifetime = 0

        def resolve(self, name, kind):
            if name == ".":
                return [object()]
            if name not in records:
                raise dns.resolver.NXDOMAIN()
            return [FakeAnswer(t) for t in records[name]]
    return Resolver


def test_spf_dkim_and_dmarc_records(monkeypatch, tmp_path):
    config = load_config(None)
    monkeypatch.setattr(dns.resolver, "Resolver", fake_dns({
        "example.org": ["v=spf1 include:relay.example.net -all", "other"],
        "_dmarc.example.org": ["v=DMARC1; p=quarantine"]}))
    checks = {c.name: c for c in doctor.dns_checks(config)}
    assert checks["spf"].status == "ok" and checks["dmarc"].status == "ok"
    monkeypatch.setattr(dns.resolver, "Resolver", fake_dns({}))
    checks = {c.name: c for c in doctor.dns_checks(config)}
    assert checks["spf"].status == "fail" and checks["dmarc"].status == "fail"
    assert "_dmarc.example.org" in checks["dmarc"].detail


def test_a_dead_resolver_is_said_plainly(monkeypatch):
    class Dead:
        timeout = lifetime = 0

        def resolve(self, name, kind):
            raise dns.resolver.NXDOMAIN()  # what a sandbox's resolver says about everything

    monkeypatch.setattr(dns.resolver, "Resolver", Dead)
    (check,) = doctor.dns_checks(load_config(None))
    assert check.status == "warn" and "DNS is unreachable" in check.detail


@pytest.mark.skipif(not __import__("shutil").which("openssl"), reason="needs openssl")
def test_the_published_dkim_key_must_match_the_private_one(monkeypatch, write_config, tmp_path):
    import base64
    import subprocess
    keys = []
    for name in ("a.pem", "b.pem"):
        subprocess.run(["openssl", "genrsa", "-out", str(tmp_path / name), "1024"], check=True,
                       capture_output=True)
        der = subprocess.run(["openssl", "rsa", "-in", str(tmp_path / name), "-pubout",
                              "-outform", "DER"], check=True, capture_output=True).stdout
        keys.append("v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode())
    config = write_config(f'[dkim]\nselector = "s1"\nprivate_key_file = "{tmp_path / "a.pem"}"\n')
    for published, status in ((keys[0], "ok"), (keys[1], "fail")):
        monkeypatch.setattr(dns.resolver, "Resolver", fake_dns({
            "s1._domainkey.example.org": [published]}))
        checks = {c.name: c for c in doctor.dns_checks(config)}
        assert checks["dkim dns"].status == status
