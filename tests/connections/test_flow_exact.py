"""The authorization-code flow against the Exact Online emulator, success and every way it can fail.

Tokenkeeper runs in Django's test client (one ``Client`` = one browser
session); the consent at the emulator goes over real HTTP.
"""

import logging
from datetime import timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from connections.models import AuthorizationState, Connection, ConnectionEvent, Status
from tests.connections.helpers import (
    api_url,
    detail_url,
    exact_consent,
    finish_flow,
    query_of,
    raw_tokens,
    start_flow,
)
from tests.fixtures.peers import EXACT_CLIENT_ID, EXACT_CLIENT_SECRET

pytestmark = pytest.mark.django_db

NAME = "Jansen administratie"


def kinds(connection) -> list[str]:
    return list(
        ConnectionEvent.objects.filter(connection=connection).order_by("created_at").values_list("kind", flat=True)
    )


def messages_on(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def api_view(api, team, connection) -> dict:
    response = api.as_user(team.alice).get(api_url(connection))
    assert response.status_code == 200
    return response.json()


def connect(browser_client, connection, **consent):
    return finish_flow(browser_client, exact_consent(start_flow(browser_client, connection), **consent))


def assert_no_tokens_stored(connection, status=Status.PENDING):
    connection.refresh_from_db()
    assert connection.status == status
    assert raw_tokens(NAME) == ("", "")
    assert connection.access_token_expires_at is None and connection.refresh_token_expires_at is None
    assert connection.refresh_due_at is None


def test_connect_at_exact_online_stores_tokens_identity_and_expiries(
    people, exact, exact_connection, settings, api, team
):
    alice = people.alice
    authorize = start_flow(alice, exact_connection)

    assert authorize.startswith(exact.authorization_url + "?")
    params = query_of(authorize)
    assert params["client_id"] == EXACT_CLIENT_ID
    assert params["redirect_uri"] == f"{settings.PUBLIC_BASE_URL}/oauth2/callback"
    assert params["response_type"] == "code"
    assert len(params["state"]) >= 32
    assert "code_challenge" not in params and "scope" not in params  # Exact: no PKCE, no scopes
    [state] = AuthorizationState.objects.all()
    assert params["state"] not in (state.state_hash, state.session_binding)  # only hashes are stored

    callback = exact_consent(authorize, division="654321")
    assert "%21" in callback  # Exact URL-encodes the "!" in its codes; Tokenkeeper must decode it
    before = timezone.now()
    response = finish_flow(alice, callback)
    after = timezone.now()

    assert response.redirect_chain == [(detail_url(exact_connection), 302)]
    assert messages_on(response) == [f"“{NAME}” is connected as Jan de Vries and ready to use."]
    page = response.content.decode()
    assert 'data-status="active"' in page and ">Active<" in page
    assert "654321 — Jansen Bakkerij B.V." in page
    assert "Jan de Vries &lt;jan@example.nl&gt;" in page
    assert ">Reconnect<" in page

    connection = Connection.objects.get(pk=exact_connection.pk)
    [grant] = exact.grants
    assert connection.status == Status.ACTIVE
    assert (connection.access_token, connection.refresh_token) == (grant.access_token, grant.refresh_token)
    assert connection.token_type == "bearer"
    # expires_in came as the string "600"
    assert connection.access_token_lifetime == 600
    assert before + timedelta(seconds=600) <= connection.access_token_expires_at <= after + timedelta(seconds=600)
    # Exact sends no refresh lifetime: the client's configured 30 days apply
    assert before + timedelta(days=30) <= connection.refresh_token_expires_at <= after + timedelta(days=30)
    # Exact accepts a refresh only in the last 30 s: due 25 s before expiry
    assert connection.refresh_due_at == connection.access_token_expires_at - timedelta(seconds=25)
    user = exact.get_user("jan@example.nl")
    assert (connection.account_id, connection.account_name, connection.account_email) == (
        user.user_id,
        "Jan de Vries",
        "jan@example.nl",
    )
    assert connection.account_details == {
        "UserID": user.user_id,
        "UserName": "jan@example.nl",
        "Email": "jan@example.nl",
        "Division": 654321,
        "DivisionCustomerName": "Jansen Bakkerij B.V.",
    }
    assert connection.connected_at is not None and connection.last_error == ""
    assert kinds(connection) == ["created", "authorized"]
    assert AuthorizationState.objects.get().used_at is not None

    # One code exchange, credentials in the form body (client_secret_post), then one Me call.
    [token_request] = exact.token_requests
    assert (token_request.grant_type, token_request.outcome, token_request.client_id) == (
        "authorization_code",
        "ok",
        EXACT_CLIENT_ID,
    )
    assert [(r.path, r.status) for r in exact.api_requests] == [("/api/v1/current/Me", 200)]

    body = api_view(api, team, connection)
    assert body["status"] == "active" and body["last_error"] == ""
    assert body["account"]["details"]["Division"] == 654321
    assert body["account"]["details"]["DivisionCustomerName"] == "Jansen Bakkerij B.V."

    # The division chosen at connect time stays, whatever the user's current division becomes later.
    user.current_division = 123456
    connection.refresh_from_db()
    assert connection.account_details["Division"] == 654321


def test_reconnect_keeps_the_connection_id_and_records_reconnected(people, exact, exact_connection):
    connect(people.alice, exact_connection)
    first = Connection.objects.get()
    response = connect(people.alice, exact_connection)

    assert messages_on(response) == [f"“{NAME}” is reconnected as Jan de Vries and ready to use."]
    assert Connection.objects.count() == 1
    connection = Connection.objects.get()
    assert connection.id == exact_connection.id
    assert connection.access_token == exact.grants[-1].access_token != first.access_token
    assert connection.refresh_token == exact.grants[-1].refresh_token != first.refresh_token
    assert kinds(connection) == ["created", "authorized", "reconnected"]


def test_reconnect_after_needs_reauth_recovers_and_tells_the_people(
    people, exact, exact_connection, django_capture_on_commit_callbacks
):
    connect(people.alice, exact_connection)
    Connection.objects.filter(pk=exact_connection.pk).update(status=Status.NEEDS_REAUTH, last_error="invalid_grant")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        connect(people.alice, exact_connection)

    connection = Connection.objects.get()
    assert connection.status == Status.ACTIVE and connection.last_error == ""
    assert kinds(connection)[-2:] == ["reconnected", "recovered"]
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert "works again" in mail.outbox[0].subject


def test_disconnect_deletes_the_tokens_and_reconnect_brings_it_back(people, exact, exact_connection):
    connect(people.alice, exact_connection)
    assert all(raw_tokens(NAME))

    response = people.alice.post(f"{detail_url(exact_connection)}disconnect/", follow=True)

    assert messages_on(response) == [f"“{NAME}” disconnected: its tokens were deleted."]
    assert 'data-status="revoked"' in response.content.decode()
    assert raw_tokens(NAME) == ("", "")
    connection = Connection.objects.get()
    assert connection.status == Status.REVOKED
    assert connection.access_token_expires_at is None and connection.refresh_due_at is None
    assert kinds(connection)[-1] == "revoked"

    connect(people.alice, exact_connection)
    connection.refresh_from_db()
    assert connection.status == Status.ACTIVE and connection.id == exact_connection.id
    assert connection.access_token == exact.grants[-1].access_token


# --- What goes wrong ---------------------------------------------------------------------


def assert_failed(response, connection, message, api, team, *, status=Status.PENDING):
    """A clear message on the page and in the API; the connection can be connected again."""
    assert response.redirect_chain == [(detail_url(connection), 302)]
    # Shown once, as the connection's last error, not a second time as a flash message.
    assert not any(message in m for m in messages_on(response)), messages_on(response)
    page = response.content.decode()
    assert 'id="last-error"' in page and message in page
    assert 'id="connect-button"' in page
    assert message in api_view(api, team, connection)["last_error"]
    assert kinds(connection)[-1] == "authorization_failed"
    connection.refresh_from_db()
    assert connection.status == status


def test_provider_error_access_denied(people, exact, exact_connection, api, team):
    response = connect(people.alice, exact_connection, decision="deny")

    assert_failed(response, exact_connection, "Access was denied at the provider", api, team)
    assert_no_tokens_stored(exact_connection)
    assert exact.token_requests == []

    # The user retries and it works; the error is cleared.
    connect(people.alice, exact_connection)
    exact_connection.refresh_from_db()
    assert exact_connection.status == Status.ACTIVE and exact_connection.last_error == ""


def test_replayed_state_is_refused(people, exact, exact_connection, api, team):
    callback = exact_consent(start_flow(people.alice, exact_connection))
    finish_flow(people.alice, callback)
    stored = raw_tokens(NAME)

    events = kinds(exact_connection)

    response = finish_flow(people.alice, callback)

    assert any("This authorization response was already used" in m for m in messages_on(response))
    assert raw_tokens(NAME) == stored  # unchanged
    assert len(exact.token_requests) == 1  # the replay never reached the provider
    # The working connection is left alone: no error, no event for a replayed answer.
    assert api_view(api, team, exact_connection)["last_error"] == ""
    assert kinds(exact_connection) == events


@pytest.mark.parametrize("how", ["stored expiry", "time travel"])
def test_expired_state_is_refused(people, exact, exact_connection, api, team, how):
    callback = exact_consent(start_flow(people.alice, exact_connection))
    if how == "stored expiry":
        AuthorizationState.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        response = finish_flow(people.alice, callback)
    else:
        later = timezone.now() + timedelta(minutes=10, seconds=1)
        with mock.patch("django.utils.timezone.now", return_value=later):
            response = finish_flow(people.alice, callback)

    assert_failed(response, exact_connection, "took longer than 10 minutes and expired", api, team)
    assert_no_tokens_stored(exact_connection)
    assert exact.token_requests == []


def test_state_still_valid_at_nine_minutes(people, exact, exact_connection):
    callback = exact_consent(start_flow(people.alice, exact_connection))
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(minutes=9)):
        finish_flow(people.alice, callback)
    exact_connection.refresh_from_db()
    assert exact_connection.status == Status.ACTIVE


def test_state_from_another_browser_session_is_refused(people, exact, exact_connection, api, team):
    callback = exact_consent(start_flow(people.alice, exact_connection))
    # Alice again, but in another browser: same user, another session.
    other_browser = Client()
    other_browser.force_login(team.alice)

    response = finish_flow(other_browser, callback)

    assert any("This authorization was started in another browser session" in m for m in messages_on(response))
    assert_no_tokens_stored(exact_connection)
    assert exact.token_requests == []
    # Nothing changed: no error or event on the connection, and the state is not
    # spent, so the browser that started the flow still finishes it.
    assert api_view(api, team, exact_connection)["last_error"] == ""
    assert kinds(exact_connection) == ["created"]
    finish_flow(people.alice, callback)
    exact_connection.refresh_from_db()
    assert exact_connection.status == Status.ACTIVE


def test_state_from_another_browser_session_without_login_gets_the_result_page(people, exact, exact_connection):
    callback = exact_consent(start_flow(people.alice, exact_connection))

    response = people.anonymous.get(urlsplit(callback).path, query_of(callback), follow=True)

    assert response.redirect_chain == [("/oauth2/result", 302)]
    assert response.status_code == 400
    page = response.content.decode()
    assert "Connection not completed" in page and "started in another browser session" in page
    assert_no_tokens_stored(exact_connection)


def test_code_reuse_fails_the_exchange_and_keeps_the_tokens(people, exact, exact_connection, api, team):
    first_callback = exact_consent(start_flow(people.alice, exact_connection))
    finish_flow(people.alice, first_callback)
    stored = raw_tokens(NAME)
    old_code = query_of(first_callback)["code"]

    # A new flow (new state), fed the code that was already exchanged.
    new_state = query_of(start_flow(people.alice, exact_connection))["state"]
    response = people.alice.get("/oauth2/callback", {"code": old_code, "state": new_state}, follow=True)

    assert_failed(
        response, exact_connection, "Exchanging the authorization code failed", api, team, status=Status.ACTIVE
    )
    message = api_view(api, team, exact_connection)["last_error"]
    assert "invalid_grant" in message and "No tokens were stored" in message
    assert raw_tokens(NAME) == stored
    assert [(r.outcome, r.detail) for r in exact.token_requests] == [("ok", None), ("invalid_grant", "code_reused")]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("server error", "The provider answered HTTP 500"),
        ("wrong secret", "invalid_client"),
    ],
)
def test_failed_code_exchange_stores_nothing(people, exact, exact_connection, api, team, failure, expected):
    if failure == "server error":
        exact.fail_next(1, status=500)
    else:
        exact.add_client(
            EXACT_CLIENT_ID, "a-rotated-secret", redirect_uris=[exact_connection.oauth_client.redirect_uri]
        )

    response = connect(people.alice, exact_connection)

    assert_failed(response, exact_connection, "Exchanging the authorization code failed", api, team)
    last_error = api_view(api, team, exact_connection)["last_error"]
    assert expected in last_error
    assert EXACT_CLIENT_SECRET not in last_error and "a-rotated-secret" not in last_error
    assert_no_tokens_stored(exact_connection)


def test_failing_identity_call_stores_no_tokens(people, exact, exact_connection, api, team, caplog):
    exact.access_token_lifetime = 0  # the issued access token is dead on arrival: Me answers 401
    caplog.set_level(logging.DEBUG)

    response = connect(people.alice, exact_connection)

    assert_failed(response, exact_connection, "reading the connected account failed", api, team)
    assert "HTTP 401" in api_view(api, team, exact_connection)["last_error"]
    assert exact.count("ok") == 1  # the provider did issue tokens…
    assert_no_tokens_stored(exact_connection)  # …but none were kept, shown or logged
    [grant] = exact.grants
    for token in (grant.access_token, grant.refresh_token):
        assert token not in response.content.decode() and token not in caplog.text
    exact_connection.refresh_from_db()
    assert exact_connection.account_id == "" and exact_connection.account_details == {}

    exact.access_token_lifetime = 600
    connect(people.alice, exact_connection)
    exact_connection.refresh_from_db()
    assert exact_connection.status == Status.ACTIVE


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"code": "abc"}, "carried no state"),
        ({"code": "abc", "state": "never-issued"}, "does not belong to a flow Tokenkeeper started"),
    ],
)
def test_callback_without_a_known_state(people, exact, exact_connection, params, expected):
    response = people.alice.get("/oauth2/callback", params, follow=True)

    assert response.status_code == 400
    assert expected in response.content.decode()
    assert exact.token_requests == []
    assert_no_tokens_stored(exact_connection)


def test_callback_without_code(people, exact, exact_connection, api, team):
    state = query_of(start_flow(people.alice, exact_connection))["state"]

    response = people.alice.get("/oauth2/callback", {"state": state}, follow=True)

    assert_failed(response, exact_connection, "carried no authorization code", api, team)
    assert_no_tokens_stored(exact_connection)
