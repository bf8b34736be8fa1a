"""The integrations API, endpoint by endpoint: who may do what, and never in another workspace.

Alice administers Acme, Bob is a member of Acme, Charlie administers Globex.
"""

import pytest

from audit.models import AuditEvent
from audit.services import Actor
from connections.services import connection_create
from integrations import services, stream
from integrations.models import WebhookDelivery, WebhookEndpoint
from tests.factories import make_api_key
from tests.helpers import assert_error
from tests.integrations.helpers import active_connection

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/v1/workspaces/{ws}/webhook-endpoints/"


@pytest.fixture
def acme_endpoint(team):
    endpoint, _ = services.webhook_endpoint_create(
        workspace=team.a, actor=Actor(user=team.alice), url="https://hooks.acme.example/tk"
    )
    return endpoint


@pytest.fixture
def globex_endpoint(team):
    endpoint, _ = services.webhook_endpoint_create(
        workspace=team.b, actor=Actor(user=team.charlie), url="https://hooks.globex.example/tk"
    )
    return endpoint


@pytest.fixture
def acme_delivery(team, acme_endpoint):
    stream.event_record(workspace_id=team.a.id, type="connection.revoked", data={})
    stream.workspace_events_publish(workspace_id=team.a.id)
    return WebhookDelivery.objects.get(endpoint=acme_endpoint)


def requests_on(endpoint, delivery=None):
    base = ENDPOINTS.format(ws="acme")
    one = f"{base}{endpoint.id}/"
    return [
        ("get", base, None),
        ("post", base, {"url": "https://x.example/h"}),
        ("get", one, None),
        ("patch", one, {"description": "x"}),
        ("delete", one, None),
        ("post", f"{one}rotate-secret", None),
        ("get", f"{one}deliveries", None),
        *([("post", f"{one}deliveries/{delivery.id}/resend", None)] if delivery else []),
    ]


def test_another_workspace_gets_404_on_every_endpoint_url(team, api, acme_endpoint, acme_delivery):
    charlie = api.as_user(team.charlie)
    for method, url, body in requests_on(acme_endpoint, acme_delivery):
        assert_error(getattr(charlie, method)(url, body, format="json"), 404)
    globex_key = api.as_key(make_api_key(team.b))
    for method, url, body in requests_on(acme_endpoint, acme_delivery):
        assert_error(getattr(globex_key, method)(url, body, format="json"), 404)
    assert WebhookEndpoint.objects.get(pk=acme_endpoint.pk).description == ""


def test_an_endpoint_of_another_workspace_is_not_found_here(team, api, acme_endpoint, globex_endpoint):
    alice = api.as_user(team.alice)
    for method, url, body in requests_on(globex_endpoint)[2:]:
        assert_error(getattr(alice, method)(url, body, format="json"), 404)
    assert WebhookEndpoint.objects.filter(pk=globex_endpoint.pk).exists()
    listed = alice.get(ENDPOINTS.format(ws="acme")).json()["results"]
    assert [e["id"] for e in listed] == [str(acme_endpoint.id)]


def test_members_cannot_see_or_change_endpoints(team, api, acme_endpoint, acme_delivery):
    bob = api.as_user(team.bob)
    for method, url, body in requests_on(acme_endpoint, acme_delivery):
        assert_error(getattr(bob, method)(url, body, format="json"), 403)


def test_keys_read_with_read_and_change_with_write(team, api, acme_endpoint):
    reader = api.as_key(make_api_key(team.a, scopes=["read"]))
    assert reader.get(ENDPOINTS.format(ws="acme")).status_code == 200
    assert_error(reader.post(ENDPOINTS.format(ws="acme"), {"url": "https://x.example/h"}, format="json"), 403, "write")
    writer = api.as_key(make_api_key(team.a, scopes=["write"]))
    assert writer.post(ENDPOINTS.format(ws="acme"), {"url": "https://x.example/h"}, format="json").status_code == 201
    assert AuditEvent.objects.filter(action="webhook_endpoint.created", actor_api_key__isnull=False).exists()


def test_the_secret_is_shown_at_creation_and_rotation_only(team, api):
    alice = api.as_user(team.alice)
    created = alice.post(
        ENDPOINTS.format(ws="acme"),
        {"url": "https://hooks.acme.example/a", "event_types": ["connection.needs_reauth"]},
        format="json",
    )
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["event_types"] == ["connection.needs_reauth"] and body["enabled"] is True
    one = f"{ENDPOINTS.format(ws='acme')}{body['id']}/"
    for response in (alice.get(ENDPOINTS.format(ws="acme")), alice.get(one), alice.patch(one, {"description": "d"})):
        assert response.status_code == 200
        assert "secret" not in response.content.decode().replace("secret_rotated", "")
        assert secret not in response.content.decode()
    rotated = alice.post(f"{one}rotate-secret")
    assert rotated["Cache-Control"] == "no-store"
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != secret
    assert WebhookEndpoint.objects.get(pk=body["id"]).secret == new
    assert AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated").exists()
    assert secret not in str(list(AuditEvent.objects.values_list("data", flat=True)))


def test_every_change_is_audited(team, api):
    alice = api.as_user(team.alice)
    body = alice.post(ENDPOINTS.format(ws="acme"), {"url": "https://hooks.acme.example/a"}, format="json").json()
    one = f"{ENDPOINTS.format(ws='acme')}{body['id']}/"
    alice.patch(one, {"url": "https://hooks.acme.example/b", "enabled": False}, format="json")
    alice.delete(one)
    actions = list(
        AuditEvent.objects.filter(workspace=team.a, action__startswith="webhook_endpoint.")
        .order_by("created_at")
        .values_list("action", "data")
    )
    assert [a for a, _ in actions] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
    ]
    assert actions[1][1]["url"] == {"from": "https://hooks.acme.example/a", "to": "https://hooks.acme.example/b"}
    assert actions[1][1]["enabled"] == {"from": True, "to": False}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"url": "http://hooks.example.com/a"}, "url", "https://"),
        ({"url": "https://intranet.example.com/a"}, "url", "127.0.0.1"),
        ({"url": "https://10.0.0.8/a"}, "url", "private"),
        ({"url": "https://169.254.169.254/latest"}, "url", "private"),
        ({"url": "https://user:pw@hooks.example.com/a"}, "url", "user name"),
        ({"url": ""}, "url", None),
        ({"url": "https://login.example.com/a", "event_types": []}, "event_types", None),
        ({"url": "https://login.example.com/a", "event_types": ["connection.refreshed"]}, "event_types", None),
        ({"url": "https://login.example.com/a", "description": "two\nlines"}, "description", "one line"),
    ],
)
def test_bad_endpoints_are_refused_and_nothing_is_stored(team, api, strict_urls, body, field, message):
    response = api.as_user(team.alice).post(ENDPOINTS.format(ws="acme"), body, format="json")
    assert_error(response, 400, message, field=field)
    assert not WebhookEndpoint.objects.exists()


def test_a_public_https_url_is_accepted_under_production_rules(team, api, strict_urls):
    response = api.as_user(team.alice).post(ENDPOINTS.format(ws="acme"), {"url": "https://login.example.com/a"})
    assert response.status_code == 201, response.content


# --- Exact Online topics of a connection ---------------------------------------------------------

TOPICS = "/api/v1/workspaces/{ws}/connections/{id}/exact-webhooks"


@pytest.fixture
def books(team, acme_client):
    return active_connection(acme_client, name="Books", owner=team.alice)


def test_exact_topics_of_another_workspace_are_not_found(team, api, books):
    url = TOPICS.format(ws="acme", id=books.id)
    for client in (api.as_user(team.charlie), api.as_key(make_api_key(team.b))):
        assert_error(client.get(url), 404)
        assert_error(client.put(url, {"topics": ["Accounts"]}, format="json"), 404)
        assert_error(client.post(f"{url}/retry"), 404)
    assert_error(api.as_user(team.charlie).get(TOPICS.format(ws="globex", id=books.id)), 404)
    assert not books.exact_subscriptions.exists()


def test_exact_topics_are_chosen_by_admins_and_write_keys(team, api, books, acme_client):
    url = TOPICS.format(ws="acme", id=books.id)
    assert_error(api.as_user(team.bob).get(url), 404)  # not Bob's connection
    own = connection_create(
        workspace=team.a, oauth_client=acme_client, name="Bob's", owner=team.bob, actor=Actor(user=team.bob)
    )
    assert api.as_user(team.bob).get(TOPICS.format(ws="acme", id=own.id)).status_code == 200
    assert_error(api.as_user(team.bob).put(TOPICS.format(ws="acme", id=own.id), {"topics": []}, format="json"), 403)
    assert_error(api.as_key(make_api_key(team.a, scopes=["read"])).put(url, {"topics": []}, format="json"), 403)
    writer = api.as_key(make_api_key(team.a, scopes=["read", "write"]))
    body = writer.put(url, {"topics": ["Accounts", "accounts", " SalesInvoices "]}, format="json").json()
    assert [(s["topic"], s["state"]) for s in body["subscriptions"]] == [
        ("Accounts", "pending"),
        ("SalesInvoices", "pending"),
    ]
    assert body["callback_url"] == f"http://127.0.0.1:8000/webhooks/exact-online/{acme_client.id}/"
    assert body["callback_is_https"] is False and body["webhook_secret_set"] is True
    assert "acme-webhook-secret" not in str(body)
    audit = AuditEvent.objects.get(action="connection.exact_webhooks_changed")
    assert audit.data == {"added": ["Accounts", "SalesInvoices"], "removed": []}


@pytest.mark.parametrize(
    ("topics", "message"),
    [(["Sales Invoices"], "not an Exact Online topic"), (["x" * 61], None), ([f"T{i}" for i in range(31)], "30")],
)
def test_bad_topics_are_refused(team, api, books, topics, message):
    response = api.as_user(team.alice).put(TOPICS.format(ws="acme", id=books.id), {"topics": topics}, format="json")
    assert_error(response, 400, message, field="topics")
    assert not books.exact_subscriptions.exists()


def test_topics_need_the_clients_webhook_secret(team, api, books, acme_client):
    acme_client.webhook_secret = ""
    acme_client.save()
    response = api.as_user(team.alice).put(TOPICS.format(ws="acme", id=books.id), {"topics": ["Items"]}, format="json")
    assert_error(response, 400, "Webhook Secret", code="no_webhook_secret")


def test_only_exact_online_connections_have_exact_topics(team, api, dot_client):
    other = connection_create(
        workspace=team.a, oauth_client=dot_client, name="CRM", owner=team.alice, actor=Actor(user=team.alice)
    )
    response = api.as_user(team.alice).put(TOPICS.format(ws="acme", id=other.id), {"topics": ["Items"]}, format="json")
    assert_error(response, 400, code="not_exact_online")
