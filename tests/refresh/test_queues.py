"""Each kind of work has its queue and its workers: a flood of 10,000 e-mails waiting on the
``email`` queue does not delay a due refresh on the ``refresh`` queue (real workers and beat, the
Exact Online emulator with 40 s tokens and a 30 s window)."""

import json
import time
import uuid

import pytest
import redis

from common.tasks import send_email
from tests.fixtures.services import worker_broker_url
from tests.refresh.helpers import compressed_exact, connect, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), compressed_exact]

FLOOD = 10_000


def flood(broker: redis.Redis) -> None:
    """FLOOD e-mail tasks on the ``email`` queue: one published by Celery, the rest copies of its
    message with their own task id and delivery tag, pushed in one pipeline (seconds, not minutes)."""
    send_email.delay(subject="Flood", body="…", recipient="flood@example.com")
    [message] = broker.lrange("email", 0, 0)
    text = message.decode()
    envelope = json.loads(text)
    task_id, tag = envelope["headers"]["id"], envelope["properties"]["delivery_tag"]
    with broker.pipeline(transaction=False) as pipe:
        for _ in range(FLOOD - 1):
            pipe.lpush("email", text.replace(task_id, str(uuid.uuid4())).replace(tag, str(uuid.uuid4())))
        pipe.execute()


def test_ten_thousand_queued_emails_do_not_delay_a_due_refresh(team, exact, exact_client, celery):
    processes = (celery.worker("refresher", queues="refresh", concurrency=2, wait=False), celery.beat(wait=False))
    for process in processes:
        process.wait_ready()
    broker = redis.Redis.from_url(worker_broker_url())
    flood(broker)
    celery.worker("mailer", queues="email", concurrency=1)  # works through the flood from now on

    due_in = 3  # seconds: due = expiry - 25 s
    connect(exact_client, exact, name="Acme BV", owner=team.alice, remaining=25 + due_in)
    due_at = time.monotonic() + due_in
    wait_until(lambda: exact.refresh_leads, timeout=30, message="the refresh")
    late = time.monotonic() - due_at
    waiting = broker.llen("email")

    print(f"\nrefreshed {late:.1f} s after it fell due, lead {exact.refresh_leads[0]:.1f} s; {waiting} e-mails waiting")
    assert waiting > FLOOD / 2  # the flood was still there when the refresh went through
    assert 15 < exact.refresh_leads[0] <= 30  # inside the window, within seconds of falling due (sweep: 1 s)
    assert set(exact.outcomes) == {"ok"}
