"""Reads for integrations: the event stream, endpoints and their delivery log, Exact subscriptions."""

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from connections.models import Connection, Status

from .models import ExactSubscription, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WorkspaceEvent

CONNECTED = (Status.ACTIVE, Status.REFRESH_FAILING, Status.NEEDS_REAUTH)


def workspace_events_after(*, workspace, after: int, limit: int, types: list[str] | None = None) -> list:
    """Published events with a cursor above ``after``, in cursor order."""
    events = WorkspaceEvent.objects.filter(workspace=workspace, cursor__gt=after)
    if types:
        events = events.filter(type__in=types)
    return list(events.order_by("cursor")[:limit])


def webhook_endpoints_list(*, workspace) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(workspace=workspace).select_related("created_by").order_by("created_at")


def webhook_endpoint_get(*, workspace, endpoint_id) -> WebhookEndpoint | None:
    return webhook_endpoints_list(workspace=workspace).filter(id=endpoint_id).first()


def webhook_deliveries_list(*, workspace, endpoint: WebhookEndpoint, status: str | None = None) -> QuerySet:
    """An endpoint's delivery log, newest first, with each delivery's attempts."""
    deliveries = WebhookDelivery.objects.filter(workspace=workspace, endpoint=endpoint)
    if status:
        deliveries = deliveries.filter(status=status)
    return (
        deliveries.select_related("event")
        .prefetch_related(Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number")))
        .order_by("-created_at")
    )


def webhook_delivery_get(*, workspace, endpoint: WebhookEndpoint, delivery_id) -> WebhookDelivery | None:
    return webhook_deliveries_list(workspace=workspace, endpoint=endpoint).filter(id=delivery_id).first()


def exact_subscriptions_of(*, connection: Connection) -> QuerySet[ExactSubscription]:
    return ExactSubscription.objects.filter(connection=connection).order_by("topic")


def exact_connection_for_division(*, oauth_client, division, topic: str) -> Connection | None:
    """The connected connection of this client that holds ``division``: one subscribed to the topic
    first, then the most recently connected."""
    divisions = {division, str(division)}
    if str(division).isdigit():
        divisions.add(int(division))
    subscribed = ExactSubscription.objects.filter(connection=OuterRef("pk"), topic__iexact=topic, selected=True)
    query = Q()
    for value in divisions:
        query |= Q(account_details__Division=value)
    return (
        Connection.objects.filter(query, oauth_client=oauth_client, status__in=CONNECTED)
        .annotate(subscribed=Exists(subscribed))
        .order_by("-subscribed", "-connected_at")
        .first()
    )
