"""Prometheus metrics: every metric Tokenkeeper records, defined here, served at ``/metrics``.

Multiprocess mode: each process (gunicorn workers, Celery worker processes,
beat) writes its counters and histograms to its own files in
``PROMETHEUS_MULTIPROC_DIR`` (one directory per host, shared by that host's
processes; the settings default it to ``var/metrics``), and ``/metrics``
merges the files of every process, live or gone (a counter of a process that
ended still counts). So the web process of a host also serves what that
host's workers counted. Gauges about the database (connections by status,
the due backlog) are not recorded by anyone: collectors compute them when
``/metrics`` is scraped (``METRICS_COLLECTORS``, e.g. connections/metrics.py).

Names (all prefixed ``tokenkeeper_``):

| metric | type | labels | what |
| --- | --- | --- | --- |
| ``refreshes_total`` | counter | provider, outcome | token-endpoint refresh attempts by how they ended (``connections.refresh.Outcome``: refreshed, failed, needs_reauth, deferred; error for an unexpected exception) |
| ``refresh_lead_seconds`` | histogram | provider | for each successful refresh, how long before the old access token's expiry it was sent (negative: after). Compare with ``refresh_window_seconds`` |
| ``refresh_window_seconds`` | gauge | provider | the provider's refresh window (Exact Online: 30; only providers that have one) |
| ``token_endpoint_responses_total`` | counter | provider, status | what providers' token endpoints answered to refreshes: HTTP status, or ``error`` (no answer: network, timeout) |
| ``sweep_duration_seconds`` | histogram | | one refresh sweep (claim and queue) |
| ``sweep_claimed_total`` | counter | | connections the sweeps claimed and queued |
| ``last_sweep_age_seconds`` | gauge | | seconds since the last sweep finished (scrape time) |
| ``connections`` | gauge | status | connections by status (scrape time) |
| ``refresh_due_backlog`` | gauge | | connections whose refresh is due now (scrape time; counted up to 100,000) |
| ``refresh_oldest_overdue_seconds`` | gauge | | how long the most overdue refresh has been due (0 when none) |
| ``token_api_duration_seconds`` | histogram | | ``GET …/token`` from the request's arrival in the view to its answer |
| ``token_api_responses_total`` | counter | status | ``GET …/token`` answers by HTTP status |
| ``proxy_duration_seconds`` | histogram | provider | a proxied API call, end to end |
| ``proxy_responses_total`` | counter | provider, status | what the provider's API answered through the proxy: HTTP status, or ``error`` |
| ``webhook_deliveries_total`` | counter | outcome | outgoing webhook delivery attempts: ``delivered``, ``failed`` (will retry), ``gave_up`` |
| ``webhook_delivery_duration_seconds`` | histogram | | one outgoing delivery attempt |
| ``emails_total`` | counter | outcome | e-mails the ``email`` queue sent (``sent``) or failed to send (``failed``) |

The proxy and webhook metrics are defined here for the code that sends those
requests (connections' proxy, the integrations app) to record.
"""

import os
import time
from collections.abc import Callable
from functools import wraps

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import REGISTRY

PREFIX = "tokenkeeper_"
FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 90)
# Around Exact Online's 30 s window (0 < lead <= 30 is inside), and minutes to hours for margin-based providers.
LEAD = (-300, -60, -10, 0, 5, 10, 15, 20, 25, 30, 45, 60, 120, 300, 600, 1800, 3600, 7200)

REFRESHES = Counter(f"{PREFIX}refreshes", "Refresh attempts by outcome.", ["provider", "outcome"])
REFRESH_LEAD = Histogram(
    f"{PREFIX}refresh_lead_seconds",
    "Seconds before the old token's expiry a refresh was sent.",
    ["provider"],
    buckets=LEAD,
)
TOKEN_ENDPOINT_RESPONSES = Counter(
    f"{PREFIX}token_endpoint_responses", "Providers' token-endpoint answers to refreshes.", ["provider", "status"]
)
SWEEP_DURATION = Histogram(f"{PREFIX}sweep_duration_seconds", "Duration of one refresh sweep.", buckets=FAST)
SWEEP_CLAIMED = Counter(f"{PREFIX}sweep_claimed", "Connections claimed and queued by sweeps.")
TOKEN_API_DURATION = Histogram(f"{PREFIX}token_api_duration_seconds", "Token API answer time.", buckets=FAST)
TOKEN_API_RESPONSES = Counter(f"{PREFIX}token_api_responses", "Token API answers by status.", ["status"])
CONNECTION_CACHE = Counter(
    f"{PREFIX}connection_cache_reads",
    "Connection rows the API-key fast paths needed: from the web process's copy (hit), read from "
    "PostgreSQL (miss), or read with the copy off or not subscribed (off).",
    ["result"],
)
PROXY_DURATION = Histogram(f"{PREFIX}proxy_duration_seconds", "Proxied API calls.", ["provider"], buckets=FAST)
PROXY_RESPONSES = Counter(f"{PREFIX}proxy_responses", "Provider API answers through the proxy.", ["provider", "status"])
WEBHOOK_DELIVERIES = Counter(f"{PREFIX}webhook_deliveries", "Outgoing webhook delivery attempts.", ["outcome"])
WEBHOOK_DURATION = Histogram(f"{PREFIX}webhook_delivery_duration_seconds", "Outgoing delivery attempts.", buckets=FAST)
EMAILS = Counter(f"{PREFIX}emails", "E-mails sent by the email queue.", ["outcome"])


# --- Recording, in one line at the call site -------------------------------------------------


def count_refresh(refresh: Callable) -> Callable:
    """Decorates the refresh engine's core (``connections.refresh._refresh_locked``): counts the
    outcome and, for a success, the lead before the old token's expiry."""

    @wraps(refresh)
    def counted(connection, **kwargs):
        done = refresh_started(connection)
        result = refresh(connection, **kwargs)
        done(result.outcome)
        return result

    return counted


def refresh_started(connection) -> Callable[[str], None]:
    """What ``count_refresh`` records, for a caller that splits a refresh in steps (a group of
    refreshes, ``connections.refresh.refresh_group``): call the result with the outcome."""
    provider, old_expiry, sent_at = connection.oauth_client.provider, connection.access_token_expires_at, time.time()

    def done(outcome: str) -> None:
        REFRESHES.labels(provider, str(outcome)).inc()
        if str(outcome) == "refreshed" and old_expiry is not None:
            REFRESH_LEAD.labels(provider).observe(old_expiry.timestamp() - sent_at)

    return done


def count_token_endpoint(request_tokens: Callable) -> Callable:
    """Decorates ``connections.token_requests.refresh_tokens(client, …)``: counts the provider's answer."""

    @wraps(request_tokens)
    def counted(client, *args, **kwargs):
        try:
            tokens = request_tokens(client, *args, **kwargs)
        except Exception as error:
            TOKEN_ENDPOINT_RESPONSES.labels(client.provider, str(getattr(error, "status", None) or "error")).inc()
            raise
        TOKEN_ENDPOINT_RESPONSES.labels(client.provider, "200").inc()
        return tokens

    return counted


def token_api_answered(status: int, started: float) -> None:
    """``started``: ``time.perf_counter()`` when the request reached the view."""
    TOKEN_API_DURATION.observe(time.perf_counter() - started)
    TOKEN_API_RESPONSES.labels(str(status)).inc()


def refresh_failed_unexpectedly() -> None:
    REFRESHES.labels("unknown", "error").inc()


# --- Serving ---------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render(collectors: list) -> bytes:
    """Every process's metrics (multiprocess mode) plus the scrape-time ``collectors``."""
    if multiprocess_dir():
        recorded = CollectorRegistry()
        multiprocess.MultiProcessCollector(recorded)
    else:
        recorded = REGISTRY  # one process (PROMETHEUS_MULTIPROC_DIR unset)
    computed = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        computed.register(collector)
    return generate_latest(recorded) + generate_latest(computed)


def process_dead(pid: int) -> None:
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
