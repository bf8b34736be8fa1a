import pytest

pytestmark = pytest.mark.django_db


def test_member_lists_members_and_outsider_gets_404(team, api):
    response = api.as_user(team.bob).get("/api/v1/workspaces/acme/members/")
    assert response.status_code == 200
    assert {m["email"] for m in response.json()["results"]} == {"alice@example.com", "bob@example.com"}
    response = api.as_user(team.charlie).get("/api/v1/workspaces/acme/members/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_anonymous_gets_401(api, team):
    response = api.anonymous().get("/api/v1/workspaces/acme/members/")
    assert response.status_code == 401


def test_api_key_create_then_use(team, api):
    response = api.as_user(team.alice).post("/api/v1/workspaces/acme/api-keys/", {"name": "etl", "scopes": ["read"]},
                                            format="json")
    assert response.status_code == 201, response.json()
    raw = response.json()["key"]
    response = api.as_key(raw).get("/api/v1/workspaces/acme/members/")
    assert response.status_code == 200
    assert api.as_key(raw).get("/api/v1/workspaces/globex/members/").status_code == 404
    assert api.as_key(raw).patch("/api/v1/workspaces/acme/", {"name": "x"}, format="json").status_code == 403
