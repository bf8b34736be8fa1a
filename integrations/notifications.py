"""E-mails to the workspace admins about their webhooks."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string

from workspaces.selectors import admin_emails

from .models import WebhookEndpoint


def _send_endpoint_disabled(endpoint: WebhookEndpoint) -> None:
    workspace = endpoint.workspace
    body = render_to_string(
        "integrations/email/endpoint_disabled.txt",
        {
            "endpoint": endpoint,
            "workspace": workspace,
            "url": f"{settings.PUBLIC_BASE_URL}/w/{workspace.slug}/admin/webhooks/{endpoint.id}/",
            "retention_days": f"{settings.WORKSPACE_EVENT_RETENTION_DAYS:g}",
        },
    )
    for email in sorted(set(admin_emails(workspace=workspace))):
        send_mail(
            subject=f"[Tokenkeeper] Webhook endpoint disabled in {' '.join(workspace.name.split())}",
            message=body,
            from_email=None,
            recipient_list=[email],
        )


def notify_endpoint_disabled(endpoint: WebhookEndpoint) -> None:
    transaction.on_commit(lambda: _send_endpoint_disabled(endpoint))
