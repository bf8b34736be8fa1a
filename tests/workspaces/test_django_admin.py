"""Support staff see keys and invitations in the Django admin, never their hashes or secrets."""

import pytest

from tests.factories import UserFactory
from tests.workspaces.helpers import key_row
from workspaces.models import Invitation

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(email="support@example.com", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def raw_key(team, api):
    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/api-keys/", {"name": "Nightly ETL", "scopes": ["read"]}, format="json"
    )
    return response.json()["key"]


@pytest.fixture
def invitation(team, api):
    response = api.as_user(team.alice).post(
        "/api/v1/workspaces/acme/invitations/", {"email": "dave@example.com"}, format="json"
    )
    token = response.json()["accept_url"].rstrip("/").rsplit("/", 1)[1]
    return response.json()["id"], token


def pages_about(staff_client, model: str, object_id) -> list[str]:
    urls = [
        f"/django-admin/workspaces/{model}/",
        f"/django-admin/workspaces/{model}/?q=acme",
        f"/django-admin/workspaces/{model}/{object_id}/change/",
    ]
    responses = [staff_client.get(url) for url in urls]
    assert [r.status_code for r in responses] == [200, 200, 200]
    return [r.content.decode() for r in responses]


def test_staff_see_api_keys_by_prefix_but_never_hash_or_secret(staff_client, raw_key):
    key = key_row(raw_key)
    pages = pages_about(staff_client, "apikey", key.id)
    assert f"tk_{key.prefix}_…" in pages[0]
    for page in pages:
        assert "Nightly ETL" in page
        assert key.key_hash not in page
        assert raw_key not in page
        assert "key_hash" not in page


def test_staff_see_invitations_but_never_their_token_or_hash(staff_client, invitation):
    invitation_id, token = invitation
    token_hash = Invitation.objects.get(id=invitation_id).token_hash
    for page in pages_about(staff_client, "invitation", invitation_id):
        assert "dave@example.com" in page
        assert token_hash not in page
        assert token not in page
        assert "token_hash" not in page


def test_staff_audit_log_never_shows_a_key(staff_client, raw_key):
    page = staff_client.get("/django-admin/audit/auditevent/").content.decode()
    assert "api_key.created" in page
    assert raw_key.split("_", 2)[2] not in page


def test_staff_cannot_edit_keys_or_invitations_in_the_admin(staff_client, raw_key, invitation):
    key = key_row(raw_key)
    response = staff_client.post(f"/django-admin/workspaces/apikey/{key.id}/change/", {"name": "Renamed"})
    assert response.status_code == 403
    assert key_row(raw_key).name == "Nightly ETL"
    assert staff_client.get("/django-admin/workspaces/invitation/add/").status_code == 403
