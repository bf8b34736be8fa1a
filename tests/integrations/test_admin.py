"""The Django admin shows integrations' rows to staff, read-only, never a secret."""

import pytest
from django.test import Client

from audit.services import Actor
from integrations import services, stream
from integrations.models import ExactSubscription, WebhookDelivery, WorkspaceEvent
from tests.factories import UserFactory
from tests.integrations.helpers import active_connection

pytestmark = pytest.mark.django_db

REMOVAL_TOKEN = "kept-access-token-for-removal-Ty6"


@pytest.fixture
def staff():
    client = Client()
    client.force_login(UserFactory(email="support@example.com", is_staff=True, is_superuser=True))
    return client


def test_staff_see_endpoints_deliveries_events_and_subscriptions_without_secrets(team, staff, acme_client):
    endpoint, secret = services.webhook_endpoint_create(
        workspace=team.a, actor=Actor(user=team.alice), url="https://hooks.acme.example/tk"
    )
    stream.event_record(workspace_id=team.a.id, type="connection.revoked", data={"detail": "x"})
    stream.workspace_events_publish(workspace_id=team.a.id)
    books = active_connection(acme_client, name="Books", owner=team.alice)
    subscription = ExactSubscription.objects.create(
        workspace=team.a, connection=books, topic="Accounts", state="removing", removal_token=REMOVAL_TOKEN
    )
    pages = {
        "webhookendpoint": endpoint.pk,
        "webhookdelivery": WebhookDelivery.objects.get().pk,
        "workspaceevent": WorkspaceEvent.objects.get().pk,
        "exactsubscription": subscription.pk,
    }
    for model, pk in pages.items():
        for url in (f"/django-admin/integrations/{model}/", f"/django-admin/integrations/{model}/{pk}/change/"):
            response = staff.get(url)
            assert response.status_code == 200, url
            html = response.content.decode()
            assert secret not in html and secret.removeprefix("whsec_") not in html, url
            assert REMOVAL_TOKEN not in html, url
            assert "acme-webhook-secret" not in html, url


def test_staff_cannot_change_them(team, staff):
    endpoint, _ = services.webhook_endpoint_create(
        workspace=team.a, actor=Actor(user=team.alice), url="https://hooks.acme.example/tk"
    )
    url = f"/django-admin/integrations/webhookendpoint/{endpoint.pk}/change/"
    staff.post(url, {"url": "https://evil.example/"})
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.acme.example/tk"
    assert staff.get("/django-admin/integrations/webhookendpoint/add/").status_code == 403
