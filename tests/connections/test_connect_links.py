"""API-started flows: ``POST …/authorize`` gives a single-use ``connect_url`` that anyone opens in a browser."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from connections.models import Connection, ConnectLink, Status
from connections.services import connection_create
from tests.connections.helpers import (
    api_url,
    detail_url,
    dot_consent,
    exact_consent,
    finish_flow,
    path_and_query,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(team, key_factory):
    return key_factory(team.a, scopes=("read", "write"), name="Onboarding service")


def connect_url(api, key, connection) -> str:
    response = api.as_key(key).post(api_url(connection, "authorize"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"connect_url", "expires_at"}
    return body["connect_url"]


def open_link(browser, url: str) -> str:
    """The end user opens the link: Tokenkeeper sends the browser on to the provider."""
    response = browser.get(path_and_query(url))
    assert response.status_code == 302, response.content
    return response["Location"]


@pytest.mark.parametrize("provider", ["exact", "dot"])
def test_api_started_flow_needs_no_tokenkeeper_login(request, api, key, team, settings, provider):
    peer = request.getfixturevalue(provider)
    client = request.getfixturevalue(f"{provider}_client")
    connection = connection_create(workspace=team.a, oauth_client=client, name="Customer 42", owner=None, actor=Actor())
    before = timezone.now()

    url = connect_url(api, key, connection)

    assert url.startswith(f"{settings.PUBLIC_BASE_URL}/oauth2/connect/")
    link = ConnectLink.objects.get()
    assert before + timedelta(minutes=14) < link.expires_at <= timezone.now() + timedelta(minutes=15)
    assert url.rsplit("/", 1)[1] != link.token_hash  # only a hash is stored
    assert AuditEvent.objects.filter(action="connection.connect_link_created", target_id=str(connection.id)).exists()

    end_user = Client()  # a browser that never logged in to Tokenkeeper
    authorize = open_link(end_user, url)
    callback = exact_consent(authorize) if provider == "exact" else dot_consent(peer, authorize)
    response = finish_flow(end_user, callback)

    assert response.redirect_chain == [("/oauth2/result", 302)]
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Connection ready</h1>" in page
    assert "“Customer 42” is connected as" in page and "ready to use" in page
    body = api.as_key(key).get(api_url(connection)).json()
    assert body["status"] == "active" and body["last_error"] == "" and body["connected_at"]
    assert Connection.objects.get().has_tokens

    reloaded = end_user.get("/oauth2/result")  # reloading the result page replays nothing
    assert "<h1>Connection ready</h1>" in reloaded.content.decode()
    assert api.as_key(key).get(api_url(connection)).json()["last_error"] == ""


def test_connect_url_works_once(api, key, exact, exact_connection):
    url = connect_url(api, key, exact_connection)
    open_link(Client(), url)

    response = Client().get(path_and_query(url))

    assert response.status_code == 400
    assert "This connect link was already used. Ask for a new one." in response.content.decode()


def test_connect_url_expires(api, key, exact, exact_connection):
    url = connect_url(api, key, exact_connection)
    ConnectLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = Client().get(path_and_query(url))

    assert response.status_code == 400
    assert "This connect link has expired. Ask for a new one." in response.content.decode()
    assert ConnectLink.objects.get().used_at is None


def test_unknown_connect_url(exact_connection):
    response = Client().get("/oauth2/connect/not-a-real-link")
    assert response.status_code == 400
    assert "This connect link is not valid. Ask for a new one." in response.content.decode()


def test_api_started_flow_that_fails_says_what_went_wrong(api, key, exact, exact_connection):
    end_user = Client()
    authorize = open_link(end_user, connect_url(api, key, exact_connection))

    response = finish_flow(end_user, exact_consent(authorize, decision="deny"))

    assert response.status_code == 400
    page = response.content.decode()
    assert "Connection not completed" in page and "Access was denied at the provider" in page
    body = api.as_key(key).get(api_url(exact_connection)).json()
    assert body["status"] == "pending" and "Access was denied at the provider" in body["last_error"]
    assert not Connection.objects.get().has_tokens

    # A new link, and the end user gets it right this time.
    end_user = Client()
    finish_flow(end_user, exact_consent(open_link(end_user, connect_url(api, key, exact_connection))))
    assert api.as_key(key).get(api_url(exact_connection)).json()["status"] == "active"


def test_connect_url_opened_by_someone_signed_in(api, key, exact, exact_connection, people):
    """Alice may see the connection: she lands on its page. Charlie (another workspace) only gets the result page."""
    authorize = open_link(people.alice, connect_url(api, key, exact_connection))
    response = finish_flow(people.alice, exact_consent(authorize))
    assert response.redirect_chain == [(detail_url(exact_connection), 302)]

    authorize = open_link(people.charlie, connect_url(api, key, exact_connection))
    response = finish_flow(people.charlie, exact_consent(authorize))
    assert response.redirect_chain == [("/oauth2/result", 302)] and response.status_code == 200
    page = response.content.decode()
    assert "Connection ready" in page and "Jansen" in page
    assert exact_connection.oauth_client.name not in page and str(exact_connection.id) not in page
    assert Connection.objects.get().status == Status.ACTIVE
