"""The token refresh engine, top to bottom in the order it runs.

1. **Sweep** (beat, every few seconds; task ``refresh_sweep``): ``sweep`` claims
   the connections whose ``refresh_due_at`` has passed (``claim_due``: a lease
   written in the claiming transaction, ``SELECT … FOR UPDATE SKIP LOCKED`` on
   PostgreSQL), splits the claim into batches (``split_claim``) and queues each
   batch as a ``refresh_connections`` task.
2. **Batch** (a worker): ``refresh_batch`` runs the batch's ids in groups
   on this process's refresh threads, each group through ``refresh_group``:
   one transaction locks the group's rows, its token requests go out side by
   side, one commit stores the answers (a group of one: ``refresh_claimed``).
3. **Entry points**: ``refresh_claimed`` (a batch, holding the lease),
   ``refresh_on_demand`` (the token API: the refresh is due and no worker has
   done it) and ``refresh_forced`` (an admin's "refresh now", inside the
   provider's window). Each locks the row, decides whether a refresh may
   happen now, and hands the locked connection to the one core,
   ``_refresh_locked``: the token request, then the rotated tokens stored in
   the same transaction (``_succeed``), a retry planned (``_fail``) or the
   connection marked for re-authorization (``mark_needs_reauth``).

Why a lease and a lock: the lock alone ends at commit and dies with the
worker; the lease keeps a claimed connection from being claimed again until
the attempt must have ended (longer than the task's hard time limit). A lease
that runs out unreleased means the attempt was interrupted, which is
remembered in ``interrupted_at`` to explain an "old refresh token" answer.
Concurrent callers queue on the row lock, so a connection is refreshed once
however many ask (single flight). docs/refresh-engine.md walks through it.
"""

import logging
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone

from audit.services import SYSTEM, audit_record
from common import metrics
from oauthclients.models import OAuthClient

from . import rowcache, threads, worker_rows
from .events import connection_event
from .models import Connection, ConnectionEvent, EventKind, Status
from .notifications import notify_needs_reauth
from .oauth import PERMANENT, TOO_EARLY, TRANSIENT, TokenEndpointError, TokenSet
from .token_requests import refresh_tokens
from .tokens import apply_tokens, refresh_window_opens_at

logger = logging.getLogger(__name__)

REFRESHABLE = (Status.ACTIVE, Status.REFRESH_FAILING)
SWEEP_CLAIM_LIMIT = 500
# The token API refreshes a failing connection on demand once its token has
# less than this left (or none), instead of answering "unavailable".
ON_DEMAND_SECONDS = 5
PAUSED_MESSAGE = "Refreshing this connection is paused by Tokenkeeper support."


class Outcome(StrEnum):
    """How one refresh attempt (or one id of a batch) ended."""

    REFRESHED = "refreshed"
    SKIPPED = "skipped"  # nothing to do: not due, not refreshable, or another claim owns it
    FAILED = "failed"  # a transient error or too early: retried later
    NEEDS_REAUTH = "needs_reauth"  # the provider refused the refresh token
    SCHEDULED = "scheduled"  # "refresh now" before the provider's window: moved to when it opens
    DEFERRED = "deferred"  # not attempted: the provider's error or daily budget is used up
    RELEASED = "released"  # a batch past its deadline gave the claim back to the next sweep
    ERROR = "error"  # not the provider's answer (e.g. the database went away); the claim runs out


@dataclass
class Batch:
    """What the refreshes of one batch share: the OAuth clients they use, read
    once, and their routine history, written once at the end
    (``_write_history``)."""

    clients: dict = field(default_factory=dict)
    events: list[ConnectionEvent] = field(default_factory=list)

    def client(self, client_id) -> OAuthClient:
        client = self.clients.get(client_id)
        if client is None:  # two threads may both load it: harmless
            client = self.clients[client_id] = OAuthClient.objects.get(pk=client_id)
        return client


@dataclass
class RefreshResult:
    outcome: Outcome
    connection: Connection | None = None
    message: str = ""
    retry_at: datetime | None = None


def lease_seconds() -> int:
    return settings.REFRESH_LEASE_SECONDS


# --- 1. Sweep: claim, split, queue ---------------------------------------------------------------


def sweep(*, enqueue: Callable[[list[uuid.UUID], uuid.UUID], None]) -> int:
    """Claim every due connection and queue it; returns how many were queued."""
    queued = 0
    while True:
        ids, lease = claim_due(limit=SWEEP_CLAIM_LIMIT)
        for batch in split_claim(ids):
            enqueue(batch, lease)
        queued += len(ids)
        if len(ids) < SWEEP_CLAIM_LIMIT:
            return queued


def claim_due(*, now: datetime | None = None, limit: int = SWEEP_CLAIM_LIMIT) -> tuple[list[uuid.UUID], uuid.UUID]:
    """Claim up to ``limit`` due connections, most urgent first; returns their ids and the lease token.

    Most urgent: the token closest to expiring that can still be saved, then
    those already expired. It only matters when more are due than the
    workers keep up with (docs/refresh-engine.md, "Overload"); the partial
    index finds the due rows, so the sort is over the backlog alone.
    """
    now = now or timezone.now()
    lease = uuid.uuid4()
    with transaction.atomic():
        if db_connection.vendor == "postgresql":
            # A plain index scan, not a bitmap scan: it marks the index entries of row
            # versions that every refresh leaves behind as dead as it passes them, so the
            # next sweeps skip them (a bitmap scan visits them all again until VACUUM).
            with db_connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_bitmapscan = off")
        due = (
            Connection.objects.filter(refresh_due_at__lte=now)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
            .order_by(
                Case(When(access_token_expires_at__gt=now, then=0), default=1),
                F("access_token_expires_at").asc(nulls_last=True),
            )
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        ids = list(due)
        if ids:
            Connection.objects.filter(id__in=ids).update(
                # A lease still present here ran out without being released.
                interrupted_at=Case(
                    When(lease_token__isnull=False, then=F("lease_expires_at")), default=F("interrupted_at")
                ),
                lease_token=lease,
                lease_expires_at=now + timedelta(seconds=lease_seconds()),
            )
    return ids, lease


def split_claim(ids: list, *, fanout: int | None = None, max_size: int | None = None) -> list[list]:
    """Split claimed ids into batches: one per worker process while that keeps
    them at most ``REFRESH_BATCH_MAX`` long, and single ids when few are due.

    With ``fanout`` the number of worker processes, n due ids become
    min(n, fanout) batches of ceil(n / fanout) ids: every process gets work,
    and under load each Celery message carries several refreshes.
    """
    fanout = fanout or settings.REFRESH_BATCH_FANOUT
    max_size = max_size or settings.REFRESH_BATCH_MAX
    size = min(max_size, max(1, math.ceil(len(ids) / fanout)))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


# --- 2. Batch: a worker runs the claimed ids on its threads ----------------------------------------


def batch_seconds() -> float:
    """How long a batch keeps starting refreshes; the rest are released.

    A tenth of the task's hard time limit at most, so the last refresh started
    still has the token call's full timeouts before the limit.
    """
    return min(settings.REFRESH_BATCH_SECONDS, settings.REFRESH_TASK_TIME_LIMIT / 10)


def refresh_batch(*, connection_ids: list, lease_token: uuid.UUID) -> dict[str, int]:
    """Refresh a batch of connections claimed with ``lease_token``.

    In groups of up to ``REFRESH_GROUP_SIZE`` (``refresh_group``: one
    transaction holds the group's row locks, its token requests go out side
    by side), up to ``REFRESH_THREADS`` token requests at once
    (``connections.threads``), so a process is not idle while the provider
    answers. Past ``batch_seconds()`` (a slow provider) the groups not
    started yet are released, so the next sweep claims them again for other
    workers instead of them waiting here. Returns how many ended how:
    ``{"refreshed": 9, "skipped": 1}``.
    """
    deadline = time.monotonic() + batch_seconds()
    batch = Batch()
    size = threads.group_size()
    groups = [connection_ids[i : i + size] for i in range(0, len(connection_ids), size)]

    def run(item: tuple[int, list]) -> list[Outcome]:
        index, ids = item
        if index and time.monotonic() > deadline:
            for connection_id in ids:
                _release_claim(connection_id, lease_token)
            return [Outcome.RELEASED] * len(ids)
        try:
            return refresh_group(connection_ids=ids, lease_token=lease_token, batch=batch)
        except SoftTimeLimitExceeded:
            raise  # the task is out of time: stop here
        except Exception:
            # The transaction rolled back; the claims run out and a later sweep tries again.
            return [_unexpected(", ".join(map(str, ids)), "failed unexpectedly")] * len(ids)

    try:
        outcomes = [
            outcome
            for group in threads.run_each(
                run, list(enumerate(groups)), failed=lambda outcomes: Outcome.ERROR in outcomes
            )
            for outcome in group
        ]
    finally:
        write_history(batch.events)
    counts = dict(Counter(str(outcome) for outcome in outcomes))
    if counts.get(Outcome.RELEASED):
        logger.warning(
            "refresh batch ran past %.0f s: released %d of %d claims for the next sweep",
            batch_seconds(),
            counts[Outcome.RELEASED],
            len(connection_ids),
        )
    return counts


def _release_claim(connection_id, lease_token: uuid.UUID) -> None:
    Connection.objects.filter(id=connection_id, lease_token=lease_token).update(lease_token=None, lease_expires_at=None)


def write_history(events: list[ConnectionEvent]) -> None:
    """The batch's routine ``refreshed`` events, in one INSERT.

    Not in each refresh's transaction: the tokens are (``_succeed``); this is
    history. On PostgreSQL the commit does not wait for its WAL flush
    (``synchronous_commit = off`` for this transaction only): a crash in the
    following fraction of a second can lose these rows, never a token, and
    ``last_refreshed_at`` on the connection stays right (docs/refresh-engine.md).
    """
    if not events:
        return
    with transaction.atomic():
        if db_connection.vendor == "postgresql":
            with db_connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        ConnectionEvent.objects.bulk_create(events, batch_size=500)


# --- 3. Entry points: lock the row, decide, refresh ------------------------------------------------


def _locked_rows():
    return Connection.objects.select_for_update(of=("self",)).select_related("oauth_client")


def _lock_for_request(connection_id) -> Connection | None:
    """The row, locked, for a refresh a request asks for (token API, proxy, a person).

    The request may have found the row in this process's cache (``rowcache``): that copy is
    dropped when this transaction ends, so the next request reads what it left.
    """
    rowcache.forget_on_commit(connection_id)
    return _locked_rows().filter(pk=connection_id).first()


def refresh_claimed(*, connection_id, lease_token: uuid.UUID, batch: Batch) -> RefreshResult:
    """A worker's refresh of a connection the sweeper claimed with ``lease_token``."""
    with transaction.atomic():
        connection = worker_rows.lock_one(connection_id, batch.client)
        if skipped := _claim_check(connection, lease_token):
            return skipped
        return _refresh_locked(connection, lease_token=lease_token, detail="Refreshed.", extra=False, batch=batch)


def _claim_check(connection: Connection | None, lease_token: uuid.UUID) -> RefreshResult | None:
    """Why a claimed connection, locked, is not refreshed now (its claim released), or None."""
    if connection is None:
        return RefreshResult(Outcome.SKIPPED, None, "The connection no longer exists.")
    if connection.lease_token != lease_token:
        return RefreshResult(Outcome.SKIPPED, connection, "Another claim owns this connection now.")
    if reason := not_refreshable(connection) or _not_due(connection, timezone.now()):
        _release(connection)
        connection.save(update_fields=["lease_token", "lease_expires_at", "interrupted_at", "updated_at"])
        return RefreshResult(Outcome.SKIPPED, connection, reason)
    return None


def refresh_group(*, connection_ids: list, lease_token: uuid.UUID, batch: Batch) -> list[Outcome]:
    """A worker's refreshes of a group of claimed connections, under one transaction.

    What ``refresh_claimed`` does for each, with the statements a refresh
    costs shared by the group: one ``SELECT … FOR UPDATE`` locks the rows,
    their token requests go out side by side (``threads.call_each``), each
    answer is stored as ``refresh_claimed`` would, and one commit stores the
    rotated tokens of all (docs/refresh-engine.md, "Groups").

    If anything fails before the token requests, the transaction rolls back
    and each connection goes through ``refresh_claimed`` alone. If anything
    fails after them, the transaction rolls back and each answer already
    received is stored in a transaction of its own (``_store_alone``): a
    rotated refresh token is never dropped because another connection of
    the group failed.
    """
    if len(connection_ids) == 1:
        return [refresh_claimed(connection_id=connection_ids[0], lease_token=lease_token, batch=batch).outcome]
    group = Batch(clients=batch.clients)  # its history joins the batch's once committed
    sent: set[str] = set()  # requests that may have gone out
    answers: dict = {}
    try:
        with transaction.atomic():
            rows = worker_rows.lock_group(connection_ids, group.client)
            outcomes, counted, calls = {}, {}, []
            for connection_id in map(str, connection_ids):
                connection = rows.get(connection_id)
                if done := _claim_check(connection, lease_token):
                    outcomes[connection_id] = done.outcome
                    continue
                counted[connection_id] = metrics.refresh_started(connection)
                if done := _before_request(connection, lease_token=lease_token, extra=False):
                    outcomes[connection_id] = done.outcome
                else:
                    calls.append(connection)
            sent.update(str(c.pk) for c in calls)
            answers = dict(zip((str(c.pk) for c in calls), threads.call_each(_request, calls), strict=True))
            for connection in calls:
                outcomes[str(connection.pk)] = _answered(connection, answers[str(connection.pk)], lease_token, group)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.exception("refresh group of %d failed; storing each on its own", len(connection_ids))
        return [_alone(connection_id, sent, answers, lease_token, batch) for connection_id in connection_ids]
    batch.events.extend(group.events)
    for connection_id, done in counted.items():
        if outcomes[connection_id] != Outcome.ERROR:  # counted by refresh_failed_unexpectedly
            done(outcomes[connection_id])
    return [outcomes[str(connection_id)] for connection_id in connection_ids]


def _answered(connection: Connection, answer, lease_token: uuid.UUID, batch: Batch) -> Outcome:
    if isinstance(answer, Exception) and not isinstance(answer, TokenEndpointError):
        # Not the provider's answer (e.g. a bug or the network stack): nothing is stored, the claim runs out.
        return _unexpected(connection.pk, "failed unexpectedly", error=answer)
    issued_at, _sent, tokens_or_error = answer
    return _after_request(
        connection, issued_at, tokens_or_error, lease_token=lease_token, detail="Refreshed.", batch=batch
    ).outcome


def _alone(connection_id, sent: set[str], answers: dict, lease_token: uuid.UUID, batch: Batch) -> Outcome:
    """One connection of a group whose transaction failed, in a transaction of its own."""
    try:
        if str(connection_id) in answers:
            return _store_alone(connection_id, answers[str(connection_id)], lease_token, batch)
        if str(connection_id) in sent:
            # Its request may have gone out, its answer is unknown: never a second one with the
            # same refresh token. The claim runs out (``interrupted_at`` then explains a refusal).
            return _unexpected(connection_id, "the answer to its token request is unknown", error=None)
        return refresh_claimed(connection_id=connection_id, lease_token=lease_token, batch=batch).outcome
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        return _unexpected(connection_id, "failed unexpectedly")


def _unexpected(connection_ids, what: str, *, error: BaseException | None | bool = True) -> Outcome:
    """Log and count a refresh that ended neither with the provider's answer stored nor skipped.

    ``error``: the exception (``True``: the one being handled; ``None``: none).
    """
    logger.error("refresh of connection %s: %s", connection_ids, what, exc_info=error)
    metrics.refresh_failed_unexpectedly()
    return Outcome.ERROR


def _store_alone(connection_id, answer, lease_token: uuid.UUID, batch: Batch) -> Outcome:
    """The provider's answer to a group's token request, stored after the group's transaction failed.

    The row is locked again; the answer is stored only while the claim is
    still this batch's and the refresh token the one that was sent.
    """
    with transaction.atomic():
        connection = worker_rows.lock_one(connection_id, batch.client)
        if connection is None or connection.lease_token != lease_token:
            logger.warning("refresh of connection %s: answer not stored, the claim is no longer ours", connection_id)
            return Outcome.SKIPPED
        if isinstance(answer, tuple) and answer[1] != connection.refresh_token:
            logger.warning("refresh of connection %s: answer not stored, refreshed meanwhile", connection_id)
            return Outcome.SKIPPED
        connection.count_token_call()
        done = metrics.refresh_started(connection)
        outcome = _answered(connection, answer, lease_token, batch)
    if outcome != Outcome.ERROR:
        done(outcome)
    return outcome


def refresh_on_demand(*, connection: Connection) -> RefreshResult:
    """The token API's refresh of a due connection no worker has refreshed yet.

    Also a failing connection whose token is gone (or nearly): one attempt
    instead of "unavailable" until the next retry. Concurrent callers queue on
    the row lock; the first refreshes, the others find it no longer due (or
    its attempt failed a moment ago) and read what it left (single flight).
    """
    with transaction.atomic():
        connection = _lock_for_request(connection.pk)
        if connection is None:
            return RefreshResult(Outcome.SKIPPED, None, "The connection no longer exists.")
        if reason := not_refreshable(connection) or _not_due_on_demand(connection, timezone.now()):
            return RefreshResult(Outcome.SKIPPED, connection, reason)
        return _refresh_locked(
            connection,
            lease_token=None,
            detail="Refreshed on demand by the token API.",
            extra=connection.refresh_failures > 0,
        )


def refresh_for_validity(*, connection: Connection, min_valid: float) -> RefreshResult:
    """The token API's refresh for ``?min_valid=N``: the current token expires within N seconds.

    Only inside the provider's window (Exact Online: its last 30 s), and only
    once however many callers ask (single flight: under the row lock, a
    caller finds the token another one just got and does nothing). Ahead of
    the schedule it counts as an extra token request, so the provider's daily
    budget keeps the scheduled refreshes their share.
    """
    with transaction.atomic():
        connection = _lock_for_request(connection.pk)
        if connection is None:
            return RefreshResult(Outcome.SKIPPED, None, "The connection no longer exists.")
        now = timezone.now()
        expires = connection.access_token_expires_at
        if connection.access_token and expires is not None and (expires - now).total_seconds() >= min_valid:
            return RefreshResult(Outcome.SKIPPED, connection, "Valid long enough: already refreshed.")
        if reason := not_refreshable(connection) or _window_closed(connection, now):
            return RefreshResult(Outcome.SKIPPED, connection, reason)
        due = connection.refresh_due_at is not None and connection.refresh_due_at <= now
        return _refresh_locked(
            connection,
            lease_token=None,
            detail="Refreshed on demand by the token API (min_valid).",
            extra=not due or connection.refresh_failures > 0,
        )


def refresh_after_rejection(*, connection: Connection, rejected_token: str) -> RefreshResult:
    """The proxy's refresh after the provider's API answered 401 to ``rejected_token``.

    At most one per rejected token however many calls saw the 401 (single
    flight: a caller that finds another token under the row lock uses that
    one), and only when the provider's window allows a refresh now (Exact
    Online: not before the last 30 s; a 401 earlier means the grant was
    revoked or replaced, which a refresh would not mend).
    """
    with transaction.atomic():
        connection = _lock_for_request(connection.pk)
        if connection is None:
            return RefreshResult(Outcome.SKIPPED, None, "The connection no longer exists.")
        if connection.access_token and str(connection.access_token) != rejected_token:
            return RefreshResult(Outcome.SKIPPED, connection, "Another call refreshed the token a moment ago.")
        if reason := not_refreshable(connection) or _window_closed(connection, timezone.now()):
            return RefreshResult(Outcome.SKIPPED, connection, reason)
        return _refresh_locked(
            connection, lease_token=None, detail="Refreshed by the proxy after the API answered 401.", extra=True
        )


def refresh_forced(*, connection: Connection) -> RefreshResult:
    """An admin's refresh, due or not, but never before the provider's window opens.

    ``connection``: looked up by the caller within its workspace; the row is
    locked and read again here.
    """
    with transaction.atomic():
        connection = _lock_for_request(connection.pk)
        if connection is None:
            return RefreshResult(Outcome.SKIPPED, None, "The connection no longer exists.")
        if reason := not_refreshable(connection) or _window_closed(connection, timezone.now()):
            return RefreshResult(Outcome.SKIPPED, connection, reason)
        # Ahead of the schedule: other web processes must not hand out the replaced token from their copy.
        rowcache.changed(connection.pk)
        return _refresh_locked(connection, lease_token=None, detail="Refreshed.", extra=True)


def not_refreshable(connection: Connection) -> str:
    """Why this connection cannot be refreshed at all ("" when it can)."""
    if connection.refresh_paused_at is not None:
        return PAUSED_MESSAGE
    if connection.status not in REFRESHABLE:
        return f"The connection is {connection.get_status_display().lower()}."
    if not connection.refresh_token:
        return "The connection has no refresh token."
    return ""


def _not_due(connection: Connection, now: datetime) -> str:
    if connection.refresh_due_at is None or connection.refresh_due_at > now:
        return "Not due: already refreshed."
    return ""


def _not_due_on_demand(connection: Connection, now: datetime) -> str:
    if not _not_due(connection, now):
        return ""
    if connection.status != Status.REFRESH_FAILING:
        return "Not due: already refreshed."
    expires = connection.access_token_expires_at
    if expires is not None and (expires - now).total_seconds() > ON_DEMAND_SECONDS:
        return "Not due: the current access token is still valid."
    if reason := _window_closed(connection, now):
        return reason
    spacing = _policy(connection).retry_seconds
    if connection.last_error_at and (now - connection.last_error_at).total_seconds() < spacing:
        return f"The last attempt failed moments ago ({connection.last_error}); the next is planned."
    return ""


def _window_closed(connection: Connection, now: datetime) -> str:
    opens = refresh_window_opens_at(connection)
    if opens and now < opens:
        return f"The provider accepts a refresh only from {opens:%H:%M:%S} UTC."
    return ""


# --- 4. The core: one token request under the row lock ------------------------------------------


@metrics.count_refresh  # tokenkeeper_refreshes_total, tokenkeeper_refresh_lead_seconds (common/metrics.py)
def _refresh_locked(
    connection: Connection, *, lease_token: uuid.UUID | None, detail: str, extra: bool, batch: Batch | None = None
) -> RefreshResult:
    """Call the token endpoint for a locked connection and store what it answered.

    ``batch``: a worker's batch, which writes the routine history at its end.

    ``extra``: an attempt on top of the engine's own (the token API retrying a
    failing connection, a person's "refresh now"), which must leave the
    day's scheduled refreshes their share of the provider's daily budget.
    The engine's own retries slow down to the scheduled pace instead
    (``_retry_delay``).
    """
    if done := _before_request(connection, lease_token=lease_token, extra=extra):
        return done
    issued_at, _sent, answer = _request(connection)
    return _after_request(connection, issued_at, answer, lease_token=lease_token, detail=detail, batch=batch)


def _before_request(connection: Connection, *, lease_token: uuid.UUID | None, extra: bool) -> RefreshResult | None:
    """What ends a refresh of a locked connection before any token request (or None), and the
    request counted against the provider's daily budget when one goes out."""
    now = timezone.now()
    if connection.refresh_token_expires_at and connection.refresh_token_expires_at <= now:
        return mark_needs_reauth(
            connection,
            f"The refresh token expired at {connection.refresh_token_expires_at:%Y-%m-%d %H:%M:%S} UTC. "
            "Reconnect to authorize again.",
        )
    if over := _over_budget(connection, now, extra=extra):
        message, until = over
        if lease_token is None:  # the token API or a person: tell them, leave the schedule alone
            return RefreshResult(Outcome.DEFERRED, connection, message, retry_at=until)
        return _defer(connection, message, until)
    connection.count_token_call()
    return None


def _request(connection: Connection) -> tuple[datetime, str, TokenSet | TokenEndpointError]:
    """The token request: (when it went out, the refresh token sent, the tokens or the provider's error).

    Reads nothing from the database, so a group's requests run on threads without one.
    """
    issued_at, sent = timezone.now(), connection.refresh_token
    try:
        return issued_at, sent, refresh_tokens(connection.oauth_client, refresh_token=sent)
    except TokenEndpointError as error:
        return issued_at, sent, error


def _after_request(
    connection: Connection,
    issued_at: datetime,
    answer: TokenSet | TokenEndpointError,
    *,
    lease_token: uuid.UUID | None,
    detail: str,
    batch: Batch | None,
) -> RefreshResult:
    """Store the provider's answer for the locked connection, in its transaction."""
    if isinstance(answer, TokenEndpointError):
        logger.info("refresh of connection %s failed: %s", connection.id, answer.message)
        if answer.kind == PERMANENT:
            return mark_needs_reauth(
                connection, _permanent_message(connection, answer, lease_token), status=answer.status
            )
        return _fail(connection, answer)
    if not answer.access_token:
        return _fail(connection, TokenEndpointError("The provider answered without an access token.", kind=TRANSIENT))
    return _succeed(connection, answer, issued_at, detail=detail, batch=batch)


def _policy(connection: Connection):
    return connection.oauth_client.provider_spec.refresh_policy


def _recent_errors(connection: Connection, now: datetime) -> list[datetime]:
    """When this connection's token requests failed within the provider's error-budget period.

    Only read when the last error is that recent, so the scheduled refresh
    of a healthy connection costs no query.
    """
    since = now - timedelta(seconds=_policy(connection).error_budget_seconds)
    if connection.last_error_at is None or connection.last_error_at < since:
        return []
    return list(
        ConnectionEvent.objects.filter(
            connection=connection, kind=EventKind.REFRESH_FAILED, created_at__gte=since
        ).values_list("created_at", flat=True)
    )


def _over_budget(connection: Connection, now: datetime, *, extra: bool) -> tuple[str, datetime] | None:
    """Why a token request must not be sent now, and when it may: (message, time), or None."""
    policy = _policy(connection)
    errors = _recent_errors(connection, now)
    if frees_at := policy.error_budget_frees_at(errors):
        return (
            f"{len(errors)} failed token requests in the last {policy.error_budget_seconds // 60} minutes: the "
            f"provider allows {policy.error_budget} before it blocks the app. Next attempt at {frees_at:%H:%M:%S} UTC.",
            frees_at,
        )
    budget = policy.daily_token_budget
    if not budget:
        return None
    calls = connection.token_calls_today
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if calls >= budget:
        return (
            f"{calls} token requests today: the provider allows {budget} a day. Next attempt at 00:00 UTC.",
            midnight,
        )
    if extra and policy.daily_budget_tight(now, calls, connection.access_token_lifetime or 0):
        until = connection.refresh_due_at or midnight
        return (
            f"{calls} of the provider's {budget} daily token requests are used and the rest of the day's scheduled "
            f"refreshes need the others: no extra attempt; the next one is at {until:%H:%M:%S} UTC.",
            until,
        )
    return None


def _defer(connection: Connection, message: str, until: datetime) -> RefreshResult:
    """A claimed refresh that may not ask the provider now: moved to when it may."""
    connection.refresh_due_at = until
    connection.status = Status.REFRESH_FAILING
    connection.last_error = message
    _release(connection)
    connection.save()
    connection_event(connection, EventKind.REFRESH_DEFERRED, message, retry_at=until.isoformat())
    return RefreshResult(Outcome.DEFERRED, connection, message, retry_at=until)


_UNLOADED = object()
_SUCCESS_FIELDS = (
    "access_token",
    "token_type",
    "access_token_expires_at",
    "access_token_lifetime",
    "granted_scopes",
    "refresh_token",
    "refresh_token_expires_at",
    "refresh_due_at",
    "status",
    "refresh_failures",
    "last_refreshed_at",
    "last_error",
    "last_error_at",
    "lease_token",
    "lease_expires_at",
    "interrupted_at",
    "token_calls",
    "token_calls_date",
)


def _succeed(connection: Connection, tokens, issued_at: datetime, *, detail: str, batch: Batch | None) -> RefreshResult:
    was, old_expiry = connection.status, connection.access_token_expires_at
    before = {name: connection.__dict__.get(name, _UNLOADED) for name in _SUCCESS_FIELDS}
    before["token_calls"] -= 1  # counted before the request, on the same object
    apply_tokens(connection, tokens, issued_at=issued_at)
    connection.status = Status.ACTIVE
    connection.refresh_failures = 0
    connection.last_refreshed_at = timezone.now()
    connection.last_error = ""
    connection.last_error_at = None
    _release(connection)
    # Only the columns that changed, in the lock's transaction.
    worker_rows.save_columns(
        connection, [name for name in _SUCCESS_FIELDS if getattr(connection, name) != before[name]]
    )
    refreshed = ConnectionEvent(
        connection=connection,
        kind=EventKind.REFRESHED,
        detail=detail,
        data={
            "expires_at": connection.access_token_expires_at.isoformat(),
            "rotated": bool(tokens.refresh_token),
            # Seconds the old token had left when the request went out (inside Exact's window: 0 < lead <= 30).
            "lead": round((old_expiry - issued_at).total_seconds(), 2) if old_expiry else None,
            **_timing(connection, old_expiry, issued_at),
        },
    )
    if batch is not None:
        batch.events.append(refreshed)
    else:
        refreshed.save()
    if was == Status.REFRESH_FAILING:
        unavailable = max((issued_at - old_expiry).total_seconds(), 0) if old_expiry else 0
        connection_event(
            connection,
            EventKind.RECOVERED,
            f"Refreshing works again; the access token was unavailable for {unavailable:.0f} s.",
            unavailable_seconds=round(unavailable, 1),
        )
    return RefreshResult(Outcome.REFRESHED, connection)


def _timing(connection: Connection, old_expiry: datetime | None, issued_at: datetime) -> dict:
    """Event data that tells whether a refresh came in time: after the provider's window
    opened (if it has one) and before the old access token expired (the Overview's share)."""
    if old_expiry is None:
        return {}
    opens = _policy(connection).window_opens_at(old_expiry)
    in_window = issued_at < old_expiry and (opens is None or issued_at >= opens)
    return {"previous_expires_at": old_expiry.isoformat(), "in_window": in_window}


def _backoff(failures: int) -> float:
    """Exponential backoff once the token has expired: 30 s, 60 s, 2 min … at most an hour."""
    return min(settings.REFRESH_RETRY_BASE_SECONDS * 2 ** max(failures - 1, 0), 3600)


def _retry_delay(connection: Connection, error: TokenEndpointError, now: datetime) -> float:
    """Seconds until the next attempt: inside the provider's window while the
    token is valid, never past the provider's error budget (RefreshPolicy)."""
    if error.kind == TOO_EARLY:
        # Our clock ran ahead of the provider's: try again just inside its window.
        return max(error.retry_after or 0, 5 * connection.refresh_failures)
    policy, lifetime = _policy(connection), connection.access_token_lifetime or 0
    errors = [*_recent_errors(connection, now), now]
    base = policy.retry_delay(
        now=now,
        expires_at=connection.access_token_expires_at,
        errors=errors,
        backoff=_backoff(connection.refresh_failures),
    )
    if policy.daily_budget_tight(now, connection.token_calls_today, lifetime):
        base = max(base, policy.refresh_every(lifetime))  # the day's budget: no faster than scheduled
    # Jitter only upwards: never earlier than the budget allows.
    return max(base * random.uniform(1.0, 1.2), error.retry_after or 0)  # noqa: S311 (jitter, not security)


def _fail(connection: Connection, error: TokenEndpointError) -> RefreshResult:
    now = timezone.now()
    connection.refresh_failures += 1
    delay = _retry_delay(connection, error, now)
    connection.refresh_due_at = now + timedelta(seconds=delay)
    connection.status = Status.REFRESH_FAILING
    connection.last_error = error.message
    connection.last_error_at = now
    _release(connection)
    connection.save()
    connection_event(
        connection,
        EventKind.REFRESH_FAILED,
        error.message,
        attempt=connection.refresh_failures,
        retry_in_seconds=round(delay, 1),
        status=error.status,
    )
    return RefreshResult(Outcome.FAILED, connection, error.message, retry_at=connection.refresh_due_at)


def mark_needs_reauth(connection: Connection, message: str, *, status: int | None = None) -> RefreshResult:
    """Move a locked connection to ``needs_reauth``: no more refreshes until someone reconnects it.

    The event, the audit row and the e-mails happen once per incident, on the
    transition. ``status``: the provider's HTTP status, when its answer was the reason.
    """
    already = connection.status == Status.NEEDS_REAUTH
    connection.status = Status.NEEDS_REAUTH
    connection.refresh_due_at = None
    connection.last_error = message
    connection.last_error_at = timezone.now()
    _release(connection)
    connection.save()
    if not already:
        connection_event(connection, EventKind.NEEDS_REAUTH, message, **({"status": status} if status else {}))
        audit_record(
            workspace=connection.workspace,
            actor=SYSTEM,
            action="connection.needs_reauth",
            target=connection,
            data={"reason": message},
        )
        notify_needs_reauth(connection)
    return RefreshResult(Outcome.NEEDS_REAUTH, connection, message)


def _permanent_message(connection: Connection, error: TokenEndpointError, lease_token: uuid.UUID | None) -> str:
    if connection.interrupted_at is not None:
        return (
            f"{error.message} The previous refresh was interrupted (its claim ran out at "
            f"{connection.interrupted_at:%Y-%m-%d %H:%M:%S} UTC without an answer being stored): the provider "
            "had most likely already rotated the refresh token. Reconnect to authorize again."
        )
    if connection.lease_token is not None and connection.lease_token != lease_token:
        # A worker's claim is still on the row but it no longer holds the lock:
        # that worker stopped, most likely mid-refresh.
        return (
            f"{error.message} A refresh claimed by a worker was interrupted before its answer was stored: the "
            "provider had most likely already rotated the refresh token. Reconnect to authorize again."
        )
    return f"{error.message} Reconnect to authorize again."


def _release(connection: Connection) -> None:
    connection.lease_token = None
    connection.lease_expires_at = None
    connection.interrupted_at = None
