"""The token API's short way (common/fastpath.py): an API key's ``GET …/token`` skips the browser
middleware and DRF's dispatch, yet answers exactly as the DRF view does, checks tenancy the same
way, reads at most one row, and stops accepting a revoked key within API_KEY_CACHE_SECONDS."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.services import Actor
from connections import api as connections_api
from connections.models import Connection, Status
from connections.services import connection_create, connection_disconnect
from tests.factories import make_api_key
from tests.refresh.helpers import compressed_exact, connect, token_url
from workspaces import keycache
from workspaces.models import ApiKey

pytestmark = compressed_exact

# Headers both ways must agree on (Date, X-Request-ID and the like differ by nature).
COMPARED = ("Content-Type", "Cache-Control", "Vary", "Allow", "WWW-Authenticate", "Retry-After", "X-Frame-Options")


@pytest.fixture(autouse=True)
def empty_key_cache():
    keycache.clear()
    yield
    keycache.clear()


@pytest.fixture
def fresh(team, exact_client, exact):
    return connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=38)


@pytest.fixture
def drf_calls(monkeypatch):
    """Counts the requests the DRF view served (the short way does not go there)."""
    calls = []
    original = connections_api.ConnectionViewSet.initial

    def initial(self, request, *args, **kwargs):
        calls.append(kwargs.get("pk"))
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(connections_api.ConnectionViewSet, "initial", initial)
    return calls


def both_ways(client, url: str, **headers):
    """The same request the short way (no query string) and through DRF (a query string DRF ignores)."""
    fast = client.get(url, **headers)
    slow = client.get(f"{url}?via=drf", **headers)
    return fast, slow


def assert_alike(fast, slow):
    assert fast.status_code == slow.status_code
    assert fast.content == slow.content
    for name in COMPARED:
        assert fast.get(name) == slow.get(name), name
    assert fast["X-Request-ID"] and slow["X-Request-ID"]


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_a_key_gets_its_token_the_short_way_with_the_same_answer_as_drf(client, team, fresh, drf_calls):
    raw = make_api_key(team.a, scopes=["tokens"])

    fast, slow = both_ways(client, token_url(fresh), **bearer(raw))

    assert fast.status_code == 200
    assert fast.json()["access_token"] == fresh.access_token
    assert fast["Cache-Control"] == "no-store"
    assert_alike(fast, slow)
    assert drf_calls == [str(fresh.id)]  # only the request with a query string went through DRF


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("unknown key", 401, "authentication_failed"),
        ("malformed header", 401, "authentication_failed"),
        ("key of another workspace", 404, "not_found"),
        ("key without the tokens scope", 403, "permission_denied"),
        ("unknown connection", 404, "not_found"),
        ("id with dashes in the wrong places", 404, "not_found"),
        ("connection of another workspace", 404, "not_found"),
    ],
)
def test_every_refusal_is_the_same_both_ways(client, team, fresh, exact_client, case, status, code):
    url, raw = token_url(fresh), make_api_key(team.a, scopes=["tokens"])
    headers = bearer(raw)
    if case == "unknown key":
        headers = bearer(raw[:-4] + "AAAA")
    elif case == "malformed header":
        headers = {"HTTP_AUTHORIZATION": f"Bearer {raw} extra"}
    elif case == "key of another workspace":
        headers = bearer(make_api_key(team.b, scopes=["tokens"]))
    elif case == "key without the tokens scope":
        headers = bearer(make_api_key(team.a, scopes=["read", "write"]))
    elif case == "unknown connection":
        url = url.replace(str(fresh.id), "00000000-0000-4000-8000-000000000000")
    elif case == "id with dashes in the wrong places":
        url = url.replace(str(fresh.id), "-" * 36)
    elif case == "connection of another workspace":
        url = url.replace("/acme/", "/globex/")
        headers = bearer(make_api_key(team.b, scopes=["tokens"]))

    fast, slow = both_ways(client, url, **headers)

    assert fast.status_code == status, fast.content
    assert fast.json()["error"]["code"] == code
    assert_alike(fast, slow)
    if status == 401:
        assert fast["WWW-Authenticate"] == 'Bearer realm="tokenkeeper"'


def test_unusable_connections_are_the_same_409_both_ways(client, team, exact_client, fresh):
    raw = make_api_key(team.a, scopes=["tokens"])
    pending = connection_create(
        workspace=team.a, oauth_client=exact_client, name="Pending", owner=team.alice, actor=Actor(user=team.alice)
    )
    connection_disconnect(workspace=team.a, connection=fresh, actor=Actor(user=team.alice))

    for connection, code in ((pending, "pending"), (fresh, "revoked")):
        fast, slow = both_ways(client, token_url(connection), **bearer(raw))
        assert (fast.status_code, fast.json()["error"]["code"]) == (409, code)
        assert_alike(fast, slow)


def test_an_expired_failing_token_is_the_same_503_with_retry_after_both_ways(client, team, fresh, exact):
    now = timezone.now()
    Connection.objects.filter(pk=fresh.pk).update(
        status=Status.REFRESH_FAILING,
        access_token_expires_at=now - timedelta(seconds=1),
        refresh_due_at=now + timedelta(seconds=30),
        last_error="The provider answered HTTP 500 (server_error).",
        last_error_at=now,
    )

    fast, slow = both_ways(client, token_url(fresh), **bearer(make_api_key(team.a, scopes=["tokens"])))

    assert fast.status_code == 503
    assert 25 <= int(fast["Retry-After"]) <= 30
    assert fast.json() == slow.json()
    assert exact.count() == 0


def test_a_member_session_goes_through_drf_and_sees_only_their_connections(team, fresh, exact_client, exact, api):
    bobs = connect(exact_client, exact, name="Bob's", owner=team.bob, remaining=38)
    member = api.as_user(team.bob)

    assert member.get(token_url(bobs)).status_code == 200
    assert member.get(token_url(fresh)).status_code == 404  # Alice's


def test_a_seen_key_costs_one_query_and_an_unseen_one_two(
    client, team, fresh, django_assert_num_queries, django_assert_max_num_queries
):
    headers = bearer(make_api_key(team.a, scopes=["tokens"]))
    client.get(token_url(fresh), **headers)  # last use recorded: no write for a minute
    keycache.clear()

    with django_assert_max_num_queries(2):
        assert client.get(token_url(fresh), **headers).status_code == 200
    with django_assert_num_queries(1):
        assert client.get(token_url(fresh), **headers).status_code == 200


def test_a_key_revoked_here_stops_at_once(client, api, team, fresh):
    key_raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(key_raw)).status_code == 200
    key = ApiKey.objects.get(prefix=key_raw.split("_")[1])

    assert api.as_user(team.alice).delete(f"/api/v1/workspaces/acme/api-keys/{key.id}").status_code == 200

    assert client.get(token_url(fresh), **bearer(key_raw)).status_code == 401


def test_a_key_revoked_by_another_process_stops_within_the_cache_lifetime(client, team, fresh, settings, monkeypatch):
    assert settings.API_KEY_CACHE_SECONDS == 5
    key_raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(key_raw)).status_code == 200
    ApiKey.objects.update(revoked_at=timezone.now())  # what another web process's revocation leaves here

    assert client.get(token_url(fresh), **bearer(key_raw)).status_code == 200  # read 0 s ago: still trusted

    later = keycache.time.monotonic() + 5.1
    monkeypatch.setattr(keycache.time, "monotonic", lambda: later)
    assert client.get(token_url(fresh), **bearer(key_raw)).status_code == 401


def test_the_cache_checks_the_secret_not_only_the_prefix(client, team, fresh):
    key_raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(key_raw)).status_code == 200

    forged = key_raw[: key_raw.rindex("_") + 1] + "x" * 43  # same prefix, another secret
    assert client.get(token_url(fresh), **bearer(forged)).status_code == 401


def test_a_key_is_used_at_most_once_a_minute_per_process_in_the_database(client, team, fresh):
    key_raw = make_api_key(team.a, scopes=["tokens"])
    client.get(token_url(fresh), **bearer(key_raw))
    first = ApiKey.objects.get().last_used_at
    keycache.clear()  # another process, or this one after its entry expired

    client.get(token_url(fresh), **bearer(key_raw))

    assert ApiKey.objects.get().last_used_at == first
