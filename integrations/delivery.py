"""Signed outgoing webhooks, in the order they happen.

1. **Fan out** (``deliveries_create``, inside the publisher's transaction):
   one ``WebhookDelivery`` per published event and enabled endpoint that
   wants its type, claimed with a lease, and queued on the ``webhooks`` queue
   once committed (its own Celery queue, so a backlog of deliveries never
   delays a refresh), up to ``WEBHOOK_BATCH_SIZE`` deliveries of one
   endpoint per message, in cursor order.
2. **Send** (``deliveries_send``, task ``webhook_deliver``): one delivery
   after the other while the batch is younger than ``WEBHOOK_BATCH_SECONDS``
   (the rest are released for the sweep: a slow receiver holds up only its
   own batch); each one (``delivery_attempt``) must hold the lease; it is
   signed with the endpoint's secret (Standard Webhooks: ``webhook-id``,
   ``webhook-timestamp``, ``webhook-signature``, with the
   ``standardwebhooks`` package), POSTed through ``common.outbound`` (SSRF
   check, no redirects, timeouts) and its attempt logged.
3. **Retry** (``deliveries_sweep``, beat): a failed attempt is due again
   after the next delay of ``WEBHOOK_RETRY_SCHEDULE`` (5 s … 10 h, about a
   day in all, with jitter); the sweep claims due deliveries and queues them.
   Retries are rows with a due time, not Celery countdowns: a message waiting
   hours in a worker's memory is lost or redelivered (Redis' visibility timeout).
4. **Give up**: after the last retry the delivery has failed; if the endpoint
   has not accepted anything since that delivery's first attempt (a day), it
   is disabled and the workspace admins get an e-mail.
"""

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks import Webhook

from audit.services import SYSTEM, audit_record
from common.netguard import UnsafeURLError
from common.outbound import RedirectRefused
from common.outbound import request as outbound_request

from .models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WorkspaceEvent
from .notifications import notify_endpoint_disabled
from .payload import event_payload
from .queue import enqueue

logger = logging.getLogger(__name__)

DELIVER_TASK = "integrations.tasks.webhook_deliver"
SWEEP_CLAIM_LIMIT = 500
EXCERPT_BYTES = 2048
EXCERPT_CHARS = 500
USER_AGENT = "Tokenkeeper-Webhooks/1.0"


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"  # failed; due again later
    FAILED = "failed"  # failed for the last time
    SKIPPED = "skipped"  # not ours to send (another claim, already done, endpoint disabled or gone)
    RELEASED = "released"  # a batch past its time gave it back to the sweep


def claim_seconds() -> int:
    return settings.WEBHOOK_CLAIM_SECONDS


def queue_batches(claims: list[tuple[uuid.UUID, uuid.UUID]], lease: uuid.UUID) -> int:
    """Queue claimed deliveries, ``(id, endpoint id)`` in order, as messages of up to
    ``WEBHOOK_BATCH_SIZE`` deliveries of one endpoint. A message expires with its claim:
    a later sweep claims what it held again and queues it anew."""
    by_endpoint: dict[uuid.UUID, list[str]] = {}
    for delivery_id, endpoint_id in claims:
        by_endpoint.setdefault(endpoint_id, []).append(str(delivery_id))
    size, messages = settings.WEBHOOK_BATCH_SIZE, 0
    for ids in by_endpoint.values():
        for start in range(0, len(ids), size):
            enqueue(DELIVER_TASK, ids[start : start + size], str(lease), expires=claim_seconds())
            messages += 1
    return messages


def _queue_after_commit(claims: list[tuple[uuid.UUID, uuid.UUID]], lease: uuid.UUID) -> None:
    transaction.on_commit(lambda: queue_batches(claims, lease), robust=True)


# --- 1. Fan out -----------------------------------------------------------------------------------


def deliveries_create(events: list[WorkspaceEvent]) -> int:
    """Deliveries for just-published events (call inside the publisher's transaction)."""
    endpoints = list(WebhookEndpoint.objects.filter(workspace_id=events[0].workspace_id, enabled=True))
    if not endpoints:
        return 0
    now, lease = timezone.now(), uuid.uuid4()
    rows = [
        WebhookDelivery(
            workspace_id=event.workspace_id,
            endpoint=endpoint,
            event=event,
            next_attempt_at=now,
            lease_token=lease,
            lease_expires_at=now + timedelta(seconds=claim_seconds()),
        )
        for event in events
        for endpoint in endpoints
        if event.type in endpoint.event_types
    ]
    WebhookDelivery.objects.bulk_create(rows)
    _queue_after_commit([(row.id, row.endpoint_id) for row in rows], lease)
    return len(rows)


# --- 2. Send --------------------------------------------------------------------------------------


@dataclass
class _Response:
    status: int | None
    excerpt: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def deliveries_send(*, delivery_ids: list, lease_token: uuid.UUID) -> dict[str, int]:
    """A worker's batch: send each delivery in turn; past ``WEBHOOK_BATCH_SECONDS`` release the rest."""
    deadline = time.monotonic() + settings.WEBHOOK_BATCH_SECONDS
    outcomes: dict[str, int] = {}
    for index, delivery_id in enumerate(delivery_ids):
        if index and time.monotonic() > deadline:
            released = WebhookDelivery.objects.filter(id__in=delivery_ids[index:], lease_token=lease_token).update(
                lease_token=None, lease_expires_at=None
            )
            outcomes[Outcome.RELEASED] = released
            break
        outcome = delivery_attempt(delivery_id=delivery_id, lease_token=lease_token)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def delivery_attempt(*, delivery_id, lease_token: uuid.UUID) -> Outcome:
    """Send a claimed delivery once and record how it went."""
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    if delivery is None or delivery.lease_token != lease_token or delivery.status != DeliveryStatus.PENDING:
        return Outcome.SKIPPED
    if not delivery.endpoint.enabled:
        WebhookDelivery.objects.filter(pk=delivery.pk, lease_token=lease_token).update(
            lease_token=None, lease_expires_at=None
        )
        return Outcome.SKIPPED
    started, clock = timezone.now(), time.monotonic()
    response = _send(delivery.endpoint, delivery.event, started)
    duration_ms = round((time.monotonic() - clock) * 1000)
    return _record(delivery.pk, lease_token, response, started, duration_ms)


def signed_headers(secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for ``body``, signed by the standardwebhooks package."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body),
    }


def _send(endpoint: WebhookEndpoint, event: WorkspaceEvent, started: datetime) -> _Response:
    body = json.dumps(event_payload(event), separators=(",", ":"), ensure_ascii=False)
    headers = {
        **signed_headers(endpoint.secret, str(event.id), started, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    try:
        response = outbound_request(
            "POST",
            endpoint.url,
            data=body.encode(),
            headers=headers,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
            stream=True,
        )
    except RedirectRefused as exc:
        return _Response(exc.status, error=exc.describe("endpoint")[:EXCERPT_CHARS])
    except UnsafeURLError as exc:
        return _Response(None, error=f"Refused to send: {exc}"[:EXCERPT_CHARS])
    except requests.RequestException as exc:
        return _Response(None, error=_describe(exc))
    try:
        return _Response(response.status_code, excerpt=_excerpt(response))
    finally:
        response.close()


def _excerpt(response: requests.Response) -> str:
    try:
        raw = response.raw.read(EXCERPT_BYTES, decode_content=True) or b""
    except Exception:  # the excerpt is a courtesy; the status is what counts
        return ""
    return raw.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "The endpoint did not answer in time."
    if isinstance(exc, requests.ConnectionError):
        return "Could not connect to the endpoint."
    return f"The request failed: {type(exc).__name__}."


# --- 3. Record, retry, give up ------------------------------------------------------------------


def retry_delay(attempts: int) -> float | None:
    """Seconds until attempt ``attempts + 1``, or None when no retry is left."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempts > len(schedule):
        return None
    # Jitter only upwards, at most 10 %: retries of many deliveries spread out.
    return schedule[attempts - 1] * random.uniform(1.0, 1.1)  # noqa: S311 (jitter, not security)


def _record(delivery_id, lease_token, response: _Response, started: datetime, duration_ms: int) -> Outcome:
    """Log the attempt and move the delivery on; then what it says about the endpoint.

    Two transactions, so a worker never holds a delivery's lock while it
    waits for the endpoint's: changing an endpoint locks it, then its
    deliveries (the other order would deadlock).
    """
    outcome, endpoint_id, first_attempt = _record_attempt(delivery_id, lease_token, response, started, duration_ms)
    if outcome == Outcome.DELIVERED:
        WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=False).update(failing_since=None)
    elif outcome in (Outcome.RETRYING, Outcome.FAILED):
        WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(failing_since=started)
    if outcome == Outcome.FAILED:
        _disable_if_dead(endpoint_id, first_attempt)
    return outcome


@transaction.atomic
def _record_attempt(
    delivery_id, lease_token, response: _Response, started: datetime, duration_ms: int
) -> tuple[Outcome, uuid.UUID, datetime | None]:
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    delivery.attempts += 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        started_at=started,
        duration_ms=duration_ms,
        status_code=response.status,
        response_excerpt=response.excerpt,
        error=response.error,
        succeeded=response.ok,
    )
    if delivery.lease_token != lease_token:
        # Someone re-sent it meanwhile: their claim decides what happens next.
        delivery.save(update_fields=["attempts"])
        return Outcome.SKIPPED, delivery.endpoint_id, None
    delivery.last_status_code = response.status
    delivery.last_error = response.error or ("" if response.ok else f"HTTP {response.status}")
    delivery.lease_token = delivery.lease_expires_at = None
    if response.ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            DeliveryStatus.SUCCEEDED,
            timezone.now(),
            None,
        )
        outcome = Outcome.DELIVERED
    elif (delay := retry_delay(delivery.attempts)) is not None:
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        outcome = Outcome.RETRYING
    else:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
        outcome = Outcome.FAILED
    delivery.save()
    first = delivery.attempt_log.order_by("number").values_list("started_at", flat=True).first()
    return outcome, delivery.endpoint_id, first


@transaction.atomic
def _disable_if_dead(endpoint_id, first_attempt: datetime | None) -> None:
    """A delivery failed through all its retries: disable the endpoint if it accepted nothing since."""
    endpoint = WebhookEndpoint.objects.select_for_update().select_related("workspace").get(pk=endpoint_id)
    if endpoint.enabled and first_attempt and endpoint.failing_since and endpoint.failing_since <= first_attempt:
        endpoint_disable(endpoint, since=endpoint.failing_since)


def endpoint_disable(endpoint: WebhookEndpoint, *, since: datetime) -> None:
    """Stop sending to a (locked) endpoint that accepted nothing for a whole retry schedule; tell the admins."""
    endpoint.enabled = False
    endpoint.disabled_at = timezone.now()
    endpoint.disabled_reason = (
        f"Nothing was accepted since {since:%Y-%m-%d %H:%M} UTC and a delivery failed through all its retries: "
        "disabled automatically."
    )
    endpoint.save()
    # Waiting deliveries leave the sweeper's index until the endpoint is enabled again.
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(next_attempt_at=None)
    audit_record(
        workspace=endpoint.workspace,
        actor=SYSTEM,
        action="webhook_endpoint.disabled",
        target=endpoint,
        data={"reason": endpoint.disabled_reason},
    )
    logger.warning("webhook endpoint %s disabled: %s", endpoint.id, endpoint.disabled_reason)
    notify_endpoint_disabled(endpoint)


# --- Sweep: claim due retries and queue them ------------------------------------------------------


def deliveries_sweep(*, now: datetime | None = None) -> int:
    """Claim every due delivery of an enabled endpoint and queue it; returns how many."""
    queued = 0
    while True:
        claims, lease = _claim_due(now=now or timezone.now())
        queue_batches(claims, lease)
        queued += len(claims)
        if len(claims) < SWEEP_CLAIM_LIMIT:
            return queued


@transaction.atomic
def _claim_due(*, now: datetime) -> tuple[list[tuple[uuid.UUID, uuid.UUID]], uuid.UUID]:
    claims = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, endpoint__enabled=True)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("next_attempt_at", "event__cursor")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("id", "endpoint_id")[:SWEEP_CLAIM_LIMIT]
    )
    lease = uuid.uuid4()
    if claims:
        WebhookDelivery.objects.filter(id__in=[delivery_id for delivery_id, _ in claims]).update(
            lease_token=lease, lease_expires_at=now + timedelta(seconds=claim_seconds())
        )
    return claims, lease


def delivery_claim_now(delivery: WebhookDelivery) -> None:
    """Make a (locked) delivery due now under a fresh claim and queue it after commit: a re-send."""
    lease = uuid.uuid4()
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.lease_token = lease
    delivery.lease_expires_at = delivery.next_attempt_at + timedelta(seconds=claim_seconds())
    delivery.save()
    _queue_after_commit([(delivery.id, delivery.endpoint_id)], lease)
