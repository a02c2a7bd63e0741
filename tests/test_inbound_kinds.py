"""Mail that comes back, kind by kind, in the shapes real senders give it: auto-replies,
bounces that are not ours, DSNs whose Status is a generic X.0.0 or whose report part is
encoded, delay warnings and bounces in plain text, subjects of encoded words. Each message
is built here for the test store of tests/test_inbound.py (reader1..reader6@example.net,
one digest each, sent from a VERP return path)."""

from __future__ import annotations

import base64
import logging
import quopri

import pytest
from aiosmtplib import SMTPResponseException

from digestd.config import load_config
from digestd.deliver import classify
from digestd.inbound import handle_message
from digestd.tokens import unsubscribe_mail_token

from . import test_inbound
from .test_inbound import ADDRESSES, imap_runs, pipe, queue_digest, state, subscriber

site = test_inbound.site  # the fixture: reader1..reader6@example.net, one digest each


def ours(site, n: int) -> dict[str, str]:
    """What a message that comes back for readerN quotes of the digest they were sent."""
    address = ADDRESSES[n - 1]
    got = site.sent_to(address)[-1]
    head = got.data.decode().replace("\r\n", "\n").split("\n\n", 1)[0]
    return {"verp": got.mail_from, "addr": address, "mid": got.message["Message-ID"],
            "headers": head + "\n"}


def handle(site, raw: bytes | str, recipient: str = ""):
    raw = raw.encode("utf-8") if isinstance(raw, str) else raw
    with site.store() as store:
        return handle_message(raw, config=load_config(site.cfg), store=store,
                              recipient=recipient)


def changes_nothing(site, raw: bytes | str, *kinds: str):
    before = state(site)
    handled = handle(site, raw)
    assert handled.kind in kinds, handled
    assert not handled.changed
    assert state(site)[:2] == before[:2], handled  # no subscriber, no message changed
    return handled


def dsn(o: dict, block: str, *, ctype: str = "message/delivery-status", cte: str = "",
        to: str = "", text: str = "The mail system could not deliver your message.") -> str:
    """A Postfix-shaped DSN whose per-recipient fields are `block`, as the part `ctype`."""
    return f"""\
Return-Path: <>
Delivered-To: {to or o['verp']}
From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to or o['verp']}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b0"
Message-Id: <dsn.{abs(hash((block, ctype, cte, to)))}@mail.example.org>

--b0
Content-Type: text/plain; charset=us-ascii

{text}

--b0
Content-Type: {ctype}{cte and chr(10) + 'Content-Transfer-Encoding: ' + cte}

{block}
--b0
Content-Type: text/rfc822-headers

{o['headers']}
--b0--
"""


def fields(address: str, status: str, diagnostic: str, action: str = "failed") -> str:
    return (f"Reporting-MTA: dns; mail.example.org\n\nFinal-Recipient: rfc822; {address}\n"
            f"Action: {action}\nStatus: {status}\nRemote-MTA: dns; mx1.example.net\n"
            f"Diagnostic-Code: smtp; {diagnostic}\n")


# -- auto-replies are no bounces ---------------------------------------------------------------

OUT_OF_OFFICE = """\
Return-Path: <>
Delivered-To: {verp}
From: Reader One <{addr}>
To: <{verp}>
Subject: {subject}
Message-ID: <ooo.{tag}@mail.example.net>
In-Reply-To: {mid}
{more}MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{body}
"""

AUTO_REPLIES = {  # subject, headers, body
    "exchange_automatic_reply": (
        "Automatic reply: Digest 2026-11-30", "Auto-Submitted: auto-replied\n",
        ("I am out of the office until 7 December. For urgent matters please contact\n"
         "my colleague, Jane Roe, jane.roe@example.net, or the office.")),
    "sieve_vacation_german": (
        "Abwesenheitsnotiz: Digest 2026-11-30", "Auto-Submitted: auto-replied (vacation)\n",
        ("Ich bin bis 4. Dezember nicht im Büro.\n"
         "Bitte wenden Sie sich an das Sekretariat, sekretariat@example.net, Tel. 555-0100.")),
    "french_encoded_subject": (
        "=?utf-8?q?R=C3=A9ponse_automatique=C2=A0:_Digest?=", "Auto-Submitted: auto-replied\n",
        "Je suis absent. En cas d'urgence : Marie Dupont, marie.dupont@example.net, merci."),
    "x_autoreply_reply_subject": (
        "Re: Digest 2026-11-30", "X-Autoreply: yes\n",
        ("Your message could not be delivered to {addr} until I am back, sorry.\n"
         "Urgent: the desk, desk@example.net, anytime.")),
    "precedence_auto_reply": (
        "Digest 2026-11-30", "Precedence: auto_reply\n",
        "Away. Contact: Jane Roe, jane.roe@example.net, please."),
    "ticket_system_auto_generated": (
        "[#48151] Your request has been received", "Auto-Submitted: auto-generated\n",
        ("Your message could not be delivered to a person yet: {addr} opened ticket #48151.\n"
         "Reply above this line, support@example.net, to add to it.")),
    "challenge_response": (
        "Please confirm your message to {addr}", "Auto-Submitted: auto-replied\n",
        ("You recently sent a message to {addr}, who uses CR-Guard.\n"
         "Please confirm by visiting https://crguard.example/c/8f7e\n\n"
         "Your message could not be delivered to {addr} until you confirm.")),
}


@pytest.mark.parametrize("name", sorted(AUTO_REPLIES))
def test_an_auto_reply_to_the_return_path_is_no_bounce(site, name):
    """RFC 3834 auto-replies go to the return path, with a null one of their own: neither
    that nor a line flufl.bounce's loose detectors take for a failure makes a bounce."""
    subject, more, body = AUTO_REPLIES[name]
    o = ours(site, 1)
    raw = OUT_OF_OFFICE.format(subject=subject.format(**o), more=more, body=body.format(**o),
                               tag=name, **o)
    handled = changes_nothing(site, raw, "unrecognized")
    assert handled.subscriber_id is None


def test_out_of_office_replies_to_every_digest_never_make_a_reader_bouncing(site):
    """Each digest has its own return path, so an absence of weeks answers every one."""
    address = ADDRESSES[0]
    sub = subscriber(site, address)
    subject, more, body = AUTO_REPLIES["exchange_automatic_reply"]
    for n in range(4):
        if n:
            with site.store() as store:
                queue_digest(store, sub, f"2000-01-0{n}")  # never today's period
            from digestd.cli import main
            assert main(["-c", site.cfg, "send"]) == 0
        o = ours(site, 1)
        assert handle(site, OUT_OF_OFFICE.format(subject=subject, more=more, body=body,
                                                 tag=n, **o)).kind == "unrecognized"
    after = subscriber(site, address)
    assert (after.status, after.bounces) == ("active", 0)


def test_the_inbound_command_says_unrecognized_for_an_out_of_office(site):
    subject, more, body = AUTO_REPLIES["exchange_automatic_reply"]
    raw = OUT_OF_OFFICE.format(subject=subject, more=more, body=body, tag="cli",
                               **ours(site, 1)).encode()
    before = state(site)
    done = pipe(site, raw)
    assert (done.returncode, done.stdout.strip()) == (0, b"unrecognized"), done.stderr
    assert state(site) == before  # no key kept either: nothing was done


EXIM_TEXT = """\
Return-path: <>
Envelope-to: {verp}
X-Failed-Recipients: {failed}
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@smtp.example.org>
To: {verp}
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1exim-{tag}@smtp.example.org>

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {failed}
    {reason}

------ This is a copy of the message, including all the headers. ------

{headers}
"""


def test_a_non_standard_bounce_counts_only_for_the_address_the_message_went_to(site):
    """The token names reader2's digest; a text bounce whose failed address is another (a
    forward, a guess of the heuristics) counts for nobody. A DSN names its recipient in a
    field, not by a guess: there the token decides (a forward's DSN counts)."""
    o = ours(site, 2)
    raw = EXIM_TEXT.format(failed="someone.else@elsewhere.example", reason="Unrouteable address",
                           tag="other", **o)
    assert changes_nothing(site, raw, "unrecognized").detail == "failed_address_not_theirs"
    handled = handle(site, EXIM_TEXT.format(failed=o["addr"], reason="Unrouteable address",
                                            tag="theirs", **o))
    assert (handled.kind, handled.changed) == ("bounce", True)
    o = ours(site, 3)
    forwarded = dsn(o, fields("reader.three@forward.example", "5.1.1",
                              "550 5.1.1 User unknown"))
    handled = handle(site, forwarded)
    assert (handled.kind, handled.changed) == ("bounce", True)
    assert handled.subscriber_id == subscriber(site, o["addr"]).id


# -- bounces that are not ours ---------------------------------------------------------------------

def test_a_bounce_that_names_none_of_ours_is_unrecognized(site):
    """No token, no subscriber with the failed address (a bounce of someone else's mail, to
    postmaster@): nothing of ours, so "anything else": unrecognized, and no key kept."""
    o = ours(site, 1)
    stranger = {**o, "headers": "From: Shop <news@shop.example>\nTo: stranger@elsewhere.example\n"
                "Subject: Black Friday\nMessage-ID: <bf.1@shop.example>\n"}
    messages = [
        dsn(stranger, fields("stranger@elsewhere.example", "5.1.1", "550 5.1.1 User unknown"),
            to="postmaster@example.org"),
        dsn(stranger, fields("stranger@elsewhere.example", "4.4.1", "451 4.4.1 no answer",
                             action="delayed"), to="postmaster@example.org"),
        EXIM_TEXT.format(verp="postmaster@example.org", failed="stranger@elsewhere.example",
                         reason="Unrouteable address", tag="stranger",
                         headers=stranger["headers"]),
    ]
    before = state(site)
    for raw in messages:
        handled = handle(site, raw)
        assert (handled.kind, handled.subscriber_id) == ("unrecognized", None), handled
    assert state(site) == before
    with site.store() as store:
        assert store.inbound_counts() == {"unrecognized": 3}
    done = pipe(site, messages[0].encode())
    assert (done.returncode, done.stdout.strip()) == (0, b"unrecognized")


# -- a generic Status: the reply in Diagnostic-Code decides ------------------------------------

KIND_OF = {"bounced": "bounce", "deferred": "delay", "failed": "refused"}


@pytest.mark.parametrize("reply, kind", [
    ("554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org",
     "refused"),
    ("550 5.7.26 Unauthenticated email from example.org is not accepted due to DMARC",
     "refused"),
    ("552 5.3.4 Message size exceeds fixed limit", "refused"),
    ("554 Transaction failed: spam message rejected", "refused"),
    ("552 5.2.2 <ADDR>: Mailbox full, quota exceeded", "delay"),
    ("552 sorry, mailbox ADDR is over quota, try again later", "delay"),
    ("552 Requested mail action aborted: exceeded storage allocation", "delay"),
    ("550 5.1.1 <ADDR>: No such user here", "bounce"),
    ("550 No such user here", "bounce"),
    ("550-5.1.1 The email account that you tried to reach does not exist. 550 5.1.1 gsmtp",
     "bounce"),
])
@pytest.mark.parametrize("status", ["5.0.0", ""])
def test_a_generic_status_is_read_by_the_reply_it_quotes(site, reply, kind, status):
    """Exim writes Status: 5.0.0 for every failure (and Postfix when the remote reply had no
    enhanced code): the reply in Diagnostic-Code says what happened, read as deliver.classify
    reads the same reply at RCPT."""
    o = ours(site, 2)
    reply = reply.replace("ADDR", o["addr"])
    block = fields(o["addr"], status, reply)
    if not status:
        block = block.replace("Status: \n", "")
    handled = handle(site, dsn(o, block))
    assert handled.kind == kind, handled
    assert handled.changed == (kind == "bounce")
    code, _, text = reply.partition(" ")
    smtp = classify("RCPT", SMTPResponseException(int(code[:3]), (code[4:] + " " + text)
                                                  if "-" in code else text))
    assert KIND_OF[smtp.kind] == kind  # the same answer at SMTP time


def test_a_specific_status_is_not_overruled_by_the_diagnostic(site):
    o = ours(site, 2)
    handled = handle(site, dsn(o, fields(o["addr"], "5.1.1", "554 5.7.1 blocked")))
    assert (handled.kind, handled.detail) == ("bounce", "5.1.1")


def test_a_failed_action_with_a_temporary_reply_counts_nothing(site):
    """A relay that gave up after retrying (Exim's retry timeout) quotes the last 4xx."""
    o = ours(site, 2)
    changes_nothing(site, dsn(o, fields(o["addr"], "5.0.0", "451 4.7.1 Greylisted, try later")),
                    "delay")


# -- encoded delivery-status parts ---------------------------------------------------------------

def utf8_fields(address: str) -> str:
    return (f"Reporting-MTA: dns; mail.example.org\n\nOriginal-Recipient: utf-8; {address}\n"
            f"Final-Recipient: utf-8; {address}\nAction: failed\nStatus: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 Empfänger unbekannt – Postfach gelöscht\n")


@pytest.mark.parametrize("ctype", ["message/global-delivery-status", "message/delivery-status"])
@pytest.mark.parametrize("cte", ["", "8bit", "base64", "quoted-printable"])
def test_a_delivery_status_part_is_read_whatever_its_type_and_encoding(site, ctype, cte):
    """RFC 6533's message/global-delivery-status (Postfix, for SMTPUTF8 mail), which Python
    parses as one message; and a part base64 or quoted-printable encoded (not what RFC 3464
    allows, but sent): each is read as a message/delivery-status is."""
    o = ours(site, 3)
    block = utf8_fields(o["addr"])
    if cte == "base64":
        block = base64.encodebytes(block.encode()).decode()
    elif cte == "quoted-printable":
        block = quopri.encodestring(block.encode()).decode()
    raw = dsn(o, block, ctype=ctype, cte=cte)
    if ctype == "message/global-delivery-status":
        raw = raw.replace("text/rfc822-headers", "message/global-headers")
    handled = handle(site, raw)
    assert (handled.kind, handled.detail, handled.changed) == ("bounce", "5.1.1", True)
    assert handled.subscriber_id == subscriber(site, o["addr"]).id


def test_a_global_dsn_without_a_token_finds_its_utf8_recipient(site):
    o = ours(site, 4)
    raw = dsn(o, utf8_fields(o["addr"]), ctype="message/global-delivery-status",
              to="digest@example.org").replace(o["verp"], "digest@example.org")
    handled = handle(site, raw)
    assert (handled.kind, handled.changed) == ("bounce", True)
    assert "by_address" in handled.detail
    # the log and the result name the message the bounce was put on: their newest
    with site.store() as store:
        (newest,) = store.db.execute("SELECT max(id) FROM digests WHERE message_id = ?",
                                     (o["mid"],)).fetchone()
    assert newest is not None and handled.digest_id == newest


# -- delay warnings in plain text --------------------------------------------------------------

DELAYS = {
    "exim_greylisted": ("Warning: message 1tHb7u-0001aA-1B delayed 24 hours", """\
This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on smtp.example.org.

The address to which the message has not yet been delivered is:

  {addr}
    host mx1.example.net [203.0.113.25]
    Delay reason: SMTP error from remote mail server after RCPT TO:<{addr}>:
    451 4.7.1 <{addr}>: Recipient address rejected: Greylisted

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered."""),
    "sendmail_four_hours": ("Warning: could not send message for past 4 hours", """\
    **********************************************
    **      THIS IS A WARNING MESSAGE ONLY      **
    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **
    **********************************************

The original message was received at Mon, 30 Nov 2026 16:10:26 -0500

   ----- The following addresses had transient non-fatal errors -----
<{addr}>

   ----- Transcript of session follows -----
<{addr}>... Deferred: Connection timed out with mx1.example.net.
Warning: message still undelivered after 4 hours
Will keep trying until message is 5 days old"""),
    "only_a_temporary_code": ("Mail delivery failed: returning message to sender", """\
A message that you sent could not be delivered to one or more of its
recipients. The following address(es) failed:

  {addr}
    SMTP error from remote mail server after RCPT TO:<{addr}>:
    450 4.2.1 <{addr}>: Mailbox temporarily unavailable"""),
}


@pytest.mark.parametrize("name", sorted(DELAYS))
def test_a_delay_warning_in_plain_text_counts_nothing(site, name):
    subject, body = DELAYS[name]
    o = ours(site, 2)
    raw = (f"Return-path: <>\nEnvelope-to: {o['verp']}\nAuto-Submitted: auto-replied\n"
           f"From: Mail Delivery System <Mailer-Daemon@smtp.example.org>\nTo: {o['verp']}\n"
           f"Subject: {subject}\nMessage-Id: <delay.{name}@smtp.example.org>\n\n"
           + body.format(**o) + "\n")
    changes_nothing(site, raw, "delay", "unrecognized")


# -- a detector that raises does not lose the scan ------------------------------------------------

QMAIL = """\
Return-Path: <>
Delivered-To: {verp}
From: {sender}
To: {verp}
Subject: failure notice
Message-ID: <qmail.{tag}@mx.oldhost.example>

Hi. This is the qmail-send program at mx.oldhost.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{addr}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

{headers}
"""


@pytest.mark.parametrize("sender", [
    "Système de messagerie <MAILER-DAEMON@mx.oldhost.example>",  # raw UTF-8 (RFC 6532)
    "Почтовая система <MAILER-DAEMON@mx.oldhost.example>",
    "",  # an empty From: flufl.bounce's Yale detector raises IndexError
])
def test_a_detector_that_raises_leaves_the_others_to_find_the_bounce(site, sender, caplog):
    o = ours(site, 5)
    raw = QMAIL.format(sender=sender, tag=abs(hash(sender)), **o).encode("utf-8")
    with caplog.at_level(logging.DEBUG):
        handled = handle(site, raw)
    assert (handled.kind, handled.detail, handled.changed) == ("bounce", "5.1.1", True)
    # no ERROR and traceback of flufl.bounce's own for a detector that raised
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]


def test_a_flufl_bounce_without_its_detector_list_is_run_whole_and_quietly(site, monkeypatch,
                                                                          caplog):
    """flufl.bounce's list of detectors is not public API: without it, its all_failures
    runs, on a message with headers of plain text, and a detector that raises costs that
    scan only, with no ERROR or traceback of flufl.bounce's in the log."""
    from digestd.inbound import dsn as dsn_module

    monkeypatch.setattr(dsn_module, "_detectors", lambda: None)
    o = ours(site, 5)
    utf8 = QMAIL.format(sender="Système <MAILER-DAEMON@mx.oldhost.example>", tag="u", **o)
    with caplog.at_level(logging.DEBUG):
        handled = handle(site, utf8)
        assert (handled.kind, handled.detail) == ("bounce", "5.1.1")
        empty = handle(site, QMAIL.format(sender="", tag="e", **o))  # Yale raises
    assert empty.kind in ("bounce", "unrecognized")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


# -- bounces in a form no detector knows ---------------------------------------------------------

EXCHANGE_2003 = """\
Return-Path: <>
Delivered-To: {verp}
From: System Administrator <postmaster@corp.example.com>
To: {verp}
Subject: Undeliverable: Digest 2026-11-30
Message-ID: <exch.{tag}@EXCH01.corp.example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="NextPart"

--NextPart
Content-Type: text/plain; charset="us-ascii"

Your message did not reach some or all of the intended recipients.

The following recipient(s) could not be reached:

      {failed} on 11/30/2026 9:10 PM
            The e-mail account does not exist at the organization this message was sent to.
            <EXCH01.corp.example.com {code}>

--NextPart
Content-Type: message/rfc822

{headers}
Digest body, to {addr}.
--NextPart--
"""


def test_a_bounce_of_a_form_no_detector_knows_counts_by_its_code_and_address(site):
    o = ours(site, 1)
    handled = handle(site, EXCHANGE_2003.format(failed=o["addr"], code="#5.1.1", tag=1, **o))
    assert (handled.kind, handled.detail, handled.changed) == ("bounce", "5.1.1", True)
    # the same naming another address, or giving no status code: nothing
    o = ours(site, 2)
    changes_nothing(site, EXCHANGE_2003.format(failed="other@corp.example.com", code="#5.1.1",
                                               tag=2, **o), "unrecognized")
    changes_nothing(site, EXCHANGE_2003.format(failed=o["addr"], code="", tag=3, **o),
                    "unrecognized")


def test_a_bounce_in_another_language_and_charset_is_read(site):
    o = ours(site, 6)
    french = (f"Votre message n'a pas pu être remis.\n\nImpossible de joindre :\n\n"
              f"      {o['addr']} le 30/11/2026 22:10\n"
              "            Le compte de messagerie n'existe pas.\n"
              "            <EXFR01.entreprise.example.fr #5.1.1>\n")
    raw = (f"Return-Path: <>\nDelivered-To: {o['verp']}\n"
           "From: =?iso-8859-1?Q?Administrateur_syst=E8me?= <postmaster@entreprise.example.fr>\n"
           f"To: {o['verp']}\nSubject: =?iso-8859-1?Q?Non_remis=A0:_Digest?=\n"
           "Message-ID: <fr.1@entreprise.example.fr>\nMIME-Version: 1.0\n"
           'Content-Type: text/plain; charset="iso-8859-1"\n'
           "Content-Transfer-Encoding: quoted-printable\n\n"
           + quopri.encodestring(french.encode("latin-1")).decode())
    handled = handle(site, raw)
    assert (handled.kind, handled.changed) == ("bounce", True)
    o = ours(site, 4)
    chinese = f"很抱歉您的邮件无法送达以下收件人：\n{o['addr']}\n错误代码：550 5.1.1 Mailbox not found\n"
    raw = (f"Return-Path: <>\nDelivered-To: {o['verp']}\n"
           "From: =?gb18030?B?z7XNs83L0MU=?= <postmaster@mail.example.cn>\n"
           f"To: {o['verp']}\nSubject: =?gb18030?B?z7XNs83L0MU6IERpZ2VzdA==?=\n"
           "Message-ID: <cn.1@mail.example.cn>\nMIME-Version: 1.0\n"
           'Content-Type: text/plain; charset="gb18030"\nContent-Transfer-Encoding: base64\n\n'
           + base64.encodebytes(chinese.encode("gb18030")).decode())
    handled = handle(site, raw)
    assert (handled.kind, handled.detail, handled.changed) == ("bounce", "5.1.1", True)


# -- a mailto: unsubscribe with an encoded subject -------------------------------------------------

@pytest.mark.parametrize("encoding", ["B", "Q"])
def test_a_subject_of_encoded_words_unsubscribes(site, encoding):
    address = ADDRESSES[5]
    sub = subscriber(site, address)
    text = f"unsubscribe {unsubscribe_mail_token(site.secret, sub.id)}"
    word = (base64.b64encode(text.encode()).decode() if encoding == "B"
            else text.replace(" ", "_"))
    raw = (f"From: Reader Six <{address}>\nTo: unsubscribe@example.org\n"
           f"Subject: =?UTF-8?{encoding}?{word}?=\nMessage-ID: <u.{encoding}@example.net>\n\n\n")
    handled = handle(site, raw)
    assert (handled.kind, handled.subscriber_id, handled.changed) == ("unsubscribe", sub.id,
                                                                     True)


# -- in the [inbound] mailbox ----------------------------------------------------------------------

def test_mail_not_ours_stays_unread_in_a_real_mailbox(site, mailbox):
    """Real Dovecot, the daemon's own handler: a reader's reply and an out-of-office stay in
    the folder, unread, for a person; the bounce beside them is handled and moved; later
    runs read neither again, nor count them."""
    from digestd.inbound.imap import PROCESSED

    o = ours(site, 1)
    reply = (f"From: Reader One <{o['addr']}>\nTo: Digest <digest@example.org>\n"
             f"Subject: Re: Digest 2026-11-30\nMessage-ID: <reply.1@example.net>\n"
             f"In-Reply-To: {o['mid']}\n\nPlease unsubscribe me, and could you add bioRxiv?\n")
    subject, more, body = AUTO_REPLIES["exchange_automatic_reply"]
    away = OUT_OF_OFFICE.format(subject=subject, more=more, body=body, tag="imap", **o)
    o2 = ours(site, 2)
    bounce = dsn(o2, fields(o2["addr"], "5.1.1", "550 5.1.1 User unknown"))
    mailbox.append(reply.encode(), away.encode(), bounce.encode())
    first, second = imap_runs(site, mailbox)
    assert (first.fetched, first.handled, first.left) == (3, 1, 2)
    assert (second.fetched, second.handled, second.left) == (0, 0, 0)
    folders = mailbox.folders()
    assert folders["INBOX"] == {"messages": 2, "unseen": 2}
    assert folders[PROCESSED] == {"messages": 1, "unseen": 0}
    with site.store() as store:
        assert store.inbound_counts() == {"bounce": 1, "unrecognized": 2}
    assert subscriber(site, o["addr"]).status == "active"
