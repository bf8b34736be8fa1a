"""The browser pages: the Admin console's Webhooks and a connection's Exact Online webhooks."""

import pytest

from audit.models import AuditEvent
from audit.services import Actor
from integrations import services, stream
from integrations.models import ExactSubscription, WebhookDelivery, WebhookEndpoint
from tests.integrations.helpers import active_connection

pytestmark = pytest.mark.django_db

LIST = "/w/acme/admin/webhooks/"


@pytest.fixture
def endpoint(team):
    endpoint, secret = services.webhook_endpoint_create(
        workspace=team.a, actor=Actor(user=team.alice), url="https://hooks.acme.example/tk"
    )
    endpoint.raw_secret = secret
    return endpoint


def detail(endpoint, suffix: str = "") -> str:
    return f"/w/{endpoint.workspace.slug}/admin/webhooks/{endpoint.id}/{suffix}"


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(team, people):
    page = people.alice.get(LIST)
    assert page.status_code == 200 and b"Add an endpoint" in page.content
    response = people.alice.post(
        LIST, {"url": "https://hooks.acme.example/new", "description": "ERP", "event_types": ["connection.revoked"]}
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()
    assert endpoint.event_types == ["connection.revoked"]
    for page in (people.alice.get(LIST), people.alice.get(detail(endpoint))):
        assert page.status_code == 200
        assert endpoint.secret not in page.content.decode()
        assert "https://hooks.acme.example/new" in page.content.decode()


def test_a_refused_url_is_shown_on_the_form(team, people, strict_urls):
    response = people.alice.post(LIST, {"url": "https://intranet.example.com/x", "event_types": ["connection.revoked"]})
    assert response.status_code == 200 and b"127.0.0.1" in response.content
    assert not WebhookEndpoint.objects.exists()


def test_a_new_secret_is_shown_once(team, people, endpoint):
    response = people.alice.post(detail(endpoint, "rotate-secret/"))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    endpoint.refresh_from_db()
    assert endpoint.secret != endpoint.raw_secret and endpoint.secret in response.content.decode()
    assert endpoint.secret not in people.alice.get(detail(endpoint)).content.decode()


def test_an_admin_edits_disables_and_deletes_an_endpoint(team, people, endpoint):
    response = people.alice.post(
        detail(endpoint), {"url": "https://hooks.acme.example/v2", "event_types": ["exact_online.webhook"]}
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types, endpoint.enabled) == (
        "https://hooks.acme.example/v2",
        ["exact_online.webhook"],
        False,  # the checkbox was left empty
    )
    assert b"Disabled" in people.alice.get(detail(endpoint)).content
    assert people.alice.post(detail(endpoint, "delete/")).status_code == 302
    assert not WebhookEndpoint.objects.exists()
    assert list(
        AuditEvent.objects.filter(action__startswith="webhook_endpoint.")
        .order_by("created_at")
        .values_list("action", flat=True)
    ) == ["webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.deleted"]


def test_the_delivery_log_shows_every_attempt_and_offers_a_resend(team, people, endpoint):
    stream.event_record(workspace_id=team.a.id, type="connection.revoked", data={})
    stream.workspace_events_publish(workspace_id=team.a.id)
    delivery = WebhookDelivery.objects.get()
    page = people.alice.get(detail(endpoint))
    assert b"connection.revoked" in page.content and b"Re-send" in page.content
    WebhookDelivery.objects.filter(pk=delivery.pk).update(lease_token=None, lease_expires_at=None, status="failed")
    response = people.alice.post(detail(endpoint, f"deliveries/{delivery.id}/resend/"), follow=True)
    assert b"queued to be sent again" in response.content
    assert WebhookDelivery.objects.get().status == "pending"


def test_members_cannot_open_the_webhook_pages(team, people, endpoint):
    for url in (LIST, detail(endpoint)):
        assert people.bob.get(url).status_code == 403
    for url in (LIST, detail(endpoint), detail(endpoint, "rotate-secret/"), detail(endpoint, "delete/")):
        assert (
            people.bob.post(url, {"url": "https://x.example/", "event_types": ["connection.revoked"]}).status_code
            == 403
        )
    assert WebhookEndpoint.objects.get().url == "https://hooks.acme.example/tk"


def test_another_workspace_cannot_reach_the_webhook_pages(team, people, endpoint):
    for url in (LIST, detail(endpoint)):
        assert people.charlie.get(url).status_code == 404
    # Acme's endpoint under Globex, where Charlie is an admin: not found.
    globex_url = f"/w/globex/admin/webhooks/{endpoint.id}/"
    assert people.charlie.get(globex_url).status_code == 404
    for suffix in ("", "rotate-secret/", "delete/"):
        people.charlie.post(globex_url + suffix, {"url": "https://x.example/", "event_types": ["connection.revoked"]})
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.acme.example/tk" and endpoint.secret == endpoint.raw_secret


def test_the_console_links_to_the_webhooks(team, people):
    assert b"/w/acme/admin/webhooks/" in people.alice.get("/w/acme/admin/").content


# --- A connection's Exact Online webhooks --------------------------------------------------------


@pytest.fixture
def books(team, acme_client):
    return active_connection(acme_client, name="Books", owner=team.alice)


def exact_page(connection, suffix: str = "") -> str:
    return f"/w/acme/connections/{connection.id}/webhooks/{suffix}"


def test_an_admin_chooses_topics_and_sees_the_callback_url(team, people, books, acme_client, settings):
    page = people.alice.get(exact_page(books))
    assert page.status_code == 200
    html = page.content.decode()
    assert f"http://127.0.0.1:8000/webhooks/exact-online/{acme_client.id}/" in html
    assert 'id="callback-not-https"' in html  # Exact needs https
    response = people.alice.post(
        exact_page(books), {"topics": ["Accounts", "SalesInvoices"], "other_topics": "Budgets"}
    )
    assert response.status_code == 302
    assert sorted(ExactSubscription.objects.values_list("topic", "state")) == [
        ("Accounts", "pending"),
        ("Budgets", "pending"),
        ("SalesInvoices", "pending"),
    ]
    settings.PUBLIC_BASE_URL = "https://tokenkeeper.example.com"
    html = people.alice.get(exact_page(books)).content.decode()
    assert 'id="callback-not-https"' not in html and "Budgets" in html
    assert "acme-webhook-secret" not in html


def test_the_connection_page_links_admins_to_the_exact_webhooks(team, people, books):
    assert exact_page(books).encode() in people.alice.get(f"/w/acme/connections/{books.id}/").content


def test_members_and_other_workspaces_cannot_choose_topics(team, people, books, acme_client):
    own = active_connection(acme_client, name="Bob's", owner=team.bob)
    assert people.bob.get(exact_page(own)).status_code == 403
    assert people.bob.post(exact_page(own), {"topics": ["Accounts"]}).status_code == 403
    assert people.charlie.get(exact_page(books)).status_code == 404
    assert people.charlie.post(exact_page(books), {"topics": ["Accounts"]}).status_code == 404
    assert people.charlie.get(f"/w/globex/connections/{books.id}/webhooks/").status_code == 404
    assert not ExactSubscription.objects.exists()
