"""Thin Celery entry points for integrations.

``webhook_deliver`` runs on the ``webhooks`` queue (CELERY_TASK_ROUTES), so a
backlog of outgoing webhooks never waits in front of the refresh engine's
tasks; everything else here is short and runs on the default queue.
"""

import uuid

from celery import shared_task
from django.conf import settings

from . import delivery, exact_subscriptions, stream

# Seconds before each retry of an Exact subscription call that failed for a
# reason that may pass (network, 5xx, 429, a token being refreshed).
SUBSCRIPTION_RETRIES = (10, 60, 300, 900)


@shared_task(
    name="integrations.tasks.webhook_deliver", ignore_result=True, acks_late=True, time_limit=90, soft_time_limit=80
)
def webhook_deliver(delivery_ids: list[str], lease_token: str) -> dict[str, int]:
    return delivery.deliveries_send(delivery_ids=delivery_ids, lease_token=uuid.UUID(lease_token))


@shared_task(name="integrations.tasks.webhook_deliveries_sweep", ignore_result=True, time_limit=60, soft_time_limit=50)
def webhook_deliveries_sweep() -> int:
    """Beat: queue the deliveries whose retry is due."""
    return delivery.deliveries_sweep()


@shared_task(
    name="integrations.tasks.workspace_events_publish_stale", ignore_result=True, time_limit=60, soft_time_limit=50
)
def workspace_events_publish_stale() -> int:
    """Beat: publish events whose after-commit publish did not run."""
    return stream.workspace_events_publish_stale()


@shared_task(name="integrations.tasks.workspace_events_purge", ignore_result=True, time_limit=600, soft_time_limit=540)
def workspace_events_purge() -> int:
    return stream.workspace_events_purge(older_than_days=settings.WORKSPACE_EVENT_RETENTION_DAYS, max_seconds=480)


@shared_task(
    bind=True,
    name="integrations.tasks.exact_subscription_sync",
    ignore_result=True,
    acks_late=True,
    time_limit=120,
    soft_time_limit=100,
    max_retries=len(SUBSCRIPTION_RETRIES),
)
def exact_subscription_sync(self, subscription_id: str) -> None:
    try:
        exact_subscriptions.subscription_sync(subscription_id=subscription_id)
    except exact_subscriptions.SyncError as error:
        if self.request.retries >= len(SUBSCRIPTION_RETRIES):
            exact_subscriptions.subscription_give_up(subscription_id=subscription_id, message=error.message)
            return
        raise self.retry(countdown=SUBSCRIPTION_RETRIES[self.request.retries]) from None
