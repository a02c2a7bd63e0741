"""The web's emails (confirmation, preferences link) and the unsubscribe notice are built as
digests are: CRLF line ends, the same headers, DKIM-signed with [dkim], and the link as a
plain URL under the button."""

from __future__ import annotations

import email
import email.policy
import shutil

import dkim
import pytest

from .test_dkim import dns_for, keypair  # noqa: F401 - the module's key fixture
from .test_web import Site, form


def check_like_a_digest(raw: bytes, link: str) -> email.message.EmailMessage:
    assert raw.count(b"\n") == raw.count(b"\r\n")  # CRLF only
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["From"] == "Paper digest <digest@example.org>"
    assert msg["Date"].datetime.tzinfo is not None
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Feedback-ID"].endswith(":digestd:example")
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "multipart/alternative"
    html = msg.get_body(("html",)).get_content()
    # the button, and under it the same link as text for a client that shows no button
    assert html.count(f'href="{link}"') == 2 and f">{link}</a>" in html
    assert link in msg.get_body(("plain",)).get_content()
    return msg


@pytest.mark.parametrize("signed", [False, True])
async def test_confirmation_and_preferences_mails_are_built_like_digests(tmp_path, smtp_sink,
                                                                        keypair, signed):  # noqa: F811
    if signed and not shutil.which("openssl"):
        pytest.skip("openssl makes the test key")
    key, record = keypair if signed else (None, None)
    extra = f'\n[dkim]\nselector = "mail2026"\nprivate_key_file = "{key}"\n' if signed else ""
    site = Site(tmp_path, smtp_sink, extra=extra)
    try:
        async with site.client() as client:
            await client.post("/", data=form())
            (got,) = [r for r in smtp_sink.received if r.rcpt_tos == ["ada@example.org"]]
            sub = site.store.get_subscriber("ada@example.org")
            link = next(w for w in got.message.get_body(("plain",)).get_content().split()
                        if "/confirm/" in w)
            msg = check_like_a_digest(got.data, link)
            assert msg["Subject"] == "Confirm your subscription to Paper digest"
            if signed:
                assert got.data.startswith(b"DKIM-Signature: ")
                assert dkim.verify(got.data, dnsfunc=dns_for(record))
            # an address that asks again after confirming gets its preferences link
            await client.post("/confirm/" + link.rpartition("/confirm/")[2])
            site.clock.advance(3600)
            await client.post("/", data=form())
            manage = [r for r in smtp_sink.received if r.rcpt_tos == ["ada@example.org"]][-1]
            check_like_a_digest(manage.data, site.app.state.web.links.preferences(sub.id))
            if signed:
                assert dkim.verify(manage.data, dnsfunc=dns_for(record))
    finally:
        site.store.close()


def test_the_unsubscribe_notice_is_signed_too(tmp_path, smtp_sink, keypair):  # noqa: F811
    if not shutil.which("openssl"):
        pytest.skip("openssl makes the test key")
    from digestd.config import load_config
    from digestd.inbound.unsubscribe import notice

    key, record = keypair
    site = Site(tmp_path, smtp_sink,
                extra=f'\n[dkim]\nselector = "mail2026"\nprivate_key_file = "{key}"\n')
    try:
        _, raw = notice(load_config(site.cfg), "ada@example.org")
    finally:
        site.store.close()
    assert dkim.verify(raw, dnsfunc=dns_for(record))
    check_like_a_digest(raw, "http://testserver/")
