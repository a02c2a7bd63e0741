"""DKIM signing with the configured key, verified by dkimpy against the public key."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import shutil
import subprocess

import dkim
import pytest

from digestd.deliver import send_smtp
from digestd.errors import ConfigError
from digestd.jobs import make_renderer
from digestd.mime import DKIM_HEADERS
from digestd.store import Store

from .test_deliver import smtp
from .test_render import sample_digest

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the test key")


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dkim")
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    return key, record


def dns_for(record: bytes, name: bytes = b"mail2026._domainkey.example.org."):
    def lookup(qname, timeout=5):
        return record if qname == name else None
    return lookup


@pytest.fixture
def signed_config(write_config, keypair):
    key, _ = keypair
    return write_config(f"""
        [delivery]
        from = "Paper digest <digest@example.org>"

        [web]
        base_url = "https://digest.example.org"

        [dkim]
        selector = "mail2026"
        private_key_file = "{key}"
    """)


def test_digests_are_signed_over_the_listed_headers(signed_config, keypair):
    _, record = keypair
    _, raw = make_renderer(signed_config).message(sample_digest())
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(raw, dnsfunc=dns_for(record))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    tags = dict(t.strip().split("=", 1) for t in
                re.sub(r"\s+", "", str(msg["DKIM-Signature"])).split(";") if t)
    assert tags["d"] == "example.org" and tags["s"] == "mail2026"
    assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    assert set(tags["h"].lower().split(":")) >= {h.lower() for h in DKIM_HEADERS}


def test_a_changed_header_or_body_breaks_the_signature(signed_config, keypair):
    _, record = keypair
    _, raw = make_renderer(signed_config).message(sample_digest())
    for before, after in ((b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                           b"List-Unsubscribe-Post: nothing"),
                          (b"Subject: Paper digest", b"Subject: Cheap digest"),
                          (b"Feedback-ID: daily:digest:digestd:example",
                           b"Feedback-ID: daily:digest:digestd:other"),
                          (b"Content-Type: multipart/alternative",
                           b"Content-Type: multipart/mixed"),
                          (b"MIME-Version: 1.0", b"MIME-Version: 1.1"),
                          (b"Pruning at Scale", b"Pruning at Sale!")):
        assert before in raw
        assert not dkim.verify(raw.replace(before, after, 1), dnsfunc=dns_for(record))


async def test_the_signature_survives_smtp(signed_config, keypair, smtp_sink, tmp_path):
    _, record = keypair
    # the setup's store first, as digestd opens it before it makes the link secret
    with Store(signed_config.store.path) as store:
        message_id, raw = make_renderer(signed_config).message(sample_digest())
        sub = store.add_subscriber("ada@example.org", ["x"])
        store.queue_digest(sub.id, "2026-11-23", recipient=sub.email, message_id=message_id,
                           message=raw, paper_pks=[])
        assert (await send_smtp(store, smtp(smtp_sink), "digest@example.org")).sent == 1
    (got,) = smtp_sink.received
    assert dkim.verify(got.data, dnsfunc=dns_for(record))


def test_a_missing_key_is_a_config_error(write_config, tmp_path):
    with pytest.raises(ConfigError, match="private_key_file|cannot read"):
        write_config("""
            [dkim]
            selector = "s1"
            private_key_file = "nope.pem"
        """)
    with pytest.raises(ConfigError, match="private_key_file"):
        write_config('[dkim]\nselector = "s1"\n', name="other.toml")
