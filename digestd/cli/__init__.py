"""The command line: argparse subcommands, each a thin call into jobs and the store.

One module per group of commands (`start`, `papers`, `subscribers`, `mail`, `inbound`,
`service`, `store`);
this one builds the parser and runs the command.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from .. import __version__
from ..config import LogConfig, find_config, load_config
from ..errors import DigestdError
from ..logs import setup_logging
from .common import Progress
from .inbound import add_inbound_parser
from .mail import (cmd_doctor, cmd_outbox, cmd_outbox_prune, cmd_outbox_retry, cmd_outbox_show,
                   cmd_send)
from .papers import cmd_papers, cmd_poll, cmd_sources
from .relevance import cmd_similar, cmd_subscribers_seed
from .service import cmd_run, cmd_web
from .store import cmd_store_copy
from .start import (
    CREDENTIALS,
    DEMO_SUBSCRIBERS,
    cmd_config_check,
    cmd_config_example,
    cmd_demo,
    cmd_init,
)
from .subscribers import (
    WEEKDAYS,
    cmd_rules_add,
    cmd_rules_list,
    cmd_rules_remove,
    cmd_rules_test,
    cmd_subscribers_add,
    cmd_subscribers_list,
    cmd_subscribers_pause,
    cmd_subscribers_remove,
    cmd_subscribers_resume,
    cmd_subscribers_set,
    cmd_subscribers_unsubscribe,
)

__all__ = ["CREDENTIALS", "DEMO_SUBSCRIBERS", "Progress", "build_parser", "main"]

# ranking.RECOMMEND_FLOOR, as `subscribers set --recommend` explains it (ranking imports numpy:
# not for drawing the help; a test keeps the two equal)
RECOMMEND_AT_LEAST = 0.08


def positive(text: str) -> int:
    """An argparse type: a whole number, 1 or more (--days: a window of 0 days holds nothing,
    and a prune of 0 days would drop every message)."""
    n = non_negative(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def non_negative(text: str) -> int:
    """An argparse type: a whole number, 0 or more (--limit, --days, --top)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


class _Parser(argparse.ArgumentParser):
    """argparse's, with its errors made helpful: a command or subcommand left out prints
    that level's help (exit 2, as a usage error), and a rule that starts with "-" (read as
    an option) is told how to write it."""

    def error(self, message: str) -> NoReturn:
        if re.search(r"required: (COMMAND|SUBCOMMAND)$", message):
            self.print_help(sys.stderr)
            self.exit(2, f"\n{self.prog}: error: {message}\n")
        if "required: RULE" in message:
            before = [a.metavar or a.dest.upper() for a in self._actions
                      if not a.option_strings and (a.metavar or a.dest) != "RULE"]
            example = " ".join([self.prog, *before, "--", "-survey"])
            message += (" (a rule that starts with -, such as -survey, needs -- before it: "
                        f"`{example}`)")
        elif "--rule: expected one argument" in message:
            message += " (a rule that starts with -, such as -survey: write --rule=-survey)"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="digestd",
        description="An email digest daemon for research papers: polls paper sources, matches "
                    "each subscriber's keyword rules, and sends one digest email per period.",
        epilog="Try it offline: `digestd demo`. Config file: --config, $DIGESTD_CONFIG, "
               "./digestd.toml, or $CONFIGURATION_DIRECTORY/config.toml; without one, "
               "embedded defaults are used. Exit status: 0 done; 1 the command ran but "
               "something failed on the way (a source's poll, a digest's delivery: the "
               "output says which), or what it looked for is not there; 2 a usage, config "
               "or store error (nothing was done); 75 `inbound`: try again later.")
    parser.add_argument("--config", "-c", metavar="PATH", help="the config file (TOML)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        help="override [log] level")
    parser.add_argument("--version", action="version", version=f"digestd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # --config and --log-level work after the subcommand too ("digestd send --config x");
    # SUPPRESS keeps a value given before the subcommand when none is given after it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="PATH", default=argparse.SUPPRESS,
                        help="the config file (TOML)")
    common.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=argparse.SUPPRESS, help="override [log] level")

    def add(name: str, func: Callable, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=func)
        return p

    p = add("init", cmd_init, "write a starter digestd.toml (or the file --config names) and "
            "create the store")
    p.add_argument("--dir", help="where to write digestd.toml (default: here; with --config "
                                 "PATH, the config is written at PATH)")
    p = add("demo", cmd_demo, "run the whole pipeline offline on bundled sample papers")
    p.add_argument("--dir", default="digestd-demo",
                   help="folder for the demo store and outbox (default: ./digestd-demo); "
                        "each run starts it over, and a folder with a setup of someone's "
                        "own (a config, other subscribers, other mail) is refused")

    config = add("config", None, "check the config or print an example").add_subparsers(
        dest="config_command", metavar="SUBCOMMAND", required=True)
    p = add("check", cmd_config_check, "validate the config file and summarize it", config)
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print only errors and warnings (the unit's ExecReload= check)")
    add("example", cmd_config_example, "print a config documenting every setting", config)

    store = add("store", None, "move the store to PostgreSQL").add_subparsers(
        dest="store_command", metavar="SUBCOMMAND", required=True)
    p = add("copy", cmd_store_copy, "copy the SQLite store (the config's [store] path, or "
            "--from) into an empty PostgreSQL database and compare the counts (stop digestd "
            "first)", store)
    p.add_argument("--to", required=True, metavar="URL",
                   help='the database: "postgresql://user@host/db" (the password from '
                        "store.password_file, DIGESTD_STORE_PASSWORD, the credential "
                        "store-password or libpq's PGPASSWORD / ~/.pgpass)")
    p.add_argument("--from", dest="source", metavar="PATH",
                   help="the SQLite file to copy instead of the config's [store] path (the "
                        "demo's: digestd-demo/digestd.sqlite3)")

    p = add("poll", cmd_poll, "poll the sources now and store new papers")
    p.add_argument("--source", action="append", metavar="NAME",
                   help="poll only this source (repeatable)")
    p = add("sources", cmd_sources, "list sources with last success, errors, papers seen")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("papers", cmd_papers, "list stored papers, the most recently seen first")
    p.add_argument("--since", metavar="DATE", help="first seen on or after DATE (YYYY-MM-DD)")
    p.add_argument("--limit", type=non_negative, metavar="N", help="the N most recently seen papers")
    p.add_argument("--json", action="store_true", help="print JSON")

    subs = add("subscribers", None, "add, list, change, pause, resume, unsubscribe and remove "
               "subscribers").add_subparsers(
        dest="subscribers_command", metavar="SUBCOMMAND", required=True)
    p = add("add", cmd_subscribers_add, "add an active subscriber (no confirmation)", subs)
    p.add_argument("email", help="the subscriber's email address")
    p.add_argument("--rule", action="append", required=True, metavar="RULE",
                   help="a keyword rule (repeatable), e.g. 'title:(prun* OR sparsit*) -survey'; "
                        "a rule that starts with - is written --rule=-RULE")
    p.add_argument("--name", help="display name")
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone, e.g. Europe/Berlin")
    p.add_argument("--send-at", metavar="HH:MM", help="local time of the digest")
    p.add_argument("--frequency", choices=("daily", "weekdays", "weekly"),
                   help="how often a digest goes out (default: digest.frequency)")
    p.add_argument("--weekday", choices=WEEKDAYS,
                   help="the day of a weekly digest (default: mon; with --frequency weekly)")
    p.add_argument("--send-empty", action="store_true",
                   help='on days without matches, send a short "nothing matched" note '
                        "instead of no email")
    p.add_argument("--feed-only", action="store_true",
                   help="send no email: matches go into the subscriber's Atom feed and list of "
                        "past digests only (see the preferences page)")
    p = add("list", cmd_subscribers_list, "list subscribers", subs)
    p.add_argument("--status", choices=("pending", "active", "paused", "unsubscribed",
                                        "bouncing"),
                   help="only subscribers with this status (bouncing: stopped after "
                        "delivery.bounce_threshold hard bounces in a row)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("set", cmd_subscribers_set, "change a subscriber's schedule and relevance settings "
            "(what is not given stays)", subs)
    p.add_argument("email", help="the subscriber's email address")
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone, e.g. Europe/Berlin")
    p.add_argument("--send-at", metavar="HH:MM", help="local time of the digest")
    p.add_argument("--frequency", choices=("daily", "weekdays", "weekly"),
                   help="how often a digest goes out")
    p.add_argument("--weekday", choices=WEEKDAYS, help="the day of a weekly digest")
    p.add_argument("--name", help='display name (in the To: of their emails; "" for none)')
    p.add_argument("--feed-only", action=argparse.BooleanOptionalAction, default=None,
                   help="send no email: matches go into the subscriber's Atom feed and list of "
                        "past digests only (--no-feed-only: email again)")
    p.add_argument("--send-empty", action=argparse.BooleanOptionalAction, default=None,
                   help='send a short "nothing matched" note on days without matches '
                        "(--no-send-empty: no email on such days)")
    p.add_argument("--recommend", type=int, choices=range(11), metavar="N",
                   help='add up to N (0 to 10) "also recommended" papers to each digest: '
                        "papers no rule matched that are most like the subscriber's seed "
                        "papers and \"more like this\" choices. Only papers clearly like them "
                        f"are recommended (a similarity of at least {RECOMMEND_AT_LEAST:g} on "
                        "the 0-to-1 scale of --min-score), so a day may bring fewer (default "
                        "0: none)")
    p.add_argument("--min-score", metavar="S",
                   help="leave out rule matches whose similarity to the seeds and liked papers "
                        "is below S (0 to 1, e.g. 0.05; the digest says how many it left out), "
                        'or "off" (the default) to keep every match')
    for name, func, what in (
            ("pause", cmd_subscribers_pause, "stop sending digests for now (rules and "
             "history kept; resume undoes it)"),
            ("resume", cmd_subscribers_resume, "send digests again (after a pause or "
             "bounces; after an unsubscribe only with --force)"),
            ("unsubscribe", cmd_subscribers_unsubscribe, "unsubscribe, keeping the rules and "
             "the history (unlike remove)")):
        p = add(name, func, what, subs)
        p.add_argument("email", help="the subscriber's email address")
        if name == "resume":
            p.add_argument("--force", action="store_true",
                           help="also resume an unsubscribed (or unconfirmed) address: only "
                                "when the person asked you to")
    p = add("seed", cmd_subscribers_seed, "give a subscriber seed papers that describe their "
            "interests (a BibTeX, RIS or JSON file, arXiv ids, URLs, DOIs); list or remove them",
            subs)
    p.add_argument("email", help="the subscriber's email address")
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="arXiv ids or URLs, DOIs (before or after the options)")
    p.set_defaults(loose_ids=True)  # `seed EMAIL --file F ID ...`: see main()
    p.add_argument("--file", metavar="FILE",
                   help="a .bib (Zotero, Mendeley, Google Scholar), .ris, JSON array of papers "
                        "or a list of ids, one a line")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="list the subscriber's seeds")
    what.add_argument("--remove", nargs="+", metavar="ID",
                      help="remove these seeds (ids as --list shows them)")
    p.add_argument("--json", action="store_true", help="with --list: print JSON")
    p = add("remove", cmd_subscribers_remove, "remove a subscriber and all their history "
            "(unsubscribe keeps it)", subs)
    p.add_argument("email", help="the subscriber's email address")

    rules = add("rules", None, "test a rule, or add, list and remove a subscriber's rules"
                ).add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    p = add("test", cmd_rules_test, "backtest a rule: which papers would it have matched, and why",
            rules)
    p.add_argument("rule", metavar="RULE", help="e.g. 'title:(prun* OR sparsit*) -survey' "
                   "(write -- before a rule that starts with -)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--days", type=positive, default=30, metavar="N",
                       help="papers stored in the last N days (default 30)")
    which.add_argument("--papers", metavar="FILE",
                       help="a JSON array of papers (title, abstract, authors, categories, "
                            "source) instead of the store")
    p.add_argument("--limit", type=non_negative, default=20, metavar="N",
                   help="show the first N matching papers (default 20; 0: all); the count "
                        "at the end is of all of them, and --json prints all")
    p.add_argument("--json", action="store_true", help="print JSON (title, why, hits, ...)")
    p = add("add", cmd_rules_add, "add a rule to a subscriber (validated first; a rule they "
            "have already is not added twice)", rules)
    p.add_argument("email", help="the subscriber's email address")
    p.add_argument("rule", metavar="RULE", help="e.g. '\"noisy labels\" -survey' (write -- "
                   "before a rule that starts with -: rules add EMAIL -- '-survey x')")
    p = add("list", cmd_rules_list, "list a subscriber's rules, numbered", rules)
    p.add_argument("email", help="the subscriber's email address")
    p = add("remove", cmd_rules_remove, "remove a subscriber's rule N (see rules list)", rules)
    p.add_argument("email", help="the subscriber's email address")
    p.add_argument("n", type=int, metavar="N", help="the rule's number in `rules list`")

    p = add("similar", cmd_similar, "rank papers by likeness to seed papers (a BibTeX, RIS or "
            "JSON file, or a list of arXiv ids and DOIs), with why")
    seeds = p.add_mutually_exclusive_group(required=True)
    seeds.add_argument("--seeds", metavar="FILE",
                       help="seed papers: .bib (Zotero, Mendeley, Google Scholar), .ris, a "
                            "JSON array of papers, or one arXiv id, URL or DOI a line")
    seeds.add_argument("--subscriber", metavar="EMAIL",
                       help="a subscriber's stored seeds (digestd subscribers seed)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--days", type=positive, default=30, metavar="N",
                       help="papers stored in the last N days (default 30)")
    which.add_argument("--papers", metavar="FILE",
                       help="a JSON array of papers, as rules test takes, instead of the store")
    p.add_argument("--top", type=non_negative, default=20, metavar="K",
                   help="the K most similar papers (default 20)")
    p.add_argument("--method", choices=("tfidf", "semantic"), default="tfidf",
                   help="tfidf (default) or semantic (needs pip install 'digestd[semantic]')")
    p.add_argument("--json", action="store_true",
                   help="print a JSON array, best first (id, title, score, why, ...)")

    p = add("send", cmd_send, "build the digests that are due and deliver the outbox")
    p.add_argument("--now", action="store_true",
                   help="build for every active subscriber with unsent matches, whatever "
                        "their schedule; a second --now on the same day builds a second "
                        "digest of what matched since (a paper is still sent only once). "
                        "Rules are matched against papers not yet checked for the subscriber: "
                        "a rule added later applies from the next papers on (`rules test` "
                        "shows what it would have matched)")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would be built; queue and send nothing")
    p = add("outbox", cmd_outbox, "list digests waiting to be sent, and why; show, retry or "
            "prune them")
    p.add_argument("--failed", action="store_true", help="list failed ones too")
    p.add_argument("--sent", action="store_true",
                   help="list the digests sent last too, newest first, each with the time "
                        "its 250 came (at most --limit; their ids are for `outbox show`)")
    p.add_argument("--limit", type=non_negative, default=200, metavar="N",
                   help="show at most N rows (default 200; 0: all); --json prints every "
                        "waiting and failed row, and N of the sent ones")
    p.add_argument("--json", action="store_true",
                   help="print JSON (waiting and failed; sent ones too with --sent)")
    outbox = p.add_subparsers(dest="outbox_command", metavar="SUBCOMMAND")
    p = add("retry", cmd_outbox_retry, "make waiting digests due now and send them", outbox)
    p.add_argument("id", nargs="*", type=int, help="only these digests (ids from `outbox`)")
    p.add_argument("--failed", action="store_true",
                   help="also requeue failed digests, with their attempts reset")
    p.add_argument("--no-send", action="store_true",
                   help="only make them due; the service sends them at its next round")
    p = add("show", cmd_outbox_show, "print one digest's message as it is sent (RFC 5322; "
            "e.g. `| less`, or `> d.eml` to open it in a mail client); one still waiting "
            "starts, with delivery.return_path, with the Return-Path a mailbox would show: the "
            "VERP address it will go out from", outbox)
    p.add_argument("id", type=int, help="the digest's id (from `outbox`, or `outbox --sent` "
                   "for one already sent)")
    p = add("prune", cmd_outbox_prune, "drop the stored message of digests sent long ago "
            "(keeps the store small; history and sent marks stay)", outbox)
    p.add_argument("--days", type=positive, metavar="N",
                   help="older than N days, 1 or more (default: store.keep_sent_days, 30; "
                        "when that is 0, which keeps them forever, nothing is dropped)")
    add("doctor", cmd_doctor, "check the SMTP server (EHLO, STARTTLS, AUTH; no mail is sent), "
        "the [inbound] mailbox (login; nothing read or moved), the DKIM key and the From "
        "domain's SPF/DKIM/DMARC records")
    add_inbound_parser(add)
    add("run", cmd_run, "run as a service: poll, build and send on schedule, read [inbound], "
        "and serve the web app on [web] listen; SIGTERM stops cleanly, SIGHUP reloads the "
        "config")
    p = add("web", cmd_web, "serve only the web app: subscribe, confirm, preferences, "
             "one-click unsubscribe, /healthz and /metrics (the service runs it too)")
    p.add_argument("--listen", metavar="ADDR",
                   help='address to listen on, e.g. "127.0.0.1:8080", "[::]:8080" or '
                        '"unix:/run/digestd/web.sock" (default: [web] listen)')
    return parser


_stopped_early = False  # a SIGTERM came before the daemon's own handlers were in place


def _stop_before_the_daemon_listens(signum: int, _frame: object) -> None:
    # A SIGTERM before the daemon's own handlers are in place (loading the config, opening
    # the store) is a stop like any other: exit 0, nothing has started that needs ending.
    global _stopped_early
    _stopped_early = True
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE") and argv is None:
        # `digestd papers --json | head`: the reader went away, stop quietly as Unix tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse takes a nargs="*" positional in one run, so the ids of `subscribers seed
        # EMAIL --file F ID ...` that follow an option come back as extras: they are ids too
        # (parse_intermixed_args would do it, but refuses parsers with subcommands)
        if getattr(args, "loose_ids", False):
            if options := [x for x in extra if x.startswith("-")]:
                parser.error(f"unrecognized arguments: {' '.join(options)}")
            args.ids = [*args.ids, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.func is cmd_run:
        signal.signal(signal.SIGTERM, _stop_before_the_daemon_listens)
    try:
        level = args.log_level
        if level is None:
            # the services log what they do; an interactive command prints a summary, and
            # logs only what went wrong unless asked for more
            service = args.func in (cmd_run, cmd_web)
            try:
                level = load_config(find_config(args.config)).log.level_for(service)
            except (DigestdError, OSError):  # the command itself says what is wrong
                level = LogConfig().level_for(service)
        setup_logging(level)
        return args.func(args)
    except DigestdError as e:
        print(f"digestd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except ImportError:
        # that SystemExit raised inside a C extension's module init (scipy's, while the
        # ranking's modules load on a busy machine) comes out as "initialization failed"
        if _stopped_early:
            return 0
        raise

