"""Exact Online's calls to POST /webhooks/exact-online/<oauth client id>/: validation,
HashCode, storing each event once against the connection that holds its division."""

import json

import pytest
from django.test import Client

from audit.services import Actor
from connections.services import connection_disconnect
from integrations.models import WorkspaceEvent
from oauthclients.services import oauth_client_create
from tests.factories import make_api_key
from tests.fixtures.oauthclients import ACME_WEBHOOK
from tests.integrations.helpers import DIVISION, active_connection, events_url, exact_event_body, receiver_url
from tests.peers.exact_online import sign_webhook_content

pytestmark = pytest.mark.django_db


@pytest.fixture
def exact_post():
    client = Client()

    def post(oauth_client, body: bytes):
        return client.post(receiver_url(oauth_client), data=body, content_type="application/json")

    return post


@pytest.fixture
def jansen(team, acme_client):
    return active_connection(acme_client, owner=team.alice)


def stored() -> int:
    return WorkspaceEvent.objects.filter(type="exact_online.webhook").count()


def test_the_validation_call_is_answered_200_and_stores_nothing(acme_client, exact_post):
    response = Client().post(receiver_url(acme_client), data=b"", content_type="")
    assert response.status_code == 200
    assert exact_post(acme_client, b"").status_code == 200
    assert stored() == 0


def test_a_signed_event_is_stored_against_the_connection_holding_its_division(team, acme_client, jansen, exact_post):
    body, _ = exact_event_body(ACME_WEBHOOK, topic="SalesInvoices", key="5e4f0c1a-0000-4000-8000-000000000001")
    response = exact_post(acme_client, body)
    assert response.status_code == 200, response.content
    event = WorkspaceEvent.objects.get(type="exact_online.webhook")
    assert event.workspace == team.a and event.connection == jansen
    assert event.data["topic"] == "SalesInvoices"
    assert event.data["action"] == "Update"
    assert event.data["division"] == DIVISION
    assert event.data["key"] == "5e4f0c1a-0000-4000-8000-000000000001"
    assert event.data["endpoint"].endswith("(guid'5e4f0c1a-0000-4000-8000-000000000001')")
    assert event.data["connection"] == {"id": str(jansen.id), "name": jansen.name}


def test_an_event_delivered_twice_is_stored_once(acme_client, jansen, exact_post):
    body, _ = exact_event_body(ACME_WEBHOOK)
    assert exact_post(acme_client, body).status_code == 200
    second = exact_post(acme_client, body)
    assert second.status_code == 200  # Exact must stop retrying
    assert second.json() == {"status": "duplicate"}
    assert stored() == 1


def _with_hashcode(body: bytes, hashcode) -> bytes:
    data = body.decode()
    head = data[: data.index(',"HashCode":')]
    if hashcode is None:
        return (head + "}").encode()
    return (head + f',"HashCode":{json.dumps(hashcode)}}}').encode()


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body, content: _with_hashcode(body, "0" * 64), id="wrong"),
        pytest.param(
            lambda body, content: _with_hashcode(body, json.loads(body)["HashCode"].lower()), id="lower-case-hex"
        ),
        pytest.param(lambda body, content: _with_hashcode(body, None), id="missing"),
        pytest.param(lambda body, content: _with_hashcode(body, ""), id="empty"),
        pytest.param(lambda body, content: _with_hashcode(body, 12345), id="not-a-string"),
        pytest.param(
            lambda body, content: body.replace(b'"Action":"Update"', b'"Action":"Delete"'), id="content-changed"
        ),
        pytest.param(
            lambda body, content: body.replace(b'"Action":"Update"', b'"Action": "Update"'), id="content-reformatted"
        ),
        pytest.param(
            lambda body, content: exact_event_body("another-apps-webhook-secret")[0], id="signed-with-another-secret"
        ),
    ],
)
def test_a_bad_or_missing_signature_is_401_and_nothing_is_stored(acme_client, jansen, exact_post, forge):
    body, content = exact_event_body(ACME_WEBHOOK)
    response = exact_post(acme_client, forge(body, content))
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "bad_signature"
    assert stored() == 0


def test_the_hashcode_covers_the_content_text_exactly_as_sent(acme_client, jansen, exact_post):
    """Whitespace inside Content is part of what is signed: a body signed with it is accepted."""
    content = '{"Topic": "Accounts", "Division": 123456, "Action": "Delete", "Key": "k-1"}'
    body = f'{{ "Content" : {content} , "HashCode" : "{sign_webhook_content(content, ACME_WEBHOOK)}" }}'
    assert exact_post(acme_client, body.encode()).status_code == 200
    assert WorkspaceEvent.objects.get(type="exact_online.webhook").data["action"] == "Delete"


def test_a_client_without_a_webhook_secret_refuses_every_event(team, acme_client, jansen, exact_post):
    acme_client.webhook_secret = ""
    acme_client.save()
    body, _ = exact_event_body("")
    assert exact_post(acme_client, body).status_code == 401
    assert stored() == 0


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"Content":', b"\xff\xfe", b'{"a":1}{"b":2}'])
def test_a_body_that_is_not_an_event_changes_nothing(acme_client, jansen, exact_post, body):
    assert exact_post(acme_client, body).status_code in (400, 401)
    assert stored() == 0


def test_an_event_for_a_division_no_connection_holds_is_answered_but_not_stored(acme_client, jansen, exact_post):
    body, _ = exact_event_body(ACME_WEBHOOK, division=999999)
    response = exact_post(acme_client, body)
    assert response.status_code == 200 and response.json() == {"status": "no_connection"}
    assert stored() == 0


def test_a_disconnected_connection_gets_no_more_events(team, acme_client, jansen, exact_post):
    connection_disconnect(workspace=team.a, connection=jansen, actor=Actor(user=team.alice))
    body, _ = exact_event_body(ACME_WEBHOOK)
    assert exact_post(acme_client, body).json() == {"status": "no_connection"}
    assert stored() == 0


def test_unknown_clients_and_other_methods_are_refused(team, acme_client, globex_client, exact_post):
    body, _ = exact_event_body(ACME_WEBHOOK)
    unknown = "/webhooks/exact-online/00000000-0000-4000-8000-000000000000/"
    assert Client().post(unknown, data=b"", content_type="").status_code == 404
    assert exact_post(globex_client, body).status_code == 404  # a generic OAuth client has no Exact receiver
    assert Client().get(receiver_url(acme_client)).status_code == 405
    assert stored() == 0


def test_an_event_lands_only_in_the_workspace_of_the_client_it_was_sent_to(team, acme_client, jansen, exact_post, api):
    globex_exact = oauth_client_create(
        workspace=team.b,
        actor=Actor(user=team.charlie),
        provider="exact_online",
        site="nl",
        name="Globex Exact",
        client_id="globex-exact-id",
        client_secret="globex-exact-secret",
        webhook_secret="globex-webhook-secret",
        access_token_expires_in=599999,
    )
    active_connection(globex_exact, name="Globex books", owner=team.charlie)
    body, _ = exact_event_body(ACME_WEBHOOK)
    # Acme's event sent to Globex's receiver: Globex's secret does not verify it.
    assert exact_post(globex_exact, body).status_code == 401
    assert exact_post(acme_client, body).status_code == 200
    acme = api.as_key(make_api_key(team.a, scopes=["read"])).get(events_url("acme")).json()
    globex = api.as_key(make_api_key(team.b, scopes=["read"])).get(events_url("globex")).json()
    assert [e["type"] for e in acme["events"]] == ["exact_online.webhook"]
    assert globex["events"] == []


def test_the_receiver_needs_no_csrf_token_nor_a_session(acme_client, jansen):
    body, _ = exact_event_body(ACME_WEBHOOK)
    response = Client(enforce_csrf_checks=True).post(
        receiver_url(acme_client), data=body, content_type="application/json"
    )
    assert response.status_code == 200
    assert stored() == 1


def test_an_oversized_body_is_refused(acme_client, jansen, exact_post):
    assert exact_post(acme_client, b"{" + b" " * 70_000 + b"}").status_code == 413
