"""Health and metrics: /healthz (JSON) and /metrics (Prometheus, read from the store at scrape
time by a collector of our own, with the process metrics)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from ..inbound import KINDS
from ..store import Store
from .site import Site

log = logging.getLogger("digestd.web")


class Monitoring:
    """GET /healthz and GET /metrics."""

    def __init__(self, site: Site) -> None:
        self.site = site
        # a registry per app, not the global one: tests run several apps in one process
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(site.store, site.events))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

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
        # Our names are all plain ASCII, so generate_latest writes the 0.0.4 text format that
        # every Prometheus reads; CONTENT_TYPE_LATEST (1.0.0) would announce the same bytes.
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)


class StoreCollector(Collector):
    """The digestd_* metrics, read from the store (and the web event counters) per scrape.

    Counter families are named without "_total": prometheus-client adds it, so the samples
    are digestd_source_polls_total and so on, as before the client was used."""

    def __init__(self, store: Store, events: Counter[str]) -> None:
        self.store = store
        self.events = events

    def collect(self) -> Iterator[Metric]:
        states = self.store.source_states()
        outbox = self.store.outbox_stats()
        subscribers, bounces = self.store.subscriber_counts()
        yield GaugeMetricFamily("digestd_papers_stored",
                                "Papers in the store: every paper seen, once.",
                                value=self.store.count_papers())
        for name, help, attr in (
                ("digestd_source_papers_seen", "New papers each source brought in.",
                 "papers_seen"),
                ("digestd_source_polls", "Polls per source.", "polls"),
                ("digestd_source_errors", "Failed polls per source.", "errors_total")):
            counter = CounterMetricFamily(name, help, labels=["source"])
            for s in states:
                counter.add_metric([s.name], getattr(s, attr))
            yield counter
        gauge = GaugeMetricFamily("digestd_source_consecutive_errors",
                                  "Failed polls in a row per source (0 when the last poll "
                                  "worked).", labels=["source"])
        for s in states:
            gauge.add_metric([s.name], s.consecutive_errors)
        yield gauge
        gauge = GaugeMetricFamily("digestd_source_last_success_timestamp_seconds",
                                  "When each source was last polled successfully.",
                                  labels=["source"])
        for s in states:
            if s.last_success:
                gauge.add_metric([s.name], _unix(s.last_success))
        yield gauge
        digests = outbox.get("digest", {})
        gauge = GaugeMetricFamily(
            "digestd_digests",
            "Digests in the outbox by state: queued (first try pending), deferred "
            "(retrying after a temporary error), sent, failed (delivery gave up), "
            "build_failed (could not be built, and no later digest of the subscriber was: see "
            "`digestd outbox --failed`).",
            labels=["state"])
        for k in ("queued", "deferred", "sent", "failed", "build_failed"):
            gauge.add_metric([k], digests.get(k, 0) or 0)
        yield gauge
        gauge = GaugeMetricFamily(
            "digestd_web_mails",
            "Confirmation and preferences-link emails in the outbox by kind and state.",
            labels=["kind", "state"])
        for kind, row in sorted(outbox.items()):
            if kind != "digest":
                for k, v in row.items():
                    if k not in ("due", "build_failed"):
                        gauge.add_metric([kind, k], v or 0)
        yield gauge
        yield GaugeMetricFamily("digestd_outbox_due", "Outbox messages due to be sent now.",
                                value=sum(v["due"] or 0 for v in outbox.values()))
        gauge = GaugeMetricFamily("digestd_subscribers", "Subscribers by status.",
                                  labels=["status"])
        for s in ("pending", "active", "paused", "unsubscribed", "bouncing"):
            gauge.add_metric([s], subscribers.get(s, 0))
        yield gauge
        yield GaugeMetricFamily("digestd_bounces", "Hard bounces counted over all subscribers.",
                                value=bounces)
        counts = self.store.inbound_counts()
        counter = CounterMetricFamily(
            "digestd_inbound_messages",
            "Mail that came back, read by `digestd inbound` or from the [inbound] mailbox, by "
            "what it was: bounce (a permanent failure), delay (a temporary one), refused "
            "(about the sender, 5.7.x), complaint, "
            "unsubscribe (by mail), unrecognized, duplicate (handled before).",
            labels=["kind"])
        for kind in KINDS:
            counter.add_metric([kind], counts.get(kind, 0))
        yield counter
        counter = CounterMetricFamily("digestd_web_events",
                                      "Web events since this process started.",
                                      labels=["event"])
        for e, n in sorted(self.events.items()):
            counter.add_metric([e], n)
        yield counter


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
