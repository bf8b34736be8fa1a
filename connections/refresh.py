"""The token refresh engine.

Beat runs ``refresh_sweep`` every few seconds. It claims the connections
whose ``refresh_due_at`` has passed, writing a lease (token + expiry) in the
claiming transaction (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL), and
queues the claimed ids as tasks (``connections.batches``: one or two ids per
task while few are due, batches refreshed on threads when many are). Each
refresh runs under its own row lock: it re-reads the connection, skips if its
lease is gone or someone already refreshed, calls the token endpoint and
stores the rotated tokens in the same transaction. The token API calls the
same function on demand, so concurrent callers wait for the one refresh
(single flight).

Why a lease and a lock: the lock alone ends at commit and dies with the
worker; the lease keeps a claimed connection from being claimed again until
the attempt must have ended (longer than the task's hard time limit). A lease
that runs out unreleased means the attempt was interrupted, which is
remembered in ``interrupted_at`` to explain an "old refresh token" answer.
"""

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone

from audit.services import SYSTEM, Actor, audit_record
from common.errors import ConflictError

from .models import Connection, EventKind, Status
from .notifications import notify_needs_reauth
from .oauth import PERMANENT, TOO_EARLY, TokenEndpointError, refresh_tokens
from .services import connection_event
from .tokens import apply_tokens

logger = logging.getLogger(__name__)

REFRESHABLE = (Status.ACTIVE, Status.REFRESH_FAILING)
_UNLOADED = object()


def lease_seconds() -> int:
    return settings.REFRESH_LEASE_SECONDS


@dataclass
class RefreshOutcome:
    """What a refresh attempt did: ``refreshed``, ``skipped``, ``failed`` or ``needs_reauth``."""

    result: str
    connection: Connection | None = None
    message: str = ""
    retry_at: datetime | None = None


# --- Claiming (the sweeper) -------------------------------------------------------------


def refresh_claim_due(*, now: datetime | None = None, limit: int = 500) -> tuple[list[uuid.UUID], uuid.UUID]:
    """Claim up to ``limit`` due connections; returns their ids and the lease token."""
    now = now or timezone.now()
    lease = uuid.uuid4()
    with transaction.atomic():
        due = (
            Connection.objects.filter(refresh_due_at__lte=now)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
            .order_by("refresh_due_at")
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


# --- Refreshing ---------------------------------------------------------------------------------


def _backoff(failures: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter: 30 s, 60 s, 2 min … at most an hour.

    Six failures take over 30 minutes, which keeps us inside Exact Online's
    budget of 10 errors an hour per endpoint. Retry-After wins when longer.
    """
    base = min(settings.REFRESH_RETRY_BASE_SECONDS * 2 ** max(failures - 1, 0), 3600)
    delay = base * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not security)
    return max(delay, retry_after or 0)


def _release(connection: Connection) -> None:
    connection.lease_token = None
    connection.lease_expires_at = None
    connection.interrupted_at = None


# What a refresh task never reads: left out of its locked SELECT (a deferred
# field still loads on first access, and assigning one saves it).
_COLD_FIELDS = (
    "access_token",
    "account_id",
    "account_name",
    "account_email",
    "account_details",
    "connected_at",
    "created_at",
)
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
)


def _succeed(connection: Connection, tokens, issued_at: datetime, *, on_demand: bool) -> RefreshOutcome:
    was = connection.status
    before = {name: connection.__dict__.get(name, _UNLOADED) for name in _SUCCESS_FIELDS}
    apply_tokens(connection, tokens, issued_at=issued_at)
    connection.status = Status.ACTIVE
    connection.refresh_failures = 0
    connection.last_refreshed_at = timezone.now()
    connection.last_error = ""
    connection.last_error_at = None
    _release(connection)
    # Only the columns that changed: the UPDATE is built per refresh, and the
    # engine does hundreds a second (docs/benchmarks.md).
    connection.save(
        update_fields=[name for name in _SUCCESS_FIELDS if getattr(connection, name) != before[name]] + ["updated_at"]
    )
    detail = "Refreshed on demand by the token API." if on_demand else "Refreshed."
    connection_event(
        connection,
        EventKind.REFRESHED,
        detail,
        expires_at=connection.access_token_expires_at.isoformat(),
        rotated=bool(tokens.refresh_token),
    )
    if was == Status.REFRESH_FAILING:
        connection_event(connection, EventKind.RECOVERED, "Refreshing works again.")
    return RefreshOutcome("refreshed", connection)


def _needs_reauth(connection: Connection, message: str) -> RefreshOutcome:
    already = connection.status == Status.NEEDS_REAUTH
    connection.status = Status.NEEDS_REAUTH
    connection.refresh_due_at = None
    connection.last_error = message
    connection.last_error_at = timezone.now()
    _release(connection)
    connection.save()
    if not already:
        connection_event(connection, EventKind.NEEDS_REAUTH, message)
        audit_record(
            workspace=connection.workspace,
            actor=SYSTEM,
            action="connection.needs_reauth",
            target=connection,
            data={"reason": message},
        )
        notify_needs_reauth(connection)
    return RefreshOutcome("needs_reauth", connection, message)


def _fail(connection: Connection, error: TokenEndpointError) -> RefreshOutcome:
    now = timezone.now()
    connection.refresh_failures += 1
    if error.kind == TOO_EARLY:
        # Our clock ran ahead of the provider's: try again just inside its window.
        delay = max(error.retry_after or 0, 5 * connection.refresh_failures)
    else:
        delay = _backoff(connection.refresh_failures, error.retry_after)
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
    return RefreshOutcome("failed", connection, error.message, retry_at=connection.refresh_due_at)


def _permanent_message(connection: Connection, error: TokenEndpointError, lease_token) -> str:
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


def connection_refresh(
    *, connection_id, lease_token: uuid.UUID | None = None, force: bool = False, on_demand: bool = False
) -> RefreshOutcome:
    """Refresh one connection under its row lock.

    From a task, ``lease_token`` must match the claim. ``on_demand`` (the token
    API) and ``force`` (an admin) need no lease; ``force`` refreshes even if
    not yet due (never before the provider's window opens).
    """
    with transaction.atomic():
        locked = Connection.objects.select_for_update(of=("self",)).select_related("oauth_client")
        if lease_token is not None:
            locked = locked.defer(*_COLD_FIELDS)  # a worker: the token API reads the access token it gets back
        try:
            connection = locked.get(pk=connection_id)
        except Connection.DoesNotExist:
            return RefreshOutcome("skipped", None, "The connection no longer exists.")
        if lease_token is not None and connection.lease_token != lease_token:
            return RefreshOutcome("skipped", connection, "Another claim owns this connection now.")
        now = timezone.now()
        skip = _skip_reason(connection, now, force=force)
        if skip:
            if lease_token is not None:
                _release(connection)
                connection.save(update_fields=["lease_token", "lease_expires_at", "interrupted_at", "updated_at"])
            return RefreshOutcome("skipped", connection, skip)
        if connection.refresh_token_expires_at and connection.refresh_token_expires_at <= now:
            return _needs_reauth(
                connection,
                f"The refresh token expired at "
                f"{connection.refresh_token_expires_at:%Y-%m-%d %H:%M:%S} UTC. "
                "Reconnect to authorize again.",
            )
        issued_at = timezone.now()
        try:
            tokens = refresh_tokens(connection.oauth_client, refresh_token=connection.refresh_token)
        except TokenEndpointError as error:
            logger.info("refresh of connection %s failed: %s", connection.id, error.message)
            if error.kind == PERMANENT:
                return _needs_reauth(connection, _permanent_message(connection, error, lease_token))
            return _fail(connection, error)
        if not tokens.access_token:
            return _fail(
                connection, TokenEndpointError("The provider answered without an access token.", kind="transient")
            )
        return _succeed(connection, tokens, issued_at, on_demand=on_demand)


def _skip_reason(connection: Connection, now: datetime, *, force: bool) -> str:
    if connection.status not in REFRESHABLE:
        return f"The connection is {connection.get_status_display().lower()}."
    if not connection.refresh_token:
        return "The connection has no refresh token."
    if force:
        opens = (
            connection.oauth_client.provider_spec.refresh_policy.window_opens_at(connection.access_token_expires_at)
            if connection.access_token_expires_at
            else None
        )
        if opens and now < opens:
            return f"The provider accepts a refresh only from {opens:%H:%M:%S} UTC."
        return ""
    if connection.refresh_due_at is None or connection.refresh_due_at > now:
        return "Not due: already refreshed."
    return ""


def connection_refresh_now(*, workspace, connection: Connection, actor: Actor) -> RefreshOutcome:
    """An admin's "refresh now": immediately, or as soon as the provider's window opens."""
    connection = Connection.objects.select_related("oauth_client").get(pk=connection.pk, workspace=workspace)
    if connection.status not in REFRESHABLE or not connection.refresh_token:
        raise ConflictError(
            _skip_reason(connection, timezone.now(), force=True) + " Reconnect it instead.", code="not_refreshable"
        )
    policy = connection.oauth_client.provider_spec.refresh_policy
    opens = policy.window_opens_at(connection.access_token_expires_at) if connection.access_token_expires_at else None
    if opens and timezone.now() < opens:
        at = policy.due_at(connection.access_token_expires_at, connection.access_token_lifetime or 0)
        Connection.objects.filter(pk=connection.pk, refresh_due_at__gt=at).update(refresh_due_at=at)
        message = (
            f"{connection.oauth_client.get_provider_display()} accepts a refresh only in the last "
            f"{policy.window_seconds} s before expiry; it will happen at {at:%H:%M:%S} UTC."
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            action="connection.refresh_requested",
            target=connection,
            data={"refresh_at": at.isoformat()},
        )
        return RefreshOutcome("scheduled", connection, message, retry_at=at)
    outcome = connection_refresh(connection_id=connection.pk, force=True)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.refresh_forced",
        target=connection,
        data={"result": outcome.result},
    )
    return outcome


# --- Admin actions -----------------------------------------------------------------------------------


@transaction.atomic
def connection_mark_needs_reauth(*, workspace, connection: Connection, actor: Actor, reason: str = "") -> Connection:
    connection = (
        Connection.objects.select_for_update()
        .select_related("workspace", "oauth_client")
        .get(pk=connection.pk, workspace=workspace)
    )
    message = reason or f"Marked for re-authorization by {actor.label}."
    _needs_reauth(connection, message)
    audit_record(workspace=workspace, actor=actor, action="connection.marked_needs_reauth", target=connection)
    return connection
