"""Outgoing webhooks with real Celery workers and beat (Redis broker, PostgreSQL):
a failing receiver is retried with backoff, and a flood of 10,000 queued
deliveries, on their own ``webhooks`` queue, does not delay a due refresh."""

import random
import time

import pytest
import redis

from audit.services import Actor
from integrations import services, stream
from integrations.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WorkspaceEvent
from tests.fixtures.services import worker_broker_url
from tests.integrations.helpers import WebhookReceiver, wait_for
from tests.refresh.helpers import compressed_exact, connect, refreshes

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FLOOD = 10_000


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def endpoint_for(team, receiver):
    endpoint, secret = services.webhook_endpoint_create(
        workspace=team.a, actor=Actor(user=team.alice), url=receiver.url
    )
    receiver.secret = secret
    return endpoint


def test_a_failing_receiver_is_retried_with_backoff_and_every_attempt_is_logged(team, receiver, publish_to_workers):
    fast = {"WEBHOOK_RETRY_SCHEDULE": "1,2", "WEBHOOK_SWEEP_SECONDS": "0.5"}
    worker = publish_to_workers.worker("hooks", queues="default,webhooks", concurrency=2, wait=False, **fast)
    beat = publish_to_workers.beat(wait=False, **fast)
    worker.wait_ready()
    beat.wait_ready()
    endpoint_for(team, receiver)
    receiver.answers = [500, 503, 204]

    event = stream.event_record(workspace_id=team.a.id, type="connection.needs_reauth", data={"n": 1})

    row = wait_for(
        lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).first(),
        timeout=30,
        message="the delivery to succeed",
    )
    attempts = list(WebhookAttempt.objects.filter(delivery=row).order_by("number"))
    assert [(a.number, a.status_code, a.succeeded) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 204, True),
    ]
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 1 and gaps[1] >= 2, gaps  # each retry waited at least its backoff
    assert [r.status for r in receiver.received] == [500, 503, 204]
    assert all(r.error is None and r.verified["id"] == str(event.id) for r in receiver.received)


@compressed_exact
def test_ten_thousand_queued_deliveries_do_not_delay_a_due_refresh(
    team, exact, exact_client, receiver, publish_to_workers
):
    processes = [
        publish_to_workers.worker("refresher", queues="refresh,default", concurrency=2, wait=False),
        publish_to_workers.worker("hooks", queues="webhooks", concurrency=2, wait=False),
        publish_to_workers.beat(wait=False),
    ]
    for process in processes:
        process.wait_ready()
    receiver.delay = 0.05  # a slow receiver: the backlog lasts the whole test
    endpoint_for(team, receiver)

    WorkspaceEvent.objects.bulk_create(
        WorkspaceEvent(workspace=team.a, type="connection.refresh_failed", data={"n": n}) for n in range(FLOOD)
    )
    started = time.monotonic()
    stream.workspace_events_publish(workspace_id=team.a.id)  # beat's publisher may take some of them
    wait_for(lambda: WebhookDelivery.objects.count() == FLOOD, timeout=30, message="10,000 deliveries queued")
    print(f"\n{FLOOD} deliveries queued in {time.monotonic() - started:.1f} s")
    broker = redis.Redis.from_url(worker_broker_url())

    rng = random.Random(11)
    fleet = [
        connect(exact_client, exact, name=f"Company {i}", owner=team.alice, remaining=rng.uniform(31, 34))
        for i in range(5)
    ]
    wait_for(lambda: refreshes(exact, "ok") >= len(fleet), timeout=40, message="five refreshes")

    waiting = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count()
    queued = broker.llen("webhooks")
    leads = exact.refresh_leads
    print(
        f"\nrefresh leads {sorted(round(x, 1) for x in leads)} s; {waiting} deliveries waiting, {queued} in the queue"
    )
    assert waiting >= FLOOD // 2 and queued > 0  # the flood was still there when the refreshes ran
    assert exact.outcomes == {"ok": len(fleet)}
    # The engine aims 25 s before expiry (5 s into Exact's 30 s window); a refresh stuck behind
    # the deliveries would have come at expiry or later.
    assert all(lead > 10 for lead in leads), leads
    assert receiver.count() > 0  # and the deliveries were moving meanwhile, on their own workers
