"""Exact Online webhook subscriptions against the emulator, end to end: Tokenkeeper
(live server) creates them when a connection is connected, Exact validates the
callback and sends signed events, they are removed on disconnect and made
again after a reconnect. Tasks run inline (``inline_tasks``)."""

import pytest
import requests

from connections.models import Connection
from integrations.models import ExactSubscription, SubscriptionState, WorkspaceEvent
from tests.connections.helpers import exact_consent, finish_flow, start_flow
from tests.factories import make_api_key
from tests.fixtures.connections import make_exact_client
from tests.fixtures.peers import EXACT_CLIENT_ID
from tests.integrations.helpers import DIVISION, events_url

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def public_url(live_server, settings):
    """Tokenkeeper is reachable at the live server (Exact calls the callback there); set before ``exact``."""
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def hooked_client(team, exact):
    return make_exact_client(team.a, team.alice, exact, webhook_secret=exact.webhook_secret(EXACT_CLIENT_ID))


@pytest.fixture
def jansen(team, hooked_client, people, api):
    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/connections/", {"name": "Jansen", "oauth_client": str(hooked_client.id)}, format="json"
    )
    return Connection.objects.get(pk=response.json()["id"])


def topics_url(connection) -> str:
    return f"/api/v1/workspaces/acme/connections/{connection.id}/exact-webhooks"


def connect(people, connection):
    finish_flow(people.alice, exact_consent(start_flow(people.alice, connection)))


def live_subscriptions(exact) -> dict[str, str]:
    return {s.topic: s.id for s in exact.webhook_subscriptions}


def states(connection) -> dict[str, str]:
    return dict(ExactSubscription.objects.filter(connection=connection).values_list("topic", "state"))


def test_subscriptions_follow_the_connection_connect_disconnect_reconnect(
    team, exact, jansen, people, api, inline_tasks, public_url
):
    alice = api.as_user(team.alice)
    response = alice.put(topics_url(jansen), {"topics": ["Accounts", "SalesInvoices"]}, format="json")
    assert response.status_code == 200, response.content
    assert states(jansen) == {"Accounts": "inactive", "SalesInvoices": "inactive"}  # not connected yet
    assert exact.webhook_calls == []

    connect(people, jansen)
    assert states(jansen) == {"Accounts": "active", "SalesInvoices": "active"}
    callback = f"{public_url}/webhooks/exact-online/{jansen.oauth_client_id}/"
    posts = [c for c in exact.webhook_calls if c.method == "POST"]
    assert sorted((c.topic, c.division, c.callback_url, c.status) for c in posts) == [
        ("Accounts", str(DIVISION), callback, 201),
        ("SalesInvoices", str(DIVISION), callback, 201),
    ]
    assert exact.wait_for_webhook_validations(10)
    assert all(s.validated and s.validation_status == 200 for s in exact.webhook_subscriptions)
    first_ids = live_subscriptions(exact)
    assert set(first_ids) == {"Accounts", "SalesInvoices"}

    # Exact sends an event: stored in the stream against the connection.
    [(url, status)] = exact.emit_webhook(
        EXACT_CLIENT_ID, "SalesInvoices", DIVISION, key="0a1b2c3d-0000-4000-8000-00000000beef"
    )
    assert (url, status) == (callback, 200)
    [delivery] = [d for d in exact.webhook_deliveries if d.kind == "event"]
    assert requests.post(callback, data=delivery.body, timeout=10).json() == {"status": "duplicate"}  # Exact retried

    alice.post(f"/api/v1/workspaces/acme/connections/{jansen.id}/disconnect")
    assert exact.webhook_subscriptions == []
    deletes = [c for c in exact.webhook_calls if c.method == "DELETE"]
    assert sorted((c.id, c.status) for c in deletes) == sorted((i, 204) for i in first_ids.values())
    assert states(jansen) == {"Accounts": "inactive", "SalesInvoices": "inactive"}
    assert not ExactSubscription.objects.exclude(removal_token="").exists()  # the kept token is gone
    assert exact.emit_webhook(EXACT_CLIENT_ID, "SalesInvoices", DIVISION) == []  # nobody subscribed

    connect(people, jansen)
    assert states(jansen) == {"Accounts": "active", "SalesInvoices": "active"}
    assert exact.wait_for_webhook_validations(10)
    again = live_subscriptions(exact)
    assert set(again) == {"Accounts", "SalesInvoices"} and set(again.values()).isdisjoint(first_ids.values())

    stream = api.as_key(make_api_key(team.a, scopes=["read"])).get(events_url()).json()["events"]
    assert [e["type"] for e in stream] == [
        "connection.authorized",
        "exact_online.webhook",
        "connection.revoked",
        "connection.reconnected",
    ]
    assert [e["cursor"] for e in stream] == sorted(e["cursor"] for e in stream)
    webhook = stream[1]["data"]
    assert (webhook["topic"], webhook["division"], webhook["key"]) == (
        "SalesInvoices",
        DIVISION,
        "0a1b2c3d-0000-4000-8000-00000000beef",
    )
    assert webhook["connection"]["id"] == str(jansen.id)


def test_dropping_a_topic_removes_its_subscription_and_deleting_the_connection_removes_the_rest(
    team, exact, jansen, people, api, inline_tasks
):
    alice = api.as_user(team.alice)
    alice.put(topics_url(jansen), {"topics": ["Accounts", "Items"]}, format="json")
    connect(people, jansen)
    assert set(live_subscriptions(exact)) == {"Accounts", "Items"}

    body = alice.put(topics_url(jansen), {"topics": ["Items"]}, format="json").json()
    assert [s["topic"] for s in body["subscriptions"]] == ["Items"]
    assert set(live_subscriptions(exact)) == {"Items"}

    alice.delete(f"/api/v1/workspaces/acme/connections/{jansen.id}/")
    assert exact.webhook_subscriptions == []
    assert not ExactSubscription.objects.exists()


def test_an_exact_failure_is_retried_and_then_shown(team, exact, jansen, people, api, inline_tasks):
    connect(people, jansen)
    exact.set_api_failure_rate(1.0, 503)
    response = api.as_user(team.alice).put(topics_url(jansen), {"topics": ["Accounts"]}, format="json")
    assert response.status_code == 200
    [row] = ExactSubscription.objects.filter(connection=jansen)
    assert row.state == SubscriptionState.FAILED
    assert "HTTP 503" in row.last_error and "gave up" in row.last_error
    assert len([c for c in exact.api_requests if c.method == "POST"]) == 5  # the first try and 4 retries

    exact.set_api_failure_rate(0.0)
    body = api.as_user(team.alice).post(topics_url(jansen) + "/retry").json()
    assert [(s["topic"], s["state"], s["last_error"]) for s in body["subscriptions"]] == [("Accounts", "active", "")]
    assert set(live_subscriptions(exact)) == {"Accounts"}


def test_a_topic_exact_already_has_is_adopted(
    team, exact, jansen, people, api, inline_tasks, hooked_client, public_url
):
    """Exact keeps one subscription per app, division and topic: a second connection of the same
    division shares it, and disconnecting one of them leaves it for the other."""
    connect(people, jansen)
    alice = api.as_user(team.alice)
    alice.put(topics_url(jansen), {"topics": ["Accounts"]}, format="json")
    other = Connection.objects.get(
        pk=alice.post(
            "/api/v1/workspaces/acme/connections/", {"name": "Jansen 2", "oauth_client": str(hooked_client.id)}
        ).json()["id"]
    )
    Connection.objects.filter(pk=other.pk).update(
        status="active",
        account_details={"Division": DIVISION},
        access_token=Connection.objects.get(pk=jansen.pk).access_token,
        access_token_expires_at=Connection.objects.get(pk=jansen.pk).access_token_expires_at,
    )
    alice.put(topics_url(other), {"topics": ["Accounts"]}, format="json")
    [shared] = exact.webhook_subscriptions
    ids = set(ExactSubscription.objects.values_list("exact_id", flat=True))
    assert ids == {shared.id}
    assert WorkspaceEvent.objects.filter(type="exact_online.webhook").count() == 0

    alice.post(f"/api/v1/workspaces/acme/connections/{jansen.id}/disconnect")
    assert [s.id for s in exact.webhook_subscriptions] == [shared.id]  # still used by "Jansen 2"
