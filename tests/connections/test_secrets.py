"""Tokens are encrypted at rest and never appear in an API response, a page, a log line or the Django admin."""

import logging

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.services import Actor
from common.crypto import decrypt
from connections.models import Connection
from connections.services import connection_create
from tests.connections.helpers import (
    api_url,
    detail_url,
    dot_consent,
    exact_consent,
    finish_flow,
    path_and_query,
    raw_rows,
    raw_tokens,
    start_flow,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def connect_everything(request, people, team, provider, api, key):
    """Connect one account per way (page and API-started link); return the tokens and every response seen."""
    peer = request.getfixturevalue(provider)
    client = request.getfixturevalue(f"{provider}_client")
    consent = (lambda url: exact_consent(url)) if provider == "exact" else (lambda url: dot_consent(peer, url))
    responses = []

    mine = connection_create(
        workspace=team.a, oauth_client=client, name="Mine", owner=team.alice, actor=Actor(user=team.alice)
    )
    responses.append(finish_flow(people.alice, consent(start_flow(people.alice, mine))))

    theirs = connection_create(workspace=team.a, oauth_client=client, name="Theirs", owner=None, actor=Actor())
    link = api.as_key(key).post(api_url(theirs, "authorize"))
    end_user = Client()
    authorize = end_user.get(path_and_query(link.json()["connect_url"]))["Location"]
    # Another person at the provider: Exact keeps one authorization per app and account.
    second = exact_consent(authorize, username="piet@example.nl") if provider == "exact" else consent(authorize)
    responses += [link, finish_flow(end_user, second)]

    tokens = []
    for connection in Connection.objects.all():
        assert connection.access_token and connection.refresh_token, connection.last_error
        tokens += [str(connection.access_token), str(connection.refresh_token)]
    return mine, theirs, tokens, responses


@pytest.mark.parametrize("provider", ["exact", "dot"])
def test_tokens_are_encrypted_at_rest_and_never_shown(request, people, team, api, key_factory, caplog, provider):
    key = key_factory(team.a, scopes=("read", "write"))
    caplog.set_level(logging.DEBUG)
    with CaptureQueriesContext(db_connection) as queries:  # also log SQL, with its parameters
        mine, theirs, tokens, responses = connect_everything(request, people, team, provider, api, key)

        for connection in (mine, theirs):
            responses += [
                people.alice.get(detail_url(connection)),
                api.as_key(key).get(api_url(connection)),
                api.as_key(key).get(api_url(connection, "events")),
                api.as_user(team.alice).get(api_url(connection)),
                api.as_user(team.alice).patch(api_url(connection), {"name": connection.name}, format="json"),
            ]
        responses += [
            people.alice.get(f"/w/{team.a.slug}/connections/"),
            api.as_key(key).get(api_url()),
            api.as_key(key).get(api_url(), {"status": "active"}),
            api.as_key(key).post(api_url(mine, "disconnect")),
        ]

    assert len(tokens) == 4 and all(len(t) >= 20 for t in tokens)
    assert all(r.status_code in (200, 201) for r in responses), [r.status_code for r in responses]
    for response in responses:
        content = response.content.decode()
        for token in tokens:
            assert token not in content
        assert 'access_token"' not in content and 'refresh_token"' not in content

    # Logs: every line, from every logger, during the flows, API calls and pages.
    assert caplog.records
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    sql = "".join(q["sql"] for q in queries.captured_queries)
    assert "connections_connection" in sql
    for token in tokens:
        assert token not in logged
        assert token not in sql

    # At rest: raw SQL shows ciphertext that decrypts to the tokens.
    rows = raw_rows()
    for token in tokens:
        assert token not in rows
    access, refresh = raw_tokens("Theirs")
    assert access.startswith("gAAAAA") and refresh.startswith("gAAAAA")
    assert {decrypt(access), decrypt(refresh)} <= set(tokens)
    assert raw_tokens("Mine") == ("", "")  # disconnected above


# --- Django admin -------------------------------------------------------------------------


@pytest.fixture
def staff(db):
    client = Client()
    client.force_login(UserFactory(email="support@example.com", is_staff=True, is_superuser=True))
    return client


def test_staff_find_connections_and_never_see_tokens(people, exact, exact_connection, staff, team):
    finish_flow(people.alice, exact_consent(start_flow(people.alice, exact_connection)))
    connection = Connection.objects.get()
    stored = raw_tokens(connection.name)
    secrets = [str(connection.access_token), str(connection.refresh_token), *stored]
    Connection.objects.update(last_error="The provider refused the refresh: invalid_grant")

    changelist = "/django-admin/connections/connection/"
    for query in (
        "Jansen",
        "acme",
        "Acme",
        "alice@example.com",
        "jan@example.nl",
        "Jan de Vries",
        "Exact Online NL",
        str(connection.id),
    ):
        page = staff.get(changelist, {"q": query})
        assert page.status_code == 200
        assert "Jansen administratie" in page.content.decode(), query
    assert "Jansen administratie" not in staff.get(changelist, {"q": "globex"}).content.decode()

    pages = [
        staff.get(changelist),
        staff.get(f"{changelist}{connection.id}/change/"),
        staff.get(changelist, {"status__exact": "active"}),
    ]
    assert [p.status_code for p in pages] == [200, 200, 200]
    change = pages[1].content.decode()
    assert "Jansen administratie" in change and "invalid_grant" in change and "Authorized as Jan de Vries" in change
    for page in pages:
        content = page.content.decode()
        for secret in secrets:
            assert secret not in content
        assert "Access token:" not in content and "Refresh token:" not in content

    # Staff look; they do not change connections here.
    response = staff.post(f"{changelist}{connection.id}/change/", {"name": "Renamed"})
    assert response.status_code == 403
    assert Connection.objects.get().name == "Jansen administratie"
