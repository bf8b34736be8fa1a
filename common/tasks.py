"""E-mail through the ``email`` queue: whoever sends one does not wait for the mail server."""

import logging
import smtplib

from celery import shared_task
from django.core.mail import send_mail

from . import metrics

logger = logging.getLogger(__name__)


@shared_task(
    name="common.tasks.send_email",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=8,
    time_limit=120,
    soft_time_limit=100,
)
def send_email(*, subject: str, body: str, recipient: str) -> None:
    """One e-mail to one recipient; retried with backoff (about 2 hours in all) while the server fails."""
    try:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[recipient])
    except Exception:
        metrics.EMAILS.labels("failed").inc()
        raise
    metrics.EMAILS.labels("sent").inc()
    logger.info("e-mail sent: %s", subject)


def email_queue(*, subject: str, body: str, recipients: list[str]) -> None:
    """Queue one e-mail per recipient on the ``email`` queue (call it after commit)."""
    for recipient in recipients:
        send_email.delay(subject=subject, body=body, recipient=recipient)
