"""The web app: subscribe with double opt-in, preferences, one-click unsubscribe, each digest's
page, the archive and the private Atom feed, health, metrics.

A Starlette (ASGI) app made by `create_app` (app.py), served by uvicorn in the caller's event
loop through `serve_web` (serve.py). Pages need no JavaScript; /static/app.js only adds a
live rule test. The modules, from the request inwards: app (routes, the layer around every
request, error pages), guard (client addresses, rate limits, CSRF), links (tokens in links),
subscribe, preferences, seeds, feedback, unsubscribe, digests, feed, metrics (the pages by
area), ruletest and forms (what the forms hold and test), site (what every page shares),
serve (uvicorn).
"""

from .app import MAX_BODY, create_app
from .guard import CSRF_COOKIE
from .links import redact
from .ruletest import _recent_papers, try_rules
from .serve import listening_address, parse_listen, serve_web

__all__ = ["CSRF_COOKIE", "MAX_BODY", "_recent_papers", "create_app", "listening_address",
           "parse_listen", "redact", "serve_web", "try_rules"]
