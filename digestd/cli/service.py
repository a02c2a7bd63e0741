"""The services: `run` (the daemon) and `web` (only the web app)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ..errors import UsageError
from .common import _config, _store

log = logging.getLogger("digestd.web")


def cmd_run(args: argparse.Namespace) -> int:
    from ..daemon import run
    from ..render import check_templates

    config = _config(args)
    check_templates(config.digest.templates_dir)  # its digests and its web app's pages
    return run(config)


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the web app alone (subscribe, preferences, unsubscribe, /healthz, /metrics)."""
    from ..render import check_templates
    from ..web import create_app, serve_web

    config = _config(args)
    check_templates(config.digest.templates_dir)  # its pages and confirmation mails
    listen = args.listen or config.web.listen
    if args.listen:  # said of the flag, as config check says it of web.listen
        from ..config.checks import check_listen

        try:
            check_listen(args.listen)
        except ValueError as e:
            raise UsageError(f'--listen {e.args[0]}' + (f" ({e.args[1]})" if len(e.args) > 1
                                                       else "") + f', got "{args.listen}"'
                             ) from None

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # `systemctl reload` (ExecReload= sends SIGHUP) must not kill the web app: what it
        # serves comes from the store; a changed [web] needs a restart, which it says
        loop.add_signal_handler(signal.SIGHUP, lambda: log.warning(
            "event=reload_ignored hint=%r", "`digestd web` keeps its config: restart it "
            "to apply changes (`digestd run` reloads on SIGHUP)"))
        ready = asyncio.Event()
        with _store(config) as store:
            app = create_app(config, store)
            server = asyncio.ensure_future(serve_web(app, listen, ready=ready, stop=stop))
            waiter = asyncio.ensure_future(ready.wait())
            await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if ready.is_set():
                print(f"serving on {app.state.listening}; links in emails use "
                      f"{config.web.base_url}. Ctrl-C stops.", file=sys.stderr, flush=True)
            await server

    asyncio.run(serve())
    return 0
