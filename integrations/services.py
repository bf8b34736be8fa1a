"""Writes for outgoing webhook endpoints: register, change, rotate the secret, delete, re-send.

Every change is audited. The signing secret is returned once, by
``webhook_endpoint_create`` and ``webhook_endpoint_rotate_secret``, and
never shown again. Exact Online's topics: ``integrations.exact_subscriptions``.
"""

import base64
import secrets

from django.db import transaction
from django.utils import timezone

from audit.services import Actor, audit_record
from common.errors import ConflictError, ServiceError, has_control_characters
from common.netguard import UnsafeURLError, check_url

from . import delivery
from .models import DeliveryStatus, EventType, WebhookDelivery, WebhookEndpoint

URL_MAX_LENGTH = 500
DESCRIPTION_MAX_LENGTH = 200


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def clean_url(url) -> str:
    url = (url or "").strip() if isinstance(url, str) else ""
    if not url:
        raise ServiceError("Enter the URL that should receive the events, e.g. https://example.com/hooks.", field="url")
    if len(url) > URL_MAX_LENGTH or has_control_characters(url):
        raise ServiceError(f"Enter a URL of at most {URL_MAX_LENGTH} characters, on one line.", field="url")
    try:
        return check_url(url)
    except UnsafeURLError as error:
        raise ServiceError(str(error), field="url") from None


def clean_event_types(event_types) -> list[str]:
    if event_types is None:
        return list(EventType.values)
    if not isinstance(event_types, list | tuple) or not all(isinstance(t, str) for t in event_types):
        raise ServiceError("Give the event types as a list, e.g. [“connection.needs_reauth”].", field="event_types")
    unknown = sorted(set(event_types) - set(EventType.values))
    if unknown:
        raise ServiceError(
            f"Unknown event type “{unknown[0][:60]}”; choose from {', '.join(EventType.values)}.", field="event_types"
        )
    if not event_types:
        raise ServiceError("Choose at least one event type.", field="event_types")
    return [t for t in EventType.values if t in event_types]


def clean_description(description) -> str:
    description = (description or "").strip() if isinstance(description, str) else ""
    if has_control_characters(description):
        raise ServiceError("The description must be one line.", field="description")
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ServiceError(f"The description can be at most {DESCRIPTION_MAX_LENGTH} characters.", field="description")
    return description


@transaction.atomic
def webhook_endpoint_create(
    *, workspace, actor: Actor, url: str, description: str = "", event_types=None
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (shown this once)."""
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace,
        url=clean_url(url),
        description=clean_description(description),
        event_types=clean_event_types(event_types),
        secret=secret,
        created_by=actor.user,
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="webhook_endpoint.created",
        target=endpoint,
        data={"url": endpoint.url, "event_types": endpoint.event_types},
    )
    return endpoint, secret


def _locked(workspace, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk, workspace=workspace)


@transaction.atomic
def webhook_endpoint_update(*, workspace, endpoint: WebhookEndpoint, actor: Actor, **changes) -> WebhookEndpoint:
    """Change ``url``, ``description``, ``event_types`` or ``enabled``; audits what changed."""
    endpoint = _locked(workspace, endpoint)
    cleaners = {
        "url": clean_url,
        "description": clean_description,
        "event_types": clean_event_types,
        "enabled": bool,
    }
    changed = {}
    for name, value in changes.items():
        value = cleaners[name](value)
        if getattr(endpoint, name) != value:
            changed[name] = {"from": getattr(endpoint, name), "to": value}
            setattr(endpoint, name, value)
    if not changed:
        return endpoint
    if "enabled" in changed:
        _switched(endpoint)
    endpoint.save()
    audit_record(workspace=workspace, actor=actor, action="webhook_endpoint.updated", target=endpoint, data=changed)
    return endpoint


def _switched(endpoint: WebhookEndpoint) -> None:
    if endpoint.enabled:
        endpoint.disabled_at, endpoint.disabled_reason, endpoint.failing_since = None, "", None
        # What waited while it was disabled goes out now.
        WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
            next_attempt_at=timezone.now()
        )
    else:
        endpoint.disabled_at, endpoint.disabled_reason = timezone.now(), "Disabled by an admin."
        WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(next_attempt_at=None)


@transaction.atomic
def webhook_endpoint_rotate_secret(*, workspace, endpoint: WebhookEndpoint, actor: Actor) -> str:
    """A new signing secret, at once (the old one stops working); returns it, shown this once."""
    endpoint = _locked(workspace, endpoint)
    secret = new_secret()
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "updated_at"])
    audit_record(workspace=workspace, actor=actor, action="webhook_endpoint.secret_rotated", target=endpoint)
    return secret


@transaction.atomic
def webhook_endpoint_delete(*, workspace, endpoint: WebhookEndpoint, actor: Actor) -> None:
    endpoint = _locked(workspace, endpoint)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="webhook_endpoint.deleted",
        target=endpoint,
        data={"url": endpoint.url},
    )
    endpoint.delete()


@transaction.atomic
def webhook_delivery_resend(*, workspace, delivery_obj: WebhookDelivery, actor: Actor) -> WebhookDelivery:
    """Send a delivery again now (the same ``webhook-id``), whatever became of it."""
    row = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .get(pk=delivery_obj.pk, workspace=workspace)
    )
    if not row.endpoint.enabled:
        raise ConflictError("The endpoint is disabled: enable it first.", code="endpoint_disabled")
    if row.status == DeliveryStatus.PENDING and row.lease_expires_at and row.lease_expires_at > timezone.now():
        raise ConflictError("This delivery is queued to be sent right now.", code="delivery_queued")
    delivery.delivery_claim_now(row)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="webhook_delivery.resent",
        target=row.endpoint,
        data={"delivery": str(row.id), "event": str(row.event_id)},
    )
    return row
