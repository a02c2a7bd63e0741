"""Mail that comes back: `inbound` reads one message on standard input (an MTA's pipe)."""
from __future__ import annotations

import argparse
import logging
import sys
import traceback

from ..config import find_config
from ..errors import ConfigError, InboundTempFail, StoreError
from .common import _config, _print_json

log = logging.getLogger("digestd.inbound")

# sysexits.h: what an MTA's pipe (Postfix pipe(8), local(8) aliases, procmail, fetchmail
# --mda) reads from the exit status
EX_OK = 0  # handled, or not understood: either way the MTA must not bounce it back
EX_TEMPFAIL = 75  # the store is busy, unreachable, or the config broken: keep it, try later


def cmd_inbound(args: argparse.Namespace) -> int:
    from ..inbound import KINDS, handle_message
    from ..store import open_store

    if find_config(args.config) is None:
        # the embedded defaults would make an empty store wherever the MTA runs us
        raise InboundTempFail("cannot handle mail now: no config file; pass --config "
                              "/etc/digestd/config.toml (or set DIGESTD_CONFIG)")
    try:
        config = _config(args)
        store = open_store(config.store, timeout=args.timeout)
    except (ConfigError, StoreError) as e:
        # an operator's mistake must not lose mail: the MTA keeps the message and retries
        # (Postfix for 5 days), while the error is in its log; EX_CONFIG would bounce it
        raise InboundTempFail(f"cannot handle mail now: {e}") from None
    with store:
        if args.counts:
            counts = store.inbound_counts()
            if args.json:
                _print_json({k: counts.get(k, 0) for k in KINDS})
            else:
                for kind in KINDS:
                    print(f"{kind:<13} {counts.get(kind, 0)}")
            return EX_OK
        raw = sys.stdin.buffer.read()
        try:
            handled = handle_message(raw, config=config, store=store,
                                     recipient=args.recipient)
        except InboundTempFail:
            raise
        except Exception as e:  # a bug of ours, not the message's fault: keep it for later
            # where, but not the exception's text: it may quote the message
            frame = traceback.extract_tb(e.__traceback__)[-1]
            log.error("event=inbound_failed error=%s at=%s:%d", type(e).__name__,
                      frame.filename.rpartition("/")[2], frame.lineno)
            raise InboundTempFail(f"cannot handle this message now ({type(e).__name__}); "
                                  "the MTA keeps it and tries again") from None
    print(f"{handled.kind}" + (f" subscriber={handled.subscriber_id}"
                               if handled.subscriber_id is not None else "")
          + (" (changed)" if handled.changed else ""))
    return EX_OK


def add_inbound_parser(add) -> None:
    p = add("inbound", cmd_inbound, "read one message that came back (a bounce, a complaint, a "
            "mailto: unsubscribe) on standard input and act on it; for an MTA to pipe to. Exit "
            "0 when handled or not understood (nothing to bounce back), 75 (EX_TEMPFAIL) when "
            "the store is busy or the config cannot be read, so the MTA tries again")
    p.add_argument("--recipient", default="", metavar="ADDR",
                   help="the envelope recipient (Postfix pipe: --recipient ${recipient}); "
                        "else the Delivered-To, X-Original-To and To headers are read")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="wait at most this long for a busy store, then exit 75 (EX_TEMPFAIL) "
                        "so the MTA tries again later (default 30)")
    p.add_argument("--counts", action="store_true",
                   help="read nothing: print how many messages of each kind were handled")
    p.add_argument("--json", action="store_true", help="with --counts: print JSON")
