"""Health and metrics: /healthz (JSON) and /metrics (Prometheus)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from .site import Site

log = logging.getLogger("digestd.web")


class Monitoring:
    """GET /healthz and GET /metrics."""

    def __init__(self, site: Site) -> None:
        self.site = site

    async def healthz(self, request: Request) -> Response:
        try:
            schema = self.site.store.schema_version()
            states = {s.name: s for s in self.site.store.source_states()}
            outbox = self.site.store.outbox_stats()
        except Exception as e:  # sqlite3.Error and anything else: the store is not usable
            log.error("event=healthz store=unreachable error=%r", str(e))
            return JSONResponse({"status": "error", "store": {"ok": False, "error": str(e)}},
                                status_code=503)
        sources = []
        for src in self.site.config.sources:
            st = states.get(src.name)
            sources.append({
                "name": src.name, "kind": src.kind, "enabled": src.enabled,
                "last_poll": st.last_poll if st else None,
                "last_success": st.last_success if st else None,
                "last_error": st.last_error if st else None,
                "last_error_at": st.last_error_at if st else None,
                "consecutive_errors": st.consecutive_errors if st else 0})
        totals = {k: sum(v[k] for v in outbox.values())
                  for k in ("queued", "deferred", "due", "failed")}
        return JSONResponse({
            "status": "ok", "version": __version__,
            "store": {"ok": True, "schema_version": schema},
            "sources": sources,
            "outbox": {"backlog": totals["queued"] + totals["deferred"], **totals,
                       "by_kind": outbox}})

    async def metrics(self, request: Request) -> Response:
        states = self.site.store.source_states()
        outbox = self.site.store.outbox_stats()
        subscribers, bounces = self.site.store.subscriber_counts()
        m = _Metrics()
        m.add("digestd_papers_stored", "gauge", "Papers in the store: every paper seen, once.",
              [({}, self.site.store.count_papers())])
        m.add("digestd_source_papers_seen_total", "counter",
              "New papers each source brought in.",
              [({"source": s.name}, s.papers_seen) for s in states])
        m.add("digestd_source_polls_total", "counter", "Polls per source.",
              [({"source": s.name}, s.polls) for s in states])
        m.add("digestd_source_errors_total", "counter", "Failed polls per source.",
              [({"source": s.name}, s.errors_total) for s in states])
        m.add("digestd_source_consecutive_errors", "gauge",
              "Failed polls in a row per source (0 when the last poll worked).",
              [({"source": s.name}, s.consecutive_errors) for s in states])
        m.add("digestd_source_last_success_timestamp_seconds", "gauge",
              "When each source was last polled successfully.",
              [({"source": s.name}, _unix(s.last_success)) for s in states if s.last_success])
        digests = outbox.get("digest", {})
        m.add("digestd_digests", "gauge",
              "Digests in the outbox by state: queued (first try pending), deferred "
              "(retrying after a temporary error), sent, failed (delivery gave up), "
              "build_failed (could not be built: see `digestd outbox --failed`).",
              [({"state": k}, digests.get(k, 0) or 0)
               for k in ("queued", "deferred", "sent", "failed", "build_failed")])
        m.add("digestd_web_mails", "gauge",
              "Confirmation and preferences-link emails in the outbox by kind and state.",
              [({"kind": kind, "state": k}, v or 0) for kind, row in sorted(outbox.items())
               if kind != "digest" for k, v in row.items() if k not in ("due", "build_failed")])
        m.add("digestd_outbox_due", "gauge", "Outbox messages due to be sent now.",
              [({}, sum(v["due"] or 0 for v in outbox.values()))])
        m.add("digestd_subscribers", "gauge", "Subscribers by status.",
              [({"status": s}, subscribers.get(s, 0))
               for s in ("pending", "active", "paused", "unsubscribed", "bouncing")])
        m.add("digestd_bounces", "gauge", "Hard bounces counted over all subscribers.",
              [({}, bounces)])
        m.add("digestd_web_events_total", "counter",
              "Web events since this process started.",
              [({"event": e}, n) for e, n in sorted(self.site.events.items())])
        return Response(m.text(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class _Metrics:
    """Prometheus text exposition format, version 0.0.4."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, kind: str, help: str,
            samples: Sequence[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            shown = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            value = float(value)
            number = str(int(value)) if value.is_integer() else repr(value)
            self.lines.append(f"{name}{{{shown}}} {number}" if shown else f"{name} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

