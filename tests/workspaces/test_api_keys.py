"""API keys are shown once, stored as prefix + SHA-256, revocable, and record their use."""

import hashlib

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from tests.factories import make_api_key
from tests.helpers import assert_error
from tests.workspaces.helpers import key_row
from workspaces.models import ApiKey

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/workspaces/acme/api-keys/"


@pytest.fixture
def created(team, api):
    """A key Alice creates through the API: (raw key, creation response body)."""
    response = api.as_user(team.alice).post(KEYS, {"name": "Nightly ETL", "scopes": ["read", "tokens"]}, format="json")
    assert response.status_code == 201
    return response.json()["key"], response.json()


def secret_part(raw: str) -> str:
    return raw.split("_", 2)[2]


def all_rows(table: str) -> str:
    """Every column of every row of a table, as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - a model's table name
        return repr(cursor.fetchall())


def test_created_key_is_shown_once_and_works(api, created):
    raw, body = created
    assert (body["name"], body["scopes"]) == ("Nightly ETL", ["read", "tokens"])
    assert raw.startswith(body["prefix"].rstrip("…"))
    assert api.as_key(raw).get("/api/v1/workspaces/acme/members/").status_code == 200


def test_key_list_detail_and_revocation_never_show_the_key(team, api, created):
    raw, body = created
    client = api.as_user(team.alice)
    responses = [client.get(KEYS), client.get(f"{KEYS}{body['id']}/"), client.delete(f"{KEYS}{body['id']}/")]
    for response in responses:
        assert response.status_code == 200
        assert secret_part(raw) not in response.content.decode()
    shown = [responses[0].json()["results"][0], responses[1].json(), responses[2].json()]
    assert all("key" not in item for item in shown)
    assert {item["prefix"] for item in shown} == {f"tk_{raw.split('_')[1]}_…"}


def test_key_page_in_the_browser_never_shows_the_key_after_creation(team, client, created):
    raw, _ = created
    client.force_login(team.alice)
    page = client.get("/w/acme/admin/api-keys/").content.decode()
    assert "Nightly ETL" in page
    assert secret_part(raw) not in page


def test_key_created_in_the_browser_is_shown_once(team, client):
    client.force_login(team.alice)
    response = client.post("/w/acme/admin/api-keys/", {"name": "Reports", "scopes": ["read"]}, follow=True)
    assert response.redirect_chain == [("/w/acme/admin/api-keys/", 302)]
    assert response["Cache-Control"] == "no-store"
    raw = response.content.decode().split('<code id="new-key-value">')[1].split("<")[0]
    assert raw.startswith("tk_")
    assert key_row(raw).name == "Reports"
    # Reloading the page shows the key no more and creates nothing.
    reloaded = client.get("/w/acme/admin/api-keys/").content.decode()
    assert secret_part(raw) not in reloaded and 'id="new-key"' not in reloaded
    assert ApiKey.objects.filter(workspace=team.a).count() == 1


def test_the_new_key_waits_for_the_next_page_encrypted(team, client):
    client.force_login(team.alice)
    client.post("/w/acme/admin/api-keys/", {"name": "Reports", "scopes": ["read"]})
    stash = client.session["new_api_key"]
    raw = client.get("/w/acme/admin/api-keys/").content.decode().split('<code id="new-key-value">')[1].split("<")[0]
    assert secret_part(raw) not in str(stash)
    assert "new_api_key" not in client.session


def test_a_second_active_key_with_the_same_name_is_refused(team, client, api):
    client.force_login(team.alice)
    client.post("/w/acme/admin/api-keys/", {"name": "Reports", "scopes": ["read"]})
    page = client.post("/w/acme/admin/api-keys/", {"name": "reports", "scopes": ["tokens"]}).content.decode()
    assert "already has an active key named “reports”" in page
    response = api.as_user(team.alice).post(KEYS, {"name": "REPORTS", "scopes": ["read"]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "duplicate_name"
    assert ApiKey.objects.filter(workspace=team.a).count() == 1
    # Another workspace, or after revoking the first, the name is free.
    assert (
        api.as_user(team.charlie)
        .post("/api/v1/workspaces/globex/api-keys/", {"name": "Reports", "scopes": ["read"]}, format="json")
        .status_code
        == 201
    )
    ApiKey.objects.filter(workspace=team.a).update(revoked_at=timezone.now())
    assert api.as_user(team.alice).post(KEYS, {"name": "Reports", "scopes": ["read"]}, format="json").status_code == 201


def test_database_holds_only_the_prefix_and_hash(created):
    raw, body = created
    key = ApiKey.objects.get(id=body["id"])
    assert key.prefix == raw.split("_")[1]
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert secret_part(raw) not in all_rows(ApiKey._meta.db_table)


def test_audit_trail_never_holds_the_key(team, api, created):
    raw, body = created
    api.as_key(raw).get("/api/v1/workspaces/acme/")
    api.as_user(team.alice).delete(f"{KEYS}{body['id']}/")
    assert AuditEvent.objects.filter(action__startswith="api_key.").count() == 2
    assert secret_part(raw) not in all_rows(AuditEvent._meta.db_table)


def test_key_authenticates_and_records_its_last_use(team, api, created):
    raw, body = created
    assert key_row(raw).last_used_at is None
    response = api.as_key(raw).get("/api/v1/workspaces/acme/members/")
    assert response.status_code == 200
    assert key_row(raw).last_used_at is not None
    shown = api.as_user(team.alice).get(f"{KEYS}{body['id']}/").json()
    assert shown["last_used_at"] is not None


def test_revoked_key_is_refused(team, api, created):
    raw, body = created
    api.as_user(team.alice).delete(f"{KEYS}{body['id']}/")
    response = api.as_key(raw).get("/api/v1/workspaces/acme/")
    assert_error(response, 401, "The API key is not valid or has been revoked.", code="authentication_failed")


def test_revoking_a_key_twice_says_it_is_already_revoked(team, api, created):
    _, body = created
    client = api.as_user(team.alice)
    client.delete(f"{KEYS}{body['id']}/")
    assert_error(client.delete(f"{KEYS}{body['id']}/"), 400, "This key is already revoked.")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda raw: raw[:-1] + ("B" if raw.endswith("A") else "A"), id="wrong-secret"),
        pytest.param(lambda raw: raw + "x", id="longer-secret"),
        pytest.param(lambda raw: raw.rsplit("_", 1)[0] + "_", id="no-secret"),
        pytest.param(lambda raw: "tk_000000000000_" + secret_part(raw), id="unknown-prefix"),
        pytest.param(lambda raw: "not-a-key", id="garbage"),
    ],
)
def test_key_with_a_valid_prefix_but_wrong_secret_is_refused(team, api, created, tamper):
    raw, _ = created
    response = api.as_key(tamper(raw)).get("/api/v1/workspaces/acme/")
    assert_error(response, 401, "The API key is not valid or has been revoked.")
    assert key_row(raw).last_used_at is None


def test_malformed_authorization_header_is_refused(team, api):
    raw = make_api_key(team.a, scopes=["read"])
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw} extra")
    response = api.get("/api/v1/workspaces/acme/")
    assert_error(response, 401, "Send the key as `Authorization: Bearer <key>`.")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "", "scopes": ["read"]}, "This field may not be blank."),
        ({"name": "ETL", "scopes": []}, "This list may not be empty."),
        ({"name": "ETL", "scopes": ["admin"]}, '"admin" is not a valid choice.'),
    ],
)
def test_key_with_bad_name_or_scopes_is_not_created(team, api, body, message):
    before = (ApiKey.objects.count(), AuditEvent.objects.count())
    response = api.as_user(team.alice).post(KEYS, body, format="json")
    assert_error(response, 400, message, code="invalid")
    assert (ApiKey.objects.count(), AuditEvent.objects.count()) == before
