"""The checks the config, the CLI and the web app share: email addresses and time zones."""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email

__all__ = ["EmailNotValidError", "email_address", "is_time_zone", "mailbox", "mailbox_key",
           "time_zones"]

# Providers that ignore dots in the local part (Gmail: "j.doe" and "jdoe" are one mailbox).
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def email_address(text: str) -> str:
    """An address as typed -> the form digestd stores and sends to; raises EmailNotValidError
    (a ValueError) whose message says what is wrong. No DNS lookup.

    No SMTPUTF8: an address every mail server can deliver to, with an international domain
    in its ASCII (punycode) form."""
    checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    return checked.ascii_email or checked.normalized


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to, for counting mails to one person: lowercase,
    without a "+tag" (RFC 5233 subaddress, which nearly every provider supports), and for
    providers that ignore them, without dots ("V.ictim+1@gmail.com" -> "victim@gmail.com").
    Only for limits; the address itself is stored and mailed as given."""
    local, _, domain = address.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


_MAILBOX = re.compile(r"\s*(?:(?P<name>[^<>]*?)\s*<(?P<angle>[^<>]*)>|(?P<bare>[^<>]*))\s*")


def mailbox(text: str) -> tuple[str, str]:
    """An address with an optional display name, "Paper digest <digest@example.org>" ->
    (display name, address as `email_address` returns it); raises EmailNotValidError.

    The name is read as the mail code reads it (email.utils.parseaddr), so a name is
    accepted as it was before addresses were checked; what parseaddr would read
    differently (an unquoted comma, say) is refused."""
    if any(unicodedata.category(c)[0] == "C" for c in text):
        raise EmailNotValidError("It contains a control character (a line break, say).")
    m = _MAILBOX.fullmatch(text)
    if not m:
        raise EmailNotValidError('Write it as "Name <address>" or just the address.')
    written = (m["angle"] if m["angle"] is not None else m["bare"]).strip()
    address = email_address(written)
    name, parsed = parseaddr(text)
    if parsed != written:
        raise EmailNotValidError('The name is not read as a name: put it in double quotes, as '
                                 'in "\\"Digest, Inc.\\" <digest@example.org>".')
    return name, address


_TIME_ZONES: tuple[str, ...] = ()
_ZONE_SET: frozenset[str] = frozenset()


def time_zones() -> tuple[str, ...]:
    """IANA zone names digestd accepts and the web forms offer (the system's tz database:
    "Region/City" names and UTC; no aliases such as CET or EST), sorted."""
    global _TIME_ZONES, _ZONE_SET
    if not _TIME_ZONES:
        names = {z for z in available_timezones()
                 if "/" in z and not z.startswith(("posix/", "right/", "Etc/", "SystemV/"))}
        _TIME_ZONES = tuple(sorted(names | {"UTC"}))
        _ZONE_SET = frozenset(_TIME_ZONES)
    return _TIME_ZONES


def is_time_zone(name: str) -> bool:
    """True for a zone name of `time_zones()`: the one rule for config, CLI and web."""
    time_zones()
    return name in _ZONE_SET


def time_zone_hint(value: str) -> str:
    """' (did you mean "Europe/Berlin"?)' for a near miss of a time zone name, else ""."""
    import difflib

    close = difflib.get_close_matches(value, time_zones(), n=1, cutoff=0.8)
    if not close:  # "europe/berlin", "berlin"
        lowered = {z.lower(): z for z in time_zones()}
        close = [lowered[value.lower()]] if value.lower() in lowered else [
            z for z in time_zones() if z.lower().endswith("/" + value.lower())][:1]
    return f' (did you mean "{close[0]}"?)' if close else ""


def is_example_domain(domain: str) -> bool:
    """A domain RFC 2606 reserves for examples (example.org/.com/.net, *.example): mail from
    it is rejected. `domain` lowercase."""
    return domain in ("example.org", "example.com", "example.net") or domain.endswith(
        ".example")
