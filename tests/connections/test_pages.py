"""The Connections pages: members see and manage only their own, admins all; strangers get 404."""

import pytest

from audit.services import Actor
from connections.models import AuthorizationState, Connection, Status
from connections.services import connection_create
from oauthclients.services import oauth_client_create
from tests.connections.helpers import detail_url, query_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def bobs(team, exact_client):
    return connection_create(
        workspace=team.a, oauth_client=exact_client, name="Bob's books", owner=team.bob, actor=Actor(user=team.bob)
    )


def test_list_page_shows_what_the_role_allows(people, exact_connection, bobs):
    admin_page = people.alice.get("/w/acme/connections/").content.decode()
    assert "Jansen administratie" in admin_page and "Bob&#x27;s books" in admin_page
    assert "Every connection of this workspace." in admin_page
    member_page = people.bob.get("/w/acme/connections/").content.decode()
    assert "Bob&#x27;s books" in member_page and "Jansen administratie" not in member_page
    assert "Your connections." in member_page


def test_strangers_and_other_members_get_404(people, exact_connection, bobs):
    pages = ["", "connect/", "disconnect/", "rename/", "delete/"]
    for suffix in pages:
        method = people.bob.get if suffix == "" else people.bob.post
        assert method(f"{detail_url(exact_connection)}{suffix}", {"name": "x"}).status_code == 404, suffix
        method = people.charlie.get if suffix == "" else people.charlie.post
        assert method(f"{detail_url(exact_connection)}{suffix}", {"name": "x"}).status_code == 404, suffix
    assert people.charlie.get("/w/acme/connections/").status_code == 404
    assert people.charlie.get("/w/acme/connections/new/").status_code == 404
    # Nothing happened.
    connection = Connection.objects.get(pk=exact_connection.pk)
    assert connection.name == "Jansen administratie" and connection.status == Status.PENDING
    assert not AuthorizationState.objects.exists()


def test_anonymous_is_sent_to_log_in(people, exact_connection):
    for url in ("/w/acme/connections/", detail_url(exact_connection)):
        response = people.anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = people.anonymous.post(f"{detail_url(exact_connection)}connect/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not AuthorizationState.objects.exists()


def test_admin_manages_a_members_connection(people, bobs, exact):
    assert people.alice.get(detail_url(bobs)).status_code == 200
    authorize = people.alice.post(f"{detail_url(bobs)}connect/")
    assert authorize.status_code == 302 and query_of(authorize["Location"])["state"]
    response = people.alice.post(f"{detail_url(bobs)}rename/", {"name": "Bob's ledger"}, follow=True)
    assert "Connection renamed." in response.content.decode()
    response = people.alice.post(f"{detail_url(bobs)}delete/", follow=True)
    assert "Connection “Bob&#x27;s ledger” deleted." in response.content.decode()
    assert not Connection.objects.filter(pk=bobs.pk).exists()


def test_member_creates_a_connection_on_the_page(people, exact_client):
    form = people.bob.get("/w/acme/connections/new/")
    assert form.status_code == 200 and "Exact Online NL" in form.content.decode()

    response = people.bob.post(
        "/w/acme/connections/new/", {"name": "Bakkerij", "oauth_client": exact_client.id}, follow=True
    )

    connection = Connection.objects.get(name="Bakkerij")
    assert response.redirect_chain == [(detail_url(connection), 302)]
    page = response.content.decode()
    assert "Click Connect to authorize it" in page and 'data-status="pending"' in page and ">Connect<" in page
    assert ">Disconnect<" not in page
    assert connection.owner == exact_client.workspace.memberships.get(user__email="bob@example.com").user


def test_create_page_refuses_bad_input(people, exact_client, team):
    response = people.bob.post("/w/acme/connections/new/", {"name": "  ", "oauth_client": exact_client.id})
    assert response.status_code == 200 and not Connection.objects.exists()
    assert "This field is required." in response.content.decode()

    globex_client = oauth_client_create(
        workspace=team.b,
        actor=Actor(user=team.charlie),
        provider="generic",
        name="Globex CRM",
        client_id="g",
        client_secret="g-secret",
        authorization_url="https://login.example.com/a",
        token_url="https://login.example.com/t",
        access_token_expires_in=3_600_000,
        refresh_token_expires_in=0,
    )
    response = people.bob.post("/w/acme/connections/new/", {"name": "Sneaky", "oauth_client": globex_client.id})
    assert response.status_code == 200 and not Connection.objects.exists()


def test_rename_to_blank_is_refused_on_the_page(people, exact_connection):
    response = people.alice.post(f"{detail_url(exact_connection)}rename/", {"name": ""}, follow=True)
    assert "Enter a name of at most 100 characters." in response.content.decode()
    assert Connection.objects.get().name == "Jansen administratie"


def test_connect_button_needs_post(people, exact_connection):
    assert people.alice.get(f"{detail_url(exact_connection)}connect/").status_code == 405
    assert not AuthorizationState.objects.exists()
