"""``/api/v1/workspaces/{ws}/connections/``: every endpoint across workspaces, roles and API-key scopes.

Acme: Alice (admin) owns "Alice's books", Bob (member) owns "Bob's books".
Globex: Charlie (admin) owns "Globex books". Denied requests change nothing.
"""

from types import SimpleNamespace

import pytest

from audit.models import AuditEvent
from audit.services import Actor
from connections.models import Connection, ConnectionEvent, ConnectLink, Status
from connections.services import connection_create
from oauthclients.services import oauth_client_create
from tests.connections.helpers import api_url, raw_tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(team, key_factory):
    def client_for(workspace, user, name):
        return oauth_client_create(
            workspace=workspace,
            actor=Actor(user=user),
            provider="generic",
            name=name,
            client_id=f"{name}-id",
            client_secret=f"{name}-secret",
            authorization_url="https://login.example.com/authorize",
            token_url="https://login.example.com/token",
            access_token_expires_in=3_600_000,
            refresh_token_expires_in=0,
        )

    def conn(workspace, client, name, owner):
        return connection_create(
            workspace=workspace, oauth_client=client, name=name, owner=owner, actor=Actor(user=owner)
        )

    acme_client = client_for(team.a, team.alice, "acme-crm")
    acme_other_client = client_for(team.a, team.alice, "acme-erp")
    globex_client = client_for(team.b, team.charlie, "globex-crm")
    world = SimpleNamespace(
        team=team,
        acme_client=acme_client,
        acme_other_client=acme_other_client,
        globex_client=globex_client,
        alices=conn(team.a, acme_client, "Alice's books", team.alice),
        bobs=conn(team.a, acme_other_client, "Bob's books", team.bob),
        globex=conn(team.b, globex_client, "Globex books", team.charlie),
        key=key_factory(team.a, scopes=("read", "write")),
        read_key=key_factory(team.a, scopes=("read",), name="read only"),
        tokens_key=key_factory(team.a, scopes=("tokens",), name="tokens only"),
        globex_key=key_factory(team.b, scopes=("read", "write", "tokens"), name="globex key"),
    )
    Connection.objects.filter(pk=world.alices.pk).update(
        status=Status.ACTIVE, access_token="alice-access-Qx1", refresh_token="alice-refresh-Qx1"
    )
    return world


def detail_calls(connection, workspace="acme"):
    """(method, url, body) for each endpoint on one connection."""
    return [
        ("get", api_url(connection, workspace=workspace), None),
        ("patch", api_url(connection, workspace=workspace), {"name": "Renamed"}),
        ("get", api_url(connection, "events", workspace=workspace), None),
        ("post", api_url(connection, "authorize", workspace=workspace), None),
        ("post", api_url(connection, "disconnect", workspace=workspace), None),
        ("delete", api_url(connection, workspace=workspace), None),
    ]


def all_calls(world, connection=None, workspace="acme"):
    client = world.acme_client if workspace == "acme" else world.globex_client
    return [
        ("get", api_url(workspace=workspace), None),
        ("post", api_url(workspace=workspace), {"name": "New one", "oauth_client": str(client.id)}),
        *detail_calls(connection or world.alices, workspace),
    ]


def call(api, method, url, body):
    return getattr(api, method)(url, body, format="json") if body is not None else getattr(api, method)(url)


def snapshot():
    """Everything a denied request must leave alone."""
    return (
        sorted(Connection.objects.values_list("id", "name", "status", "owner_id", "workspace_id")),
        raw_tokens("Alice's books"),
        ConnectLink.objects.count(),
        ConnectionEvent.objects.count(),
        AuditEvent.objects.filter(action__startswith="connection.").count(),
    )


def assert_all(api, calls, status, code=None):
    before = snapshot()
    for method, url, body in calls:
        response = call(api, method, url, body)
        assert response.status_code == status, (method, url, response.content)
        error = response.json()["error"]
        assert error["message"] and (code is None or error["code"] == code), error
    assert snapshot() == before


# --- Who is refused -----------------------------------------------------------------------


def test_anonymous_gets_401_everywhere(api, world):
    api.anonymous()
    assert_all(api, all_calls(world), 401, "not_authenticated")
    assert api.get(api_url()).headers["WWW-Authenticate"].startswith("Bearer")


def test_invalid_api_key_gets_401(api, world):
    api.as_key("tk_nope_notakey")
    assert_all(api, all_calls(world), 401)


def test_non_member_gets_404_everywhere(api, world):
    api.as_user(world.team.charlie)
    assert_all(api, all_calls(world), 404, "not_found")


def test_api_key_of_another_workspace_gets_404_everywhere(api, world):
    api.as_key(world.globex_key)
    assert_all(api, all_calls(world), 404, "not_found")


def test_connection_of_another_workspace_is_not_found_through_this_one(api, world):
    """Alice and Acme's key ask for Globex's connection under /workspaces/acme/."""
    for as_ in (lambda: api.as_user(world.team.alice), lambda: api.as_key(world.key)):
        as_()
        assert_all(api, detail_calls(world.globex), 404, "not_found")


def test_member_cannot_see_or_touch_another_members_connection(api, world):
    api.as_user(world.team.bob)
    assert_all(api, detail_calls(world.alices), 404, "not_found")


def test_admin_of_one_workspace_is_a_stranger_in_another(api, world, team):
    api.as_user(team.alice)
    assert_all(api, all_calls(world, world.globex, workspace="globex"), 404, "not_found")


@pytest.mark.parametrize("key", ["tokens_key", "read_key"])
def test_api_key_without_the_scope_gets_403(api, world, key):
    api.as_key(getattr(world, key))
    reads = [c for c in all_calls(world) if c[0] == "get"]
    writes = [c for c in all_calls(world) if c[0] != "get"]
    if key == "tokens_key":
        assert_all(api, reads, 403, "permission_denied")
    else:
        for method, url, body in reads:
            assert call(api, method, url, body).status_code == 200
    assert_all(api, writes, 403, "permission_denied")


def test_create_with_another_workspaces_client_is_refused(api, world):
    before = snapshot()
    for as_ in (lambda: api.as_user(world.team.alice), lambda: api.as_key(world.key)):
        as_()
        response = api.post(api_url(), {"name": "Sneaky", "oauth_client": str(world.globex_client.id)}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["fields"]["oauth_client"] == ["No OAuth client with that id in this workspace."]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"oauth_client": "acme"}, "name"),
        ({"name": "", "oauth_client": "acme"}, "name"),
        ({"name": "   ", "oauth_client": "acme"}, "name"),
        ({"name": "x" * 101, "oauth_client": "acme"}, "name"),
        ({"name": "No client"}, "oauth_client"),
        ({"name": "Bad id", "oauth_client": "not-a-uuid"}, "oauth_client"),
        ({"name": "Unknown id", "oauth_client": "00000000-0000-4000-8000-000000000000"}, "oauth_client"),
    ],
)
def test_create_with_bad_input_says_what_is_wrong(api, world, body, field):
    if body.get("oauth_client") == "acme":
        body = {**body, "oauth_client": str(world.acme_client.id)}
    before = snapshot()
    response = api.as_user(world.team.bob).post(api_url(), body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["message"] and field in error["fields"], error
    assert snapshot() == before


def test_rename_to_blank_is_refused(api, world):
    before = snapshot()
    response = api.as_user(world.team.alice).patch(api_url(world.alices), {"name": "  "}, format="json")
    assert response.status_code == 400 and "name" in response.json()["error"]["fields"]
    assert snapshot() == before


# --- What each may do ---------------------------------------------------------------------


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [c["name"] for c in response.json()["results"]]


def test_list_shows_what_the_role_allows(api, world, team):
    assert names(api.as_user(team.alice).get(api_url())) == ["Alice's books", "Bob's books"]
    assert names(api.as_user(team.bob).get(api_url())) == ["Bob's books"]
    assert names(api.as_key(world.key).get(api_url())) == ["Alice's books", "Bob's books"]
    assert names(api.as_key(world.read_key).get(api_url())) == ["Alice's books", "Bob's books"]
    assert names(api.as_user(team.charlie).get(api_url(workspace="globex"))) == ["Globex books"]
    assert names(api.as_key(world.globex_key).get(api_url(workspace="globex"))) == ["Globex books"]


def test_list_filters(api, world, team):
    api.as_user(team.alice)
    assert names(api.get(api_url(), {"status": "active"})) == ["Alice's books"]
    assert names(api.get(api_url(), {"status": "pending"})) == ["Bob's books"]
    assert names(api.get(api_url() + "?status=pending&status=active")) == ["Alice's books", "Bob's books"]
    assert names(api.get(api_url(), {"status": "revoked"})) == []
    assert names(api.get(api_url(), {"oauth_client": str(world.acme_other_client.id)})) == ["Bob's books"]
    assert names(api.get(api_url(), {"oauth_client": str(world.globex_client.id)})) == []
    assert names(api.as_user(team.bob).get(api_url(), {"status": "active"})) == []
    bad = api.as_user(team.alice).get(api_url(), {"status": "sleeping"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]


def test_retrieve_shows_the_connection_without_tokens(api, world, team):
    body = api.as_user(team.alice).get(api_url(world.alices)).json()
    assert body["id"] == str(world.alices.id)
    assert body["name"] == "Alice's books" and body["status"] == "active" and body["owner"] == "alice@example.com"
    assert body["oauth_client"] == str(world.acme_client.id) and body["oauth_client_name"] == "acme-crm"
    assert body["provider"] == "generic"
    assert set(body["account"]) == {"id", "name", "email", "details"}
    assert not {"access_token", "refresh_token"} & set(body)
    assert "alice-access-Qx1" not in str(body) and "alice-refresh-Qx1" not in str(body)


@pytest.mark.parametrize("who", ["owner (member)", "admin", "API key"])
def test_happy_paths_on_a_members_connection(api, world, team, who):
    {
        "owner (member)": lambda: api.as_user(team.bob),
        "admin": lambda: api.as_user(team.alice),
        "API key": lambda: api.as_key(world.key),
    }[who]()
    bobs = world.bobs

    assert api.get(api_url(bobs)).json()["name"] == "Bob's books"

    renamed = api.patch(api_url(bobs), {"name": "Bob's ledger"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Bob's ledger"

    authorize = api.post(api_url(bobs, "authorize"))
    assert authorize.status_code == 200 and "/oauth2/connect/" in authorize.json()["connect_url"]

    disconnected = api.post(api_url(bobs, "disconnect"))
    assert disconnected.status_code == 200 and disconnected.json()["status"] == "revoked"

    events = api.get(api_url(bobs, "events"))
    assert events.status_code == 200
    assert [e["kind"] for e in events.json()["results"]] == ["revoked", "created"]
    assert set(events.json()["results"][0]) == {"id", "kind", "detail", "data", "created_at"}

    assert api.delete(api_url(bobs)).status_code == 204
    assert not Connection.objects.filter(pk=bobs.pk).exists()
    assert api.get(api_url(bobs)).status_code == 404
    actions = set(AuditEvent.objects.filter(target_id=str(bobs.id)).values_list("action", flat=True))
    assert {
        "connection.renamed",
        "connection.connect_link_created",
        "connection.revoked",
        "connection.deleted",
    } <= actions


def test_member_creates_connections_and_owns_them(api, world, team):
    response = api.as_user(team.bob).post(
        api_url(), {"name": "Bob's second", "oauth_client": str(world.acme_client.id)}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["owner"] == "bob@example.com"
    assert body["access_token_expires_at"] is None and body["connected_at"] is None
    assert names(api.as_user(team.bob).get(api_url())) == ["Bob's books", "Bob's second"]
    assert "Bob's second" in names(api.as_user(team.alice).get(api_url()))
    assert [e.kind for e in Connection.objects.get(pk=body["id"]).events.all()] == ["created"]


def test_api_key_creates_connections_without_an_owner(api, world):
    response = api.as_key(world.key).post(
        api_url(), {"name": "From ETL", "oauth_client": str(world.acme_client.id)}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["owner"] is None
    assert AuditEvent.objects.filter(action="connection.created", target_id=response.json()["id"]).exists()


def test_disconnect_through_the_api_erases_tokens(api, world):
    response = api.as_key(world.key).post(api_url(world.alices, "disconnect"))
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert raw_tokens("Alice's books") == ("", "")
    again = api.as_key(world.key).post(api_url(world.alices, "disconnect"))  # idempotent
    assert again.status_code == 200 and again.json()["status"] == "revoked"


def test_paths_work_with_and_without_trailing_slash(api, world):
    api.as_key(world.key)
    assert api.get(api_url(world.alices).rstrip("/")).status_code == 200
    assert api.get(api_url(world.alices, "events/")).status_code == 200
    assert api.post(api_url(world.alices, "authorize/")).status_code == 200
