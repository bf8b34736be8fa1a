"""E-mails to the people who can fix a connection: its owner and the workspace admins."""

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string

from common.tasks import email_queue
from workspaces.selectors import admin_emails

from .models import Connection


def recipients(connection: Connection) -> list[str]:
    emails = set(admin_emails(workspace=connection.workspace))
    if connection.owner_id and connection.owner and connection.owner.is_active:
        emails.add(connection.owner.email)
    return sorted(emails)


def _send(connection: Connection, template: str, subject: str) -> None:
    context = {
        "connection": connection,
        "url": f"{settings.PUBLIC_BASE_URL}/w/{connection.workspace.slug}/connections/{connection.id}/",
    }
    body = render_to_string(template, context)
    subject = " ".join(subject.split())  # one header line, even for a name stored before line breaks were refused
    # On the email queue: a refresh worker does not wait for the mail server.
    email_queue(subject=subject, body=body, recipients=recipients(connection))


def notify_needs_reauth(connection: Connection) -> None:
    """Once per incident: call only on the transition into needs_reauth."""
    transaction.on_commit(
        lambda: _send(
            connection,
            "connections/email/needs_reauth.txt",
            f"[Tokenkeeper] Connection “{connection.name}” needs re-authorization",
        )
    )


def notify_recovered(connection: Connection) -> None:
    transaction.on_commit(
        lambda: _send(
            connection, "connections/email/recovered.txt", f"[Tokenkeeper] Connection “{connection.name}” works again"
        )
    )
