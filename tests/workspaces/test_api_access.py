"""Who may call each workspace API endpoint.

One row per endpoint; every row is tried by six callers: nobody, an outsider,
a member lacking the role, a key of another workspace, a key lacking the scope,
and a caller who is allowed. Refused calls answer in the one error shape and
change nothing.
"""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from tests.factories import make_api_key
from tests.helpers import assert_error
from tests.oauthclients.helpers import generic_body
from tests.workspaces.helpers import state
from workspaces.models import Role, Scope, Workspace

pytestmark = pytest.mark.django_db

ACME = "/api/v1/workspaces/acme"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # under ACME, with {placeholders} from the ``ids`` fixture
    role: str  # the least role a signed-in person needs
    scope: str | None  # the scope an API key needs; None: people only
    status: int  # the allowed caller's status
    body: dict | None = None
    shows: str = ""  # what the allowed caller's response contains

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, ids) -> str:
        return ACME + self.path.format(**ids.url)


ENDPOINTS = [
    Endpoint("GET", "/", Role.MEMBER, Scope.READ, 200, shows='"slug":"acme"'),
    Endpoint("PATCH", "/", Role.ADMIN, None, 200, {"name": "Acme Corp"}, shows='"name":"Acme Corp"'),
    Endpoint("POST", "/leave", Role.MEMBER, None, 204),
    Endpoint("GET", "/members/", Role.MEMBER, Scope.READ, 200, shows="bob@example.com"),
    Endpoint("GET", "/members/{bob}/", Role.MEMBER, Scope.READ, 200, shows="bob@example.com"),
    Endpoint("PATCH", "/members/{bob}/", Role.ADMIN, None, 200, {"role": "admin"}, shows='"role":"admin"'),
    Endpoint("DELETE", "/members/{bob}/", Role.ADMIN, None, 204),
    Endpoint("GET", "/invitations/", Role.ADMIN, Scope.READ, 200, shows="erin@example.com"),
    Endpoint(
        "POST",
        "/invitations/",
        Role.ADMIN,
        None,
        201,
        {"email": "dave@example.com", "role": "member"},
        shows="dave@example.com",
    ),
    Endpoint("GET", "/invitations/{invitation}/", Role.ADMIN, Scope.READ, 200, shows="erin@example.com"),
    Endpoint("DELETE", "/invitations/{invitation}/", Role.ADMIN, None, 200, shows='"status":"revoked"'),
    Endpoint("GET", "/api-keys/", Role.ADMIN, Scope.READ, 200, shows="Nightly ETL"),
    Endpoint("POST", "/api-keys/", Role.ADMIN, None, 201, {"name": "Reports", "scopes": ["read"]}, shows="Reports"),
    Endpoint("GET", "/api-keys/{key}/", Role.ADMIN, Scope.READ, 200, shows="Nightly ETL"),
    Endpoint("DELETE", "/api-keys/{key}/", Role.ADMIN, None, 200, shows='"revoked_at":"20'),
    Endpoint("GET", "/audit-events/", Role.ADMIN, Scope.READ, 200, shows="api_key.created"),
    Endpoint("GET", "/audit-events/{event}/", Role.ADMIN, Scope.READ, 200, shows="api_key.created"),
]
ADMIN_ONLY = [e for e in ENDPOINTS if e.role == Role.ADMIN]
KEY_READABLE = [e for e in ENDPOINTS if e.scope]
every_endpoint = pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)


def send(client, endpoint: Endpoint, ids, **extra):
    call = getattr(client, endpoint.method.lower())
    if endpoint.method == "GET":
        return call(endpoint.url(ids), **extra)
    return call(endpoint.url(ids), endpoint.body, format="json", **extra)


def key_without(team, scope: str | None) -> str:
    """An Acme key holding every scope but ``scope`` (all of them for people-only endpoints)."""
    return make_api_key(team.a, scopes=[s for s in Scope.values if s != scope], name="almost")


# --- The matrix ----------------------------------------------------------------------


@every_endpoint
def test_anonymous_caller_is_asked_to_authenticate(team, ids, api, endpoint):
    before = state()
    response = send(api.anonymous(), endpoint, ids)
    assert_error(response, 401, "Authentication credentials were not provided.", code="not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert state() == before


@every_endpoint
def test_non_member_is_told_the_workspace_does_not_exist(team, ids, api, endpoint):
    before = state()
    response = send(api.as_user(team.charlie), endpoint, ids)
    assert_error(response, 404, "No such workspace.", code="not_found")
    assert state() == before


@pytest.mark.parametrize("endpoint", ADMIN_ONLY, ids=str)
def test_member_without_admin_role_is_refused(team, ids, api, endpoint):
    before = state()
    response = send(api.as_user(team.bob), endpoint, ids)
    assert_error(response, 403, "Only workspace admins can do this.", code="permission_denied")
    assert state() == before


@every_endpoint
def test_api_key_of_another_workspace_is_told_the_workspace_does_not_exist(team, ids, api, endpoint):
    globex_key = make_api_key(team.b, scopes=Scope.values)
    before = state()
    response = send(api.as_key(globex_key), endpoint, ids)
    assert_error(response, 404, "No such workspace.", code="not_found")
    assert state() == before


@every_endpoint
def test_api_key_without_the_needed_scope_is_refused(team, ids, api, endpoint):
    raw = key_without(team, endpoint.scope)
    before = state()
    response = send(api.as_key(raw), endpoint, ids)
    expected = f"This API key lacks the “{endpoint.scope}” scope." if endpoint.scope else "API keys cannot"
    assert_error(response, 403, expected, code="permission_denied")
    assert state() == before


@every_endpoint
def test_signed_in_person_with_the_role_succeeds(team, ids, api, endpoint):
    person = team.bob if endpoint.role == Role.MEMBER else team.alice
    before = state()
    response = send(api.as_user(person), endpoint, ids)
    assert response.status_code == endpoint.status, response.content
    assert endpoint.shows in response.content.decode()
    changed = state() != before
    assert changed == (endpoint.method != "GET")


@pytest.mark.parametrize("endpoint", KEY_READABLE, ids=str)
def test_api_key_with_the_scope_succeeds(team, ids, api, endpoint):
    raw = make_api_key(team.a, scopes=[endpoint.scope], name="exact scope")
    response = send(api.as_key(raw), endpoint, ids)
    assert response.status_code == endpoint.status, response.content
    assert endpoint.shows in response.content.decode()


# --- The workspace list, which has no tenant in its URL ------------------------------


def test_workspace_list_shows_each_person_only_their_workspaces_and_role(team, api):
    alice_sees = api.as_user(team.alice).get("/api/v1/workspaces/").json()
    charlie_sees = api.as_user(team.charlie).get("/api/v1/workspaces/").json()
    assert [(w["slug"], w["role"]) for w in alice_sees] == [("acme", "admin")]
    assert [(w["slug"], w["role"]) for w in charlie_sees] == [("globex", "admin")]


def test_api_key_lists_only_its_own_workspace(team, api):
    response = api.as_key(make_api_key(team.a, scopes=["read"])).get("/api/v1/workspaces/")
    assert [(w["slug"], w["role"]) for w in response.json()] == [("acme", None)]


def test_api_key_without_read_scope_cannot_list_workspaces(team, api):
    response = api.as_key(make_api_key(team.a, scopes=["tokens"])).get("/api/v1/workspaces/")
    assert_error(response, 403, "This API key lacks the “read” scope.")


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_caller_cannot_list_or_create_workspaces(team, api, method):
    before = state()
    response = getattr(api.anonymous(), method)("/api/v1/workspaces/", {"name": "Initech"}, format="json")
    assert_error(response, 401, code="not_authenticated")
    assert state() == before


def test_signed_in_person_creates_a_workspace_and_becomes_its_admin(team, api):
    response = api.as_user(team.charlie).post("/api/v1/workspaces/", {"name": "Initech"}, format="json")
    assert response.status_code == 201
    assert (response.json()["slug"], response.json()["role"]) == ("initech", "admin")
    members = api.as_user(team.charlie).get("/api/v1/workspaces/initech/members/").json()["results"]
    assert [(m["email"], m["role"]) for m in members] == [("charlie@example.com", "admin")]


def test_api_key_cannot_create_a_workspace(team, api):
    raw = make_api_key(team.a, scopes=Scope.values)
    before = state()
    response = api.as_key(raw).post("/api/v1/workspaces/", {"name": "Initech"}, format="json")
    assert_error(response, 403, "API keys cannot create workspaces; sign in.")
    assert state() == before


# --- Objects of another workspace, unknown ids, unsupported methods ------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/members/{g_member}/", None),
        ("patch", "/members/{g_member}/", {"role": "member"}),
        ("delete", "/members/{g_member}/", None),
        ("get", "/invitations/{g_invitation}/", None),
        ("delete", "/invitations/{g_invitation}/", None),
        ("get", "/api-keys/{g_key}/", None),
        ("delete", "/api-keys/{g_key}/", None),
        ("get", "/audit-events/{g_event}/", None),
    ],
)
def test_admin_cannot_reach_another_workspaces_objects_through_their_own(team, ids, api, method, path, body):
    before = state()
    url = ACME + path.format(**ids.url)
    response = getattr(api.as_user(team.alice), method)(url, body, format="json")
    assert_error(response, 404, code="not_found")
    assert state() == before


@pytest.mark.parametrize(
    "path", ["/members/{g_member}/", "/invitations/{g_invitation}/", "/api-keys/{g_key}/", "/audit-events/{g_event}/"]
)
def test_api_key_cannot_read_another_workspaces_objects_through_its_own(team, ids, api, path):
    raw = make_api_key(team.a, scopes=["read"])
    response = api.as_key(raw).get(ACME + path.format(**ids.url))
    assert_error(response, 404, code="not_found")


def test_non_member_cannot_tell_an_existing_workspace_from_a_missing_one(team, api):
    client = api.as_user(team.charlie)
    existing = client.get("/api/v1/workspaces/acme/members/")
    missing = client.get("/api/v1/workspaces/no-such-place/members/")
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize("collection", ["members", "invitations", "api-keys", "audit-events"])
def test_unknown_object_is_not_found_in_the_error_shape(team, api, collection):
    response = api.as_user(team.alice).get(f"{ACME}/{collection}/00000000-0000-0000-0000-000000000000/")
    assert_error(response, 404, code="not_found")


@pytest.mark.parametrize("collection", ["members", "invitations", "api-keys", "audit-events"])
def test_id_that_is_not_a_uuid_is_not_found(team, api, collection):
    assert api.as_user(team.alice).get(f"{ACME}/{collection}/not-a-uuid/").status_code == 404


@pytest.mark.parametrize(
    ("person", "method", "path"),
    [
        ("alice", "post", "/audit-events/"),
        ("alice", "put", "/members/{bob}/"),
        ("alice", "post", "/members/"),
        ("bob", "get", "/leave"),
    ],
)
def test_unsupported_method_is_refused_in_the_error_shape(team, ids, api, person, method, path):
    before = state()
    response = getattr(api.as_user(getattr(team, person)), method)(ACME + path.format(**ids.url))
    assert_error(response, 405, code="method_not_allowed")
    assert state() == before


# --- CSRF --------------------------------------------------------------------------------


@pytest.fixture
def strict_client():
    return APIClient(enforce_csrf_checks=True)


def test_session_write_without_csrf_token_is_refused(team, strict_client):
    strict_client.force_login(team.alice)
    before = state()
    response = strict_client.patch(f"{ACME}/", {"name": "Hijacked"}, format="json")
    assert_error(response, 403, "CSRF Failed")
    assert state() == before


def test_session_write_with_the_pages_csrf_token_is_accepted(team, strict_client):
    strict_client.force_login(team.alice)
    strict_client.get("/w/acme/admin/")  # any page with a form sets the CSRF cookie
    token = strict_client.cookies["csrftoken"].value
    response = strict_client.patch(f"{ACME}/", {"name": "Acme Corp"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert Workspace.objects.get(slug="acme").name == "Acme Corp"


def test_api_key_write_needs_no_csrf_token(team, strict_client):
    strict_client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(team.a, scopes=['write'])}")
    response = strict_client.post(f"{ACME}/oauth-clients/", generic_body(), format="json")
    assert response.status_code == 201, response.content
