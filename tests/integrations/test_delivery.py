"""Outgoing webhooks, in process: signed the Standard Webhooks way (a receiver verifies
them with the standardwebhooks package), retried with backoff, every attempt logged,
re-sent on request, and an endpoint that keeps failing disabled with an e-mail."""

import json
import logging
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from integrations import delivery, stream
from integrations.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.integrations.helpers import WebhookReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def endpoint(team, api, receiver):
    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/webhook-endpoints/",
        {"url": receiver.url, "description": "ERP"},
        format="json",
    )
    assert response.status_code == 201, response.content
    receiver.secret = response.json()["secret"]
    return WebhookEndpoint.objects.get(pk=response.json()["id"])


@pytest.fixture
def emit(team, inline_tasks, django_capture_on_commit_callbacks):
    """``emit(n)``: an event committed, published and its deliveries sent (tasks inline)."""

    def emit(n: int = 1, type: str = "connection.needs_reauth"):
        with django_capture_on_commit_callbacks(execute=True):
            return stream.event_record(workspace_id=team.a.id, type=type, data={"n": n})

    return emit


@pytest.fixture
def sweep(inline_tasks, django_capture_on_commit_callbacks):
    """``sweep(seconds)``: beat's sweep as if run ``seconds`` from now: due retries are sent."""

    def sweep(seconds: float) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return delivery.deliveries_sweep(now=timezone.now() + timedelta(seconds=seconds))

    return sweep


def test_a_receiver_verifies_the_signature_with_the_standardwebhooks_package(endpoint, receiver, emit):
    event = emit(5)
    [got] = receiver.received
    assert got.error is None, got.error
    assert got.verified == {
        "id": str(event.id),
        "cursor": 1,
        "type": "connection.needs_reauth",
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": {"n": 5},
    }
    assert got.headers["webhook-id"] == str(event.id)
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["Content-Type"] == "application/json"
    [row] = WebhookDelivery.objects.all()
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.SUCCEEDED, 1, 204)


def test_a_signature_made_with_another_secret_does_not_verify(endpoint, receiver, emit):
    receiver.secret = "whsec_" + "QUJD" * 8
    emit()
    assert receiver.received[0].verified is None
    assert receiver.received[0].error == "No matching signature found"


def test_only_the_chosen_event_types_are_sent(team, api, endpoint, receiver, emit):
    api.as_user(team.alice).patch(
        f"/api/v1/workspaces/acme/webhook-endpoints/{endpoint.id}/",
        {"event_types": ["exact_online.webhook"]},
        format="json",
    )
    emit(1, type="connection.revoked")
    emit(2, type="exact_online.webhook")
    assert [r.verified["data"]["n"] for r in receiver.received] == [2]


def test_a_failing_receiver_is_retried_with_backoff_and_every_attempt_is_logged(
    endpoint, receiver, emit, sweep, settings
):
    settings.WEBHOOK_RETRY_SCHEDULE = [5, 300, 1800]
    receiver.answers = [500, 503, 204]
    emit()
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    first_wait = (row.next_attempt_at - timezone.now()).total_seconds()
    assert 3 < first_wait <= 5.5

    assert sweep(4) == 0  # not due yet
    assert sweep(6) == 1
    row.refresh_from_db()
    assert (row.attempts, row.last_status_code) == (2, 503)
    assert 295 < (row.next_attempt_at - timezone.now()).total_seconds() <= 330

    assert sweep(331) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.SUCCEEDED, 3, 204)
    log = list(WebhookAttempt.objects.filter(delivery=row).order_by("number"))
    assert [(a.number, a.status_code, a.succeeded) for a in log] == [(1, 500, False), (2, 503, False), (3, 204, True)]
    assert log[0].response_excerpt == "nope, try again later"
    assert all(a.duration_ms >= 0 and a.started_at for a in log)
    assert [r.headers["webhook-id"] for r in receiver.received] == [str(row.event_id)] * 3  # one message, three tries
    assert all(r.error is None for r in receiver.received)  # each attempt signed afresh


def test_an_endpoint_that_keeps_failing_is_disabled_and_the_admins_are_told(
    team, dora, api, endpoint, receiver, emit, sweep, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_SCHEDULE = [1, 1]
    receiver.answers = [500]
    emit()
    sweep(2)
    assert WebhookEndpoint.objects.get().enabled
    sweep(4)
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 3)
    endpoint.refresh_from_db()
    assert endpoint.enabled is False and "failed" in endpoint.disabled_reason
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "dora@example.com"]
    assert "Webhook endpoint disabled" in mail.outbox[0].subject
    assert endpoint.url in mail.outbox[0].body
    assert receiver.secret not in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="webhook_endpoint.disabled", target_id=str(endpoint.id)).exists()

    emit(2)  # nothing goes to a disabled endpoint
    assert receiver.count() == 3

    receiver.answers = [204]
    alice = api.as_user(team.alice)
    assert alice.patch(f"/api/v1/workspaces/acme/webhook-endpoints/{endpoint.id}/", {"enabled": True}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(f"/api/v1/workspaces/acme/webhook-endpoints/{endpoint.id}/deliveries/{row.id}/resend")
    assert response.status_code == 202, response.content
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.SUCCEEDED, 4, 204)
    assert AuditEvent.objects.filter(action="webhook_delivery.resent").exists()


def test_an_endpoint_that_accepted_something_meanwhile_stays_enabled(endpoint, receiver, emit, sweep, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [1]
    receiver.answers = [500, 204, 500]
    emit(1)  # fails
    emit(2)  # accepted
    sweep(2)  # 1 fails for the last time, but the endpoint accepted 2 since its first attempt
    assert dict(WebhookDelivery.objects.values_list("event__data__n", "status")) == {1: "failed", 2: "succeeded"}
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_a_redirect_is_a_failure_and_is_not_followed(endpoint, receiver, emit):
    receiver.answers = [302]
    emit()
    row = WebhookDelivery.objects.get()
    assert row.last_status_code == 302 and "does not follow redirects" in row.last_error
    assert receiver.count() == 1


def test_sending_rechecks_the_url_against_the_ssrf_rules(endpoint, receiver, emit, strict_urls):
    """Registered while loopback was allowed (tests); production rules refuse the send itself."""
    emit()
    assert receiver.count() == 0
    [attempt] = WebhookAttempt.objects.all()
    assert attempt.status_code is None and attempt.error.startswith("Refused to send")


def test_an_unreachable_receiver_is_logged_as_such(team, api, emit, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [1]
    api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/webhook-endpoints/", {"url": "http://127.0.0.1:9/nothing-listens"}, format="json"
    )
    emit()
    [attempt] = WebhookAttempt.objects.all()
    assert attempt.status_code is None and attempt.error == "Could not connect to the endpoint."


def test_the_secret_never_reaches_a_log_or_the_delivery_log(team, api, endpoint, receiver, emit, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.answers = [500]
    emit()
    deliveries = api.as_user(team.alice).get(f"/api/v1/workspaces/acme/webhook-endpoints/{endpoint.id}/deliveries")
    assert deliveries.status_code == 200
    [shown] = deliveries.json()["results"]
    assert [a["status_code"] for a in shown["attempt_log"]] == [500]
    secret_part = receiver.secret.removeprefix("whsec_")
    assert secret_part not in caplog.text and secret_part not in json.dumps(deliveries.json())


def test_a_message_claimed_by_someone_else_is_not_sent(endpoint, receiver, team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        stream.event_record(workspace_id=team.a.id, type="connection.revoked", data={})
    stream.workspace_events_publish(workspace_id=team.a.id)
    row = WebhookDelivery.objects.get()
    assert delivery.delivery_attempt(delivery_id=row.id, lease_token=uuid.uuid4()) == delivery.Outcome.SKIPPED
    assert delivery.delivery_attempt(delivery_id=row.id, lease_token=row.lease_token) == delivery.Outcome.DELIVERED
    assert delivery.delivery_attempt(delivery_id=row.id, lease_token=row.lease_token) == delivery.Outcome.SKIPPED
    assert receiver.count() == 1
