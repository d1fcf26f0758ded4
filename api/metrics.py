"""Prometheus metrics at `GET /metrics`, with API request latency measured by a pure ASGI
middleware (`RequestDuration`).

Each app has a `CollectorRegistry` of its own, never the process-wide default one: a
process may build several apps (the tests do), and each must export only its own.

- `memlab_runs{status,kind,run_type}`: runs in each status (gauge).
- `memlab_queue_depth{queue}`: queued runs that wait for a slot on each queue (gauge); a
  batched group counts once, for all its members.
- `memlab_dispatch_latency_seconds{queue}`: from a run's publication to the broker
  (`enqueued_at`) to a worker's claim (`started_at`) (histogram).
- `memlab_run_duration_seconds{status,run_type}`: from a run's claim to its end (histogram).
- `memlab_workers{state}`: worker nodes not stopped, `live` or `silent` (gauge);
  `memlab_worker_slots{state}`: the live nodes' pool processes, `busy` or `idle` (gauge).
- `memlab_database_up`: 1 when the scrape read the database, else 0 (the others above are
  missing then). These are read from the database (api/metrics_database.py); the
  histograms count what this API process has seen since it started.
- `memlab_http_request_duration_seconds{method,route,status}`: API request latency.
  `route` is the path template of the route that took the request
  (`/v1/experiments/{experiment_id}`), never the raw path, so there are as many series as
  routes, not as ids; a request no route took is `unmatched` (a 404, a slash redirect, a
  body refused by `BodySizeLimit` before routing). A request is timed to the last byte of
  its response, except an event stream (`text/event-stream`, the runs' `/events`), timed
  to its first byte: how long a stream stays open is how long its client watched.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics_database import DatabaseCollector


def install_metrics(app: FastAPI) -> None:
    """Export `app`'s metrics at `GET /metrics` and time its requests.

    Call after `app.state.sessions` is set and the routers are included.
    """
    registry = CollectorRegistry()
    settings = app.state.settings
    registry.register(DatabaseCollector(app.state.sessions, settings.heartbeat_stale_s))
    app.add_middleware(RequestDuration, histogram=request_duration_histogram(registry))

    # Open without an API key, like /healthz: it shows aggregate counts and latencies
    # only, no run, user or project, and a Prometheus server scrapes it without a key.
    # A plain function: FastAPI runs it in the thread pool, off the event loop, while the
    # collector reads the database.
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)


UNMATCHED_ROUTE = "unmatched"
_EVENT_STREAM = b"text/event-stream"


def request_duration_histogram(registry: CollectorRegistry) -> Histogram:
    """The request latency histogram, registered in `registry` (default buckets: 5 ms to 10 s)."""
    return Histogram(
        "memlab_http_request_duration_seconds",
        "API request latency, to the last byte of the response (to the first, for an event "
        "stream), by method, route template and status.",
        ("method", "route", "status"),
        registry=registry,
    )


def route_template(scope: Scope) -> str:
    """The path template of the route the router chose for this request, or "unmatched"."""
    # Starlette's router puts the route it hands a request to in the scope, and the
    # middleware sees the same scope dict; a 405 carries the route whose path matched.
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def _is_event_stream(start: Message) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(_EVENT_STREAM)
        for name, value in start.get("headers", [])
    )


class RequestDuration:
    """Observes every HTTP request's latency in `histogram`.

    A pure ASGI middleware, not BaseHTTPMiddleware: it only watches the messages the app
    sends, so a streamed response (events, exports) passes through as the app sends it.
    """

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()
        # What the client gets when the app raises before it answers (the outer
        # ServerErrorMiddleware turns the exception into a 500).
        status = 500
        observed = False

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            labels = (scope["method"], route_template(scope), str(status))
            self.histogram.labels(*labels).observe(time.perf_counter() - arrived)

        async def timed_send(message: Message) -> None:
            nonlocal status
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
                if _is_event_stream(message):
                    observe()
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                observe()

        try:
            await self.app(scope, receive, timed_send)
        finally:
            # A response cut short (the app raised, the client went away) still counts.
            observe()
