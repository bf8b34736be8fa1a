"""Who may call which OAuth client endpoint, across workspaces, roles and API keys.

Every refused request must change nothing: the stored clients, their secrets
and the audit trail are compared before and after.
"""

import pytest

from audit.services import SYSTEM
from oauthclients.models import OAuthClient
from tests.factories import make_api_key
from tests.fixtures.oauthclients import ACME_SECRET, NEW_SECRET
from tests.helpers import assert_error
from tests.oauthclients.helpers import exact_body, stored
from workspaces.models import ApiKey
from workspaces.services import api_key_revoke

LIST = "/api/v1/workspaces/acme/oauth-clients/"
ONE = "/api/v1/workspaces/acme/oauth-clients/{id}/"

# (name, method, path, body) — every endpoint, in workspace Acme.
READS = [
    ("list", "get", LIST, None),
    ("retrieve", "get", ONE, None),
]
WRITES = [
    ("create", "post", LIST, exact_body(name="Exact Online BE", site="be")),
    ("patch", "patch", ONE, {"name": "Renamed", "client_secret": NEW_SECRET}),
    (
        "put",
        "put",
        ONE,
        {
            "name": "Renamed",
            "client_id": "new-id",
            "access_token_expires_in": 600000,
            "refresh_token_expires_in": 0,
            "client_secret": NEW_SECRET,
        },
    ),
    ("delete", "delete", ONE, None),
]
ENDPOINTS = READS + WRITES
PROVIDERS = "/api/v1/providers/"


def call(client, method, path, body, acme_client):
    return getattr(client, method)(path.format(id=acme_client.id), body, format="json")


def ids(endpoints):
    return [e[0] for e in endpoints]


@pytest.fixture
def keys(team):
    return {
        "read": make_api_key(team.a, scopes=["read"], name="read only"),
        "write": make_api_key(team.a, scopes=["write"], name="write only"),
        "tokens": make_api_key(team.a, scopes=["tokens"], name="tokens only"),
        "all": make_api_key(team.a, scopes=["read", "write", "tokens"], name="everything"),
        "globex": make_api_key(team.b, scopes=["read", "write", "tokens"], name="globex everything"),
    }


# --- Refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "method", "path", "body"), ENDPOINTS, ids=ids(ENDPOINTS))
def test_anonymous_callers_must_authenticate(team, api, acme_client, name, method, path, body):
    before = stored()

    response = call(api.anonymous(), method, path, body, acme_client)

    assert_error(response, 401)
    assert stored() == before


@pytest.mark.parametrize(("name", "method", "path", "body"), ENDPOINTS, ids=ids(ENDPOINTS))
def test_a_non_member_cannot_tell_the_workspace_exists(team, api, acme_client, globex_client, name, method, path, body):
    before = stored()

    response = call(api.as_user(team.charlie), method, path, body, acme_client)

    assert_error(response, 404, "No such workspace.")
    assert stored() == before


@pytest.mark.parametrize(("name", "method", "path", "body"), WRITES, ids=ids(WRITES))
def test_a_member_cannot_change_clients(team, api, acme_client, name, method, path, body):
    before = stored()

    response = call(api.as_user(team.bob), method, path, body, acme_client)

    assert_error(response, 403, "Only workspace admins can do this.")
    assert stored() == before


@pytest.mark.parametrize(("name", "method", "path", "body"), ENDPOINTS, ids=ids(ENDPOINTS))
def test_an_api_key_of_another_workspace_finds_nothing(team, api, keys, acme_client, name, method, path, body):
    before = stored()

    response = call(api.as_key(keys["globex"]), method, path, body, acme_client)

    assert_error(response, 404, "No such workspace.")
    assert stored() == before


@pytest.mark.parametrize(("name", "method", "path", "body"), READS, ids=ids(READS))
@pytest.mark.parametrize("scope", ["write", "tokens"])
def test_reading_needs_the_read_scope(team, api, keys, acme_client, scope, name, method, path, body):
    response = call(api.as_key(keys[scope]), method, path, body, acme_client)

    assert_error(response, 403, "This API key lacks the “read” scope.")


@pytest.mark.parametrize(("name", "method", "path", "body"), WRITES, ids=ids(WRITES))
@pytest.mark.parametrize("scope", ["read", "tokens"])
def test_changing_needs_the_write_scope(team, api, keys, acme_client, scope, name, method, path, body):
    before = stored()

    response = call(api.as_key(keys[scope]), method, path, body, acme_client)

    assert_error(response, 403, "This API key lacks the “write” scope.")
    assert stored() == before


@pytest.mark.parametrize(("name", "method", "path", "body"), WRITES[1:] + READS[1:], ids=ids(WRITES[1:] + READS[1:]))
def test_a_client_of_another_workspace_is_not_found_through_ones_own_workspace(
    team, api, acme_client, globex_client, name, method, path, body
):
    """Alice is admin of Acme; Globex's client id under /workspaces/acme/ does not exist for her."""
    before = stored()

    response = call(api.as_user(team.alice), method, path, body, globex_client)

    assert_error(response, 404)
    assert stored() == before


def test_an_unknown_workspace_is_not_found(team, api):
    assert_error(api.as_user(team.alice).get("/api/v1/workspaces/initech/oauth-clients/"), 404)


def test_a_revoked_api_key_is_refused(team, api, keys, acme_client):
    api_key_revoke(workspace=team.a, api_key=ApiKey.objects.get(name="everything"), actor=SYSTEM)

    assert_error(api.as_key(keys["all"]).get(LIST), 401, "not valid or has been revoked")


# --- Allowed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_admins_and_members_list_and_read_their_workspaces_clients(team, api, acme_client, globex_client, who):
    client = api.as_user(getattr(team, who))

    listed = client.get(LIST)
    one = client.get(ONE.format(id=acme_client.id))

    assert listed.status_code == 200, listed.content
    assert [c["name"] for c in listed.json()["results"]] == ["Exact Online NL"]
    assert one.status_code == 200, one.content
    assert one.json()["client_id"] == "acme-exact-id"
    assert one.json()["redirect_uri"].endswith("/oauth2/callback")


@pytest.mark.parametrize("scope", ["read", "all"])
def test_an_api_key_with_the_read_scope_lists_and_reads(team, api, keys, acme_client, scope):
    client = api.as_key(keys[scope])

    assert [c["id"] for c in client.get(LIST).json()["results"]] == [str(acme_client.id)]
    assert client.get(ONE.format(id=acme_client.id)).json()["name"] == "Exact Online NL"


def test_the_list_filters_by_type(team, api, acme_client):
    api.as_user(team.alice).post(
        LIST,
        {
            "provider": "generic",
            "name": "CRM",
            "client_id": "c",
            "client_secret": "s",
            "authorization_url": "https://login.example.com/a",
            "token_url": "https://login.example.com/t",
        },
        format="json",
    )

    generic = api.as_user(team.bob).get(LIST, {"provider": "generic"}).json()["results"]

    assert [c["name"] for c in generic] == ["CRM"]


@pytest.mark.parametrize("who", ["admin", "write key"])
def test_an_admin_or_a_write_key_creates_updates_and_deletes(team, api, keys, who):
    client = api.as_user(team.alice) if who == "admin" else api.as_key(keys["write"])

    created = client.post(LIST, exact_body(name="Exact Online BE", site="be"), format="json")
    assert created.status_code == 201, created.content
    url = ONE.format(id=created.json()["id"])

    patched = client.patch(url, {"name": "Exact Online Belgium"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["name"] == "Exact Online Belgium"

    put = client.put(
        url,
        {"name": "Exact BE", "client_id": "other-id", "access_token_expires_in": 600000, "refresh_token_expires_in": 0},
        format="json",
    )
    assert put.status_code == 200, put.content
    assert (put.json()["name"], put.json()["client_id"]) == ("Exact BE", "other-id")
    assert put.json()["access_token_expires_in"] == 600000
    assert put.json()["refresh_token_expires_in"] == 0

    deleted = client.delete(url)
    assert deleted.status_code == 204, deleted.content
    assert not OAuthClient.objects.filter(id=created.json()["id"]).exists()


def test_each_workspace_sees_only_its_own_clients(team, api, acme_client, globex_client):
    acme = api.as_user(team.alice).get(LIST).json()["results"]
    globex = api.as_user(team.charlie).get("/api/v1/workspaces/globex/oauth-clients/").json()["results"]

    assert [c["name"] for c in acme] == ["Exact Online NL"]
    assert [c["name"] for c in globex] == ["Globex CRM"]


def test_the_secret_a_refused_request_carried_is_not_stored(team, api, acme_client):
    api.as_user(team.bob).patch(ONE.format(id=acme_client.id), {"client_secret": NEW_SECRET}, format="json")

    assert OAuthClient.objects.get(id=acme_client.id).client_secret == ACME_SECRET


# --- /api/v1/providers/ ------------------------------------------------------------------------


def test_providers_need_a_signed_in_user_or_an_api_key(db, api):
    assert_error(api.anonymous().get(PROVIDERS), 401)


@pytest.mark.parametrize("who", ["alice", "bob", "charlie"])
def test_any_signed_in_user_lists_providers(team, api, who):
    response = api.as_user(getattr(team, who)).get(PROVIDERS)

    assert response.status_code == 200
    assert "exact_online" in {p["key"] for p in response.json()}


@pytest.mark.parametrize(
    ("scope", "status"), [("read", 200), ("all", 200), ("globex", 200), ("write", 403), ("tokens", 403)]
)
def test_an_api_key_lists_providers_only_with_the_read_scope(team, api, keys, scope, status):
    response = api.as_key(keys[scope]).get(PROVIDERS)

    assert response.status_code == status, response.content
    if status == 403:
        assert_error(response, 403, "This API key lacks the “read” scope.")


def test_providers_cannot_be_changed(team, api):
    assert_error(api.as_user(team.alice).post(PROVIDERS, {"key": "evil"}, format="json"), 405)
