"""`digestd doctor`: checks the sending setup (SMTP, TLS, AUTH, SPF/DKIM/DMARC) without mailing.

Each check is one line a user can act on. SMTP is probed through deliver.probe (EHLO,
STARTTLS, AUTH, then QUIT before any MAIL FROM); the [inbound] mailbox through
inbound.imap.probe (login, the folder examined read-only); DNS records are looked up with dnspython
when the resolver answers at all, and the report says so plainly when it does not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.utils import parseaddr

from .config import Config, unsubscribe_mail_warning
from .validators import is_example_domain

DNS_TIMEOUT = 3.0  # seconds for all the DNS lookups of one check


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "warn", "fail" or "info"
    name: str
    detail: str


async def run_checks(config: Config) -> list[Check]:
    """Every check, in the order a user would fix things."""
    checks = config_checks(config)
    if config.store.url:
        from .store.postgres import probe

        ok, detail = await asyncio.to_thread(probe, config.store)
        checks.append(Check("ok" if ok else "fail", "store", detail))
    if config.delivery_method == "smtp" and config.smtp is not None:
        from .deliver import probe

        result = await probe(config.smtp)
        for step, ok, detail in result.steps:
            checks.append(Check("ok" if ok else "fail", f"smtp {step}", detail))
        if result.ok:
            checks.append(Check("ok", "smtp", "no mail was sent (QUIT before MAIL FROM)"))
            size = result.extensions.get("size")
            if size and size.isdigit() and 0 < int(size) < 200_000:
                checks.append(Check("warn", "smtp SIZE", f"the server takes messages of at "
                                    f"most {int(size)} bytes; a 25-paper digest is ~60 KB"))
    else:
        checks.append(Check("info", "smtp", f'delivery method is "{config.delivery_method}": '
                            f"digests are written into {config.delivery.outbox_dir}"))
    if config.inbound.enabled:
        from .inbound.imap import probe

        ok, detail = await asyncio.to_thread(probe, config.inbound, config.inbound.password)
        checks.append(Check("ok" if ok else "fail", "imap", detail))
    checks.extend(await asyncio.to_thread(dns_checks, config))
    return checks


def from_domain(config: Config) -> str:
    return parseaddr(config.delivery.from_)[1].rpartition("@")[2].lower()


def config_checks(config: Config) -> list[Check]:
    out = []
    domain = from_domain(config)
    if not domain:
        out.append(Check("fail", "from", f"delivery.from has no usable address: "
                                          f"{config.delivery.from_!r}"))
    elif is_example_domain(domain):
        out.append(Check("warn", "from", f"delivery.from is still the example address "
                                         f"({config.delivery.from_}); mail from it is rejected"))
    else:
        out.append(Check("ok", "from", config.delivery.from_))
    if config.web.base_url.startswith("https://"):
        from .render import Links  # the links' own joining: no "//u/" after a base URL's "/"

        where = Links(config.web.base_url, b"").url("/u/...")
        out.append(Check("ok", "unsubscribe", f"one-click links go to {where}"))
    else:
        out.append(Check("warn", "unsubscribe", f"web.base_url is {config.web.base_url}: Gmail "
                                                "and Yahoo honour one-click unsubscribe (RFC "
                                                "8058) only over https"))
    by_mail = unsubscribe_mail_warning(config)
    if by_mail:
        out.append(Check("warn", "unsubscribe by mail", by_mail))
    if config.dkim.selector:
        try:
            make_signer(config)
        except Exception as e:  # dkimpy raises several types for a bad key
            out.append(Check("fail", "dkim", f"the private key cannot sign: {e}"))
        else:
            out.append(Check("ok", "dkim", f"signing as d={dkim_domain(config)} "
                                           f"s={config.dkim.selector}"))
    else:
        out.append(Check("warn", "dkim", "not configured ([dkim] selector, private_key_file): "
                                         "Gmail and Yahoo require DKIM from bulk senders, unless "
                                         "your relay signs for you"))
    return out


def dkim_domain(config: Config) -> str:
    return config.dkim.domain or from_domain(config)


def make_signer(config: Config):
    from .mime import DkimSigner

    return DkimSigner(config.dkim.selector, dkim_domain(config), config.dkim.private_key)


def dns_checks(config: Config) -> list[Check]:
    """SPF, DKIM and DMARC records of the From domain, or one line saying DNS is unreachable."""
    domain = from_domain(config)
    if not domain:
        return []
    try:
        import dns.exception
        import dns.resolver
    except ImportError:
        return [Check("warn", "dns", "dnspython is not installed: SPF, DKIM and DMARC records "
                                     "not checked (pip install dnspython)")]
    try:
        resolver = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return [Check("warn", "dns", "no DNS resolver configured: SPF, DKIM and DMARC records "
                                     "not checked")]
    resolver.timeout = resolver.lifetime = DNS_TIMEOUT

    class Unreachable(Exception):
        pass

    def txt(name: str) -> list[str]:
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as e:
            raise Unreachable(str(e) or type(e).__name__) from None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    # a resolver that cannot reach the internet may still answer (NXDOMAIN for everything,
    # as in a sandbox): only one that knows the root zone is believed when it says "none"
    try:
        resolver.resolve(".", "NS")
    except dns.exception.DNSException as e:
        return [Check("warn", "dns", f"DNS is unreachable (the resolver cannot resolve the root "
                                     f"zone: {type(e).__name__}): SPF, DKIM and DMARC records "
                                     f"of {domain} not checked. Run `digestd doctor` where DNS "
                                     "works, or look them up with `dig TXT`.")]
    out = []
    try:
        spf = [t for t in txt(domain) if t.lower().startswith("v=spf1")]
        out.append(Check("ok", "spf", spf[0]) if len(spf) == 1 else
                   Check("fail", "spf", f"{domain} has {len(spf)} SPF records; it needs "
                                        "exactly one TXT \"v=spf1 ...\" naming your relay"))
        dmarc = [t for t in txt(f"_dmarc.{domain}") if t.lower().startswith("v=dmarc1")]
        out.append(Check("ok", "dmarc", dmarc[0]) if dmarc else
                   Check("fail", "dmarc", f"no DMARC record at _dmarc.{domain}: Gmail and Yahoo "
                                          'require one from bulk senders (at least "v=DMARC1; '
                                          'p=none")'))
        if config.dkim.selector:
            name = f"{config.dkim.selector}._domainkey.{dkim_domain(config)}"
            records = [t for t in txt(name) if "p=" in t]
            out.append(_dkim_record_check(config, name, records))
    except Unreachable as e:
        return [Check("warn", "dns", f"DNS is unreachable ({e}): SPF, DKIM and DMARC records "
                                     f"of {domain} not checked. Run `digestd doctor` where DNS "
                                     "works, or look them up with `dig TXT`.")]
    return out


def _dkim_record_check(config: Config, name: str, records: list[str]) -> Check:
    if not records:
        return Check("fail", "dkim dns", f"no DKIM key published at {name}")
    import dkim

    # the published key is right when it verifies what our private key signs
    signer = make_signer(config)
    signed = signer.sign(b"From: doctor@" + dkim_domain(config).encode() +
                         b"\r\nTo: x@example.org\r\nSubject: t\r\nDate: x\r\nMessage-ID: <x@y>"
                         b"\r\nList-Id: x\r\nList-Unsubscribe: <x>\r\n"
                         b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nbody\r\n")
    record = records[0].encode()
    if dkim.verify(signed, dnsfunc=lambda *_a, **_k: record):
        return Check("ok", "dkim dns", f"{name} holds the public half of the configured key")
    return Check("fail", "dkim dns", f"the key at {name} does not match dkim.private_key_file")
