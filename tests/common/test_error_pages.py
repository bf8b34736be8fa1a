import pytest

pytestmark = pytest.mark.django_db


def test_api_404_for_a_malformed_id_uses_the_error_shape(team, api):
    response = api.as_user(team.alice).get("/api/v1/workspaces/acme/members/not-a-uuid/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_browser_404_is_a_page(team, client):
    client.force_login(team.alice)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"Not found" in response.content
