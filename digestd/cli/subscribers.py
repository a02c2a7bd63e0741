"""Subscribers and their rules: `subscribers ...` and `rules ...`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import Config
from ..errors import DigestdError, RuleError, StoreError, UsageError
from .common import _config, _count, _days_ago, _moment, _print_json, _store


def cmd_subscribers_add(args: argparse.Namespace) -> int:
    from ..models import quote_rule
    from ..rules import validate
    from ..validators import EmailNotValidError, email_address

    config = _config(args)
    _weekday_applies(args.weekday, args.frequency or config.digest.frequency)
    try:
        email = email_address(args.email)  # as the web form checks it (no DNS lookup)
    except EmailNotValidError as e:
        raise UsageError(f'"{args.email}" is not a valid email address: {e}') from None
    for n, rule in enumerate(args.rule, start=1):
        try:
            validate(rule)
        except RuleError as e:  # say which one: there may be several --rule
            raise RuleError(f"rule {n} {quote_rule(rule)}: {e}", e.column) from None
    schedule = _schedule_args(args, config)
    with _store(config) as store:
        try:
            sub = store.add_subscriber(email, args.rule, name=_display_name(args.name),
                                       feed_only=args.feed_only, **schedule)
        except StoreError as e:
            if "exists already" not in str(e):
                raise
            raise UsageError(f"{e}: add a rule with `digestd rules add {email} RULE`; "
                             f"their rules: `digestd rules list {email}`") from None
    print(f"added {sub.email} (active{', feed only' if sub.feed_only else ''}) with "
          f"{len(sub.rules)} rule(s)")
    return 0


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _schedule_args(args: argparse.Namespace, config: Config) -> dict:
    """--timezone/--send-at/--frequency/--weekday/--send-empty, checked like the config is."""
    import re

    from ..validators import is_time_zone, time_zone_hint

    tz = args.timezone or config.digest.timezone
    if not is_time_zone(tz):  # the rule of the config and the web form
        raise UsageError(f'--timezone must be an IANA time zone name such as "Europe/Berlin" '
                         f'(or "UTC"), as the web form offers them, got "{tz}"'
                         + time_zone_hint(tz))
    send_at = args.send_at or config.digest.send_at
    short = re.fullmatch(r"(\d):([0-5]\d)", send_at)  # "7:30" is 07:30
    if short:
        send_at = f"0{short[1]}:{short[2]}"
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", send_at):
        raise UsageError(f'--send-at must be a time as "HH:MM", got "{send_at}"')
    return {"timezone": tz, "send_at": send_at,
            "frequency": args.frequency or config.digest.frequency,
            "weekday": WEEKDAYS.index(args.weekday or "mon"), "send_empty": args.send_empty}


def _display_name(name: str | None) -> str:
    """--name: one line (it goes into the To: header), without the spaces around it."""
    name = (name or "").strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UsageError(f"--name must be one line without control characters, got {name!r}")
    return name


def _subscriber_json(s, seeds: int, feedback: tuple[int, int], slot, now) -> dict:
    """One subscriber as `subscribers list --json` prints them: `seeds` their seed count,
    `feedback` their ("more like this", "less like this") marks, `slot` their next digest
    (jobs.next_digests; None: none comes)."""
    from ..schedule import iso

    return {"id": s.id, "email": s.email, "name": s.name, "status": s.status,
            "rules": list(s.rules), "timezone": s.timezone, "send_at": s.send_at,
            "frequency": s.frequency, "weekday": WEEKDAYS[s.weekday],
            "send_empty": s.send_empty, "last_digest_at": s.last_digest_at,
            "bounces": s.bounces, "feed_only": s.feed_only, "recommend": s.recommend,
            "min_score": s.min_score, "seeds": seeds, "more_like_this": feedback[0],
            "less_like_this": feedback[1],
            # UTC, as the store keeps times; _local: in the subscriber's zone
            "next_digest_at": iso(slot.at) if slot is not None else None,
            "next_digest_local": (slot.local.isoformat(timespec="minutes")
                                  if slot is not None else None),
            "next_digest_due_now": slot is not None and slot.at <= now}


def _weekday_applies(weekday: str | None, frequency: str) -> None:
    """--weekday is for a weekly digest: given for another, it would be kept and do nothing."""
    if weekday and frequency != "weekly":
        raise UsageError(f"--weekday is the day of a weekly digest; this one is {frequency} "
                         "(add --frequency weekly)")


def cmd_subscribers_list(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..jobs import next_digests

    config = _config(args)
    now = datetime.now(timezone.utc)
    with _store(config, read_only=True) as store:
        subs = store.subscribers(args.status)
        # one read each for all subscribers, however many there are
        seeds, feedback = store.seed_counts(), store.all_feedback_counts()
        # as the daemon's next build decides it (a slot due now is built at its next check)
        nexts = next_digests(config, store, subs, now)
    if args.json:
        _print_json([_subscriber_json(s, seeds.get(s.id, 0), feedback.get(s.id, (0, 0)),
                                      nexts.get(s.id), now) for s in subs])
        return 0
    rows = []
    for s in subs:
        # a bouncing subscriber gets no digests until they subscribe again on the web, or
        # `subscribers resume` (the mailbox works again)
        status = f"{s.status} ({s.bounces} hard bounces)" if s.status == "bouncing" else (
            f"{s.status} ({s.bounces} bounce{'s' if s.bounces != 1 else ''})" if s.bounces
            else s.status)
        status += " (feed only)" if s.feed_only else ""
        when = f"{s.frequency}{' ' + WEEKDAYS[s.weekday] if s.frequency == 'weekly' else ''}"
        when += " +empty" if s.send_empty else ""
        more, less = feedback.get(s.id, (0, 0))
        slot = nexts.get(s.id)
        if slot is None:  # not active, no rules, or a schedule the daemon cannot read
            upcoming = "- (no rules)" if s.status == "active" and not s.rules else "-"
        else:
            upcoming = _moment(slot.at, s.timezone)
            upcoming = f"due now ({upcoming})" if slot.at <= now else upcoming
        # the id is how logs and `digestd inbound` name a subscriber (never by address)
        rows.append((str(s.id), s.email, status, f"{when} {s.send_at} {s.timezone}", upcoming,
                     str(seeds.get(s.id, 0)), str(more), str(less), str(s.recommend),
                     "off" if s.min_score is None else f"{s.min_score:g}",
                     " | ".join(s.rules)))
    if rows:
        # NEXT_DIGEST: in the subscriber's zone and in UTC; MORE and LESS: the "more like
        # this" and "less like this" marks; RECOMMEND and MIN_SCORE: the settings of
        # `subscribers set`
        head = ("ID", "EMAIL", "STATUS", "SCHEDULE", "NEXT_DIGEST", "SEEDS", "MORE", "LESS",
                "RECOMMEND", "MIN_SCORE", "RULES")
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head) - 1)]
        for r in (head, *rows):
            print("  ".join(f"{v:<{w}}" for v, w in zip(r, widths)) + "  " + r[-1])
    print(_count(len(subs), "subscriber"))
    bouncing = sum(1 for s in subs if s.status == "bouncing")
    if bouncing:
        print(f"{bouncing} bouncing: their server refused mail for the address; they get no "
              "digests until they subscribe again (or `digestd subscribers resume EMAIL`)")
    return 0


def cmd_subscribers_set(args: argparse.Namespace) -> int:
    """Change a subscriber's schedule, name, feed-only and relevance settings; what is not
    given stays as it is."""
    config = _config(args)
    name = None if args.name is None else _display_name(args.name)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        _weekday_applies(args.weekday, args.frequency or sub.frequency)
        merged = argparse.Namespace(
            timezone=args.timezone or sub.timezone, send_at=args.send_at or sub.send_at,
            frequency=args.frequency or sub.frequency,
            weekday=args.weekday or WEEKDAYS[sub.weekday],
            send_empty=sub.send_empty if args.send_empty is None else args.send_empty)
        schedule = _schedule_args(merged, config)
        store.update_preferences(sub.id, sub.rules, feed_only=args.feed_only, **schedule)
        if name is not None:
            store.set_name(sub.id, name)
        min_score = _min_score(args.min_score)
        store.set_relevance(sub.id, recommend=args.recommend,
                            min_score=None if min_score == "off" else min_score,
                            clear_min_score=min_score == "off")
        sub = store.get_subscriber(sub.id)
    day = f" on {WEEKDAYS_LONG[schedule['weekday']]}" if schedule["frequency"] == "weekly" else ""
    who = f"{sub.name} <{sub.email}>" if sub.name else sub.email
    print(f"{who}: {'feed only (no email), ' if sub.feed_only else ''}"
          f"{schedule['frequency']}{day} at {schedule['send_at']} "
          f"{schedule['timezone']}, "
          f"{'a note' if schedule['send_empty'] else 'no email'} on days without matches; "
          f"{sub.recommend or 'no'} recommendation{'s' if sub.recommend != 1 else ''} beyond "
          f"the rules, "
          + ("every rule match kept" if sub.min_score is None
             else f"rule matches less similar than {sub.min_score:g} left out"))
    return 0


def _min_score(value: str | None) -> float | str | None:
    """--min-score: a similarity from 0 to 1, or "off"; None when not given."""
    if value is None or value.strip().lower() == "off":
        return None if value is None else "off"
    try:
        score = float(value)
    except ValueError:
        score = -1.0
    if not 0.0 <= score <= 1.0:
        raise UsageError(f'--min-score must be a similarity from 0 to 1 (e.g. 0.05) or "off", '
                         f'got "{value}"')
    return score


def _set_status(args: argparse.Namespace, status: str) -> int:
    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        if sub.status == status:
            print(f"{sub.email} is already {status}")
            return 0
        if status == "active" and sub.status in ("unsubscribed", "pending") \
                and not getattr(args, "force", False):
            raise UsageError(f"{sub.email} is {sub.status}: resuming mails someone who did not "
                             "ask (or no longer asks) for digests. Add --force if they asked "
                             "you to; otherwise let them subscribe again on the web page.")
        if status == "active":
            store.resume_subscriber(sub.id)
        else:
            store.set_status(sub.id, status)
    print(f"{sub.email}: {sub.status} -> {status} (rules and history kept)")
    return 0


def cmd_subscribers_pause(args: argparse.Namespace) -> int:
    return _set_status(args, "paused")


def cmd_subscribers_resume(args: argparse.Namespace) -> int:
    return _set_status(args, "active")


def cmd_subscribers_unsubscribe(args: argparse.Namespace) -> int:
    return _set_status(args, "unsubscribed")


def cmd_subscribers_remove(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        store.remove_subscriber(args.email)
    print(f"removed {args.email} and their history")
    return 0


def _papers_from_file(path: str) -> list:
    """Papers from a JSON array of objects (title, abstract, authors, categories, source)."""
    from ..models import Paper

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise DigestdError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise DigestdError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(data, list):
        raise DigestdError(f"{path}: expected a JSON array of paper objects")
    papers = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or not isinstance(rec.get("title"), str):
            raise DigestdError(f"{path}: item {i} is not a paper object with a title")

        def strings(value) -> tuple[str, ...]:
            items = value if isinstance(value, list) else []
            return tuple(x if isinstance(x, str) else str(x.get("name", "")) if isinstance(
                x, dict) else str(x) for x in items)

        papers.append(Paper(id=str(rec.get("id") or f"file:{i}"), title=rec["title"],
                            abstract=rec.get("abstract") or "",
                            authors=strings(rec.get("authors")),
                            categories=strings(rec.get("categories")),
                            source=str(rec.get("source") or ""), url=str(rec.get("url") or ""),
                            published=str(rec.get("published") or "")))
    return papers


def cmd_rules_test(args: argparse.Namespace) -> int:
    from ..match import match_rules
    from ..rules import validate

    validate(args.rule)
    if args.papers:
        papers, where = _papers_from_file(args.papers), args.papers
    else:
        config = _config(args)
        since = _days_ago(args.days)
        with _store(config, read_only=True) as store:
            papers = store.papers_since(since)
        where = f"papers stored in the last {args.days} days"
    matches = match_rules([args.rule], papers)
    for name, known in _unknown_sources(args.rule, papers, None if args.papers else config):
        print(f'note: no source is named "{name}" (source: takes a source\'s name: '
              f"{', '.join(known) or 'none'})", file=sys.stderr)
    if args.json:
        _print_json([{"id": m.paper.id, "title": m.paper.title, "source": m.paper.source,
                      "url": m.paper.url, "why": m.why,
                      "hits": [{"field": h.field, "text": h.text}
                               for r in m.rules for h in r.hits]} for m in matches])
        return 0
    from ..render import why_text

    shown = matches if args.limit <= 0 else matches[:args.limit]
    for m in shown:
        print(m.paper.title)
        print(f"    matched: {why_text(m)}")  # the line a digest shows under the paper
    if len(shown) < len(matches):
        print(f"... {len(matches) - len(shown)} more not shown (--limit 0 shows all)")
    print(f"{len(matches)} of {len(papers)} {where} match {args.rule}")
    if len(papers) >= BROAD_AT_LEAST and len(matches) > BROAD_SHARE * len(papers):
        print(f"note: {len(matches) / len(papers):.0%} of the papers match: a digest of nearly "
              "everything (a common word? quote a phrase, or add a field: title:...)",
              file=sys.stderr)
    return 0


# `rules test` says a rule is too broad when it matches more than this share of at least
# this many papers
BROAD_SHARE = 0.5
BROAD_AT_LEAST = 50


def _unknown_sources(rule: str, papers, config) -> list[tuple[str, list[str]]]:
    """(name, the names there are) for each `source:` value of `rule` that no configured
    source (or, without a config, no paper) has: a typo matches nothing, silently."""
    from ..rules import Value, atoms, parse

    named = {a.value for a in atoms(parse(rule))
             if isinstance(a, Value) and a.field == "source" and not a.prefix}
    known = sorted({s.name for s in config.sources} if config is not None
                   else {p.source for p in papers})
    lowered = {k.lower() for k in known}
    return [(name, known) for name in sorted(named) if name.lower() not in lowered]


def cmd_rules_add(args: argparse.Namespace) -> int:
    from ..rules import validate

    validate(args.rule)
    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        if args.rule in sub.rules:
            print(f"{sub.email} has this rule already (rule {sub.rules.index(args.rule) + 1}): "
                  f"nothing added")
            return 0
        store.set_rules(sub.id, [*sub.rules, args.rule])
    print(f"rule {len(sub.rules) + 1} added for {sub.email}: {args.rule}")
    return 0


def cmd_rules_list(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config, read_only=True) as store:
        sub = store.get_subscriber(args.email)
    for i, rule in enumerate(sub.rules, 1):
        print(f"{i:>3}  {rule}")
    if not sub.rules:
        print(f"{sub.email} has no rules: they get no digests")
    return 0


def cmd_rules_remove(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        if not 1 <= args.n <= len(sub.rules):
            raise DigestdError(f"{sub.email} has {len(sub.rules)} rule(s); "
                               f"no rule {args.n} (see `digestd rules list {sub.email}`)")
        rules = list(sub.rules)
        removed = rules.pop(args.n - 1)
        store.set_rules(sub.id, rules)
    print(f"removed rule {args.n} of {sub.email}: {removed}")
    return 0
