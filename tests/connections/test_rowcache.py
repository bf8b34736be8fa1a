"""The connection rows a web process keeps for a second (connections/rowcache.py): a busy key's
token and proxy requests read no row, yet a lifecycle change made anywhere reaches every process at
once through Redis, a due copy still goes the on-demand way, copies never cross workspaces, and
without the subscription nothing is kept."""

import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.services import Actor
from common import metrics
from connections import rowcache
from connections.models import Connection, Status
from connections.services import connection_disconnect
from tests.factories import make_api_key
from tests.fixtures.services import CI, _redis_reachable
from tests.proxy.helpers import proxy_url
from tests.proxy.live import LiveServer
from tests.refresh.helpers import compressed_exact, connect, token_url
from workspaces import keycache

pytestmark = compressed_exact


@pytest.fixture(autouse=True)
def cache_on(settings):
    """The cache as production has it (the test settings turn it off), listening to this run's channel."""
    if not settings.REDIS_URL or not _redis_reachable(settings.REDIS_URL):
        if CI:
            pytest.fail("CI must run this test, but it needs a reachable Redis (REDIS_URL=redis://…).", pytrace=False)
        pytest.skip("needs a reachable Redis (REDIS_URL=redis://…)")
    settings.CONNECTION_CACHE_SECONDS = 30.0  # longer than any test: only an announcement explains a change seen
    keycache.clear()
    rowcache.clear()
    assert rowcache.read("probe", None, "probe", lambda: None) is None  # starts this process's listener
    deadline = time.monotonic() + 10
    while not rowcache.listening():
        assert time.monotonic() < deadline, "the row cache's listener did not subscribe"
        time.sleep(0.05)
    yield
    rowcache.clear()
    keycache.clear()


@pytest.fixture
def fresh(team, exact_client, exact):
    return connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=38)


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def announce(connection_id) -> None:
    """What another process's committed lifecycle change sends."""
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).publish(settings.CONNECTION_CACHE_CHANNEL, str(connection_id))


def until(check, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def cache_reads(result: str) -> float:
    return metrics.CONNECTION_CACHE.labels(result)._value.get()


def test_a_busy_keys_token_requests_read_no_row_after_the_first(client, team, fresh):
    raw = make_api_key(team.a, scopes=["tokens"])
    hits, misses = cache_reads("hit"), cache_reads("miss")
    assert client.get(token_url(fresh), **bearer(raw)).status_code == 200  # key and row read

    with CaptureQueriesContext(db) as queries:
        answers = [client.get(token_url(fresh), **bearer(raw)) for _ in range(5)]

    assert [a.status_code for a in answers] == [200] * 5
    assert {a.json()["access_token"] for a in answers} == {fresh.access_token}
    assert len(queries.captured_queries) == 0
    assert (cache_reads("hit") - hits, cache_reads("miss") - misses) == (5, 1)  # tokenkeeper_connection_cache_reads


def test_the_proxy_reads_no_row_either(client, team, fresh, exact):
    raw = make_api_key(team.a, scopes=["tokens"])
    url = proxy_url(fresh, "current/Me")
    assert client.get(url, **bearer(raw)).status_code == 200

    with CaptureQueriesContext(db) as queries:
        again = client.get(url, **bearer(raw))

    assert again.status_code == 200 and again["X-Tokenkeeper-Proxy"] == "provider"
    assert len(queries.captured_queries) == 0
    assert len(exact.api_requests) == 2 and exact.api_requests[-1].status == 200  # the copy's token works


def test_a_change_announced_by_another_process_is_seen_at_once(client, team, fresh):
    raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(raw)).status_code == 200
    Connection.objects.filter(pk=fresh.pk).update(status=Status.REVOKED, access_token="")  # another process's write
    assert client.get(token_url(fresh), **bearer(raw)).status_code == 200  # the copy, until told

    announce(fresh.pk)

    answer = until(lambda: (a := client.get(token_url(fresh), **bearer(raw))).status_code == 409 and a)
    assert answer and answer.json()["error"]["code"] == "revoked"


def test_a_disconnect_here_drops_the_copy_when_it_commits(client, team, fresh, django_capture_on_commit_callbacks):
    raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(raw)).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        connection_disconnect(workspace=team.a, connection=fresh, actor=Actor(user=team.alice))
    answer = client.get(token_url(fresh), **bearer(raw))

    assert answer.status_code == 409 and answer.json()["error"]["code"] == "revoked"


def test_unannounced_changes_are_seen_within_the_lifetime(client, team, fresh, settings):
    settings.CONNECTION_CACHE_SECONDS = 0.5
    raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(raw)).status_code == 200
    Connection.objects.filter(pk=fresh.pk).update(status=Status.NEEDS_REAUTH)

    served_from_copy = client.get(token_url(fresh), **bearer(raw)).status_code
    time.sleep(0.6)
    after = client.get(token_url(fresh), **bearer(raw))

    assert served_from_copy == 200
    assert after.status_code == 409 and after.json()["error"]["code"] == "needs_reauth"


def test_a_copy_that_falls_due_reads_the_row_the_engine_left(client, team, fresh, exact):
    """The engine's routine refresh announces nothing: the copy's own due time sends the request
    the on-demand way, which locks and reads the row, finds it refreshed and serves the new token."""
    Connection.objects.filter(pk=fresh.pk).update(refresh_due_at=timezone.now() + timedelta(seconds=0.3))
    raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(raw)).json()["access_token"] == fresh.access_token
    expires = timezone.now() + timedelta(minutes=10)
    Connection.objects.filter(pk=fresh.pk).update(
        access_token="refreshed-by-the-engine", access_token_expires_at=expires, refresh_due_at=expires
    )
    token_calls = len(exact.token_requests)
    time.sleep(0.4)

    answer = client.get(token_url(fresh), **bearer(raw))

    assert answer.status_code == 200 and answer.json()["access_token"] == "refreshed-by-the-engine"
    assert len(exact.token_requests) == token_calls  # read, not refreshed again


def test_a_copy_never_crosses_workspaces(client, team, fresh):
    raw_a = make_api_key(team.a, scopes=["tokens"])
    raw_b = make_api_key(team.b, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(raw_a)).status_code == 200  # cached for Acme

    in_globex = f"/api/v1/workspaces/globex/connections/{fresh.id}/token"
    assert client.get(in_globex, **bearer(raw_b)).status_code == 404
    assert client.get(token_url(fresh), **bearer(raw_b)).status_code == 404
    assert client.get(proxy_url(fresh, "current/Me", workspace_slug="globex"), **bearer(raw_b)).status_code == 404


def test_without_redis_nothing_is_kept(client, team, fresh, settings):
    settings.REDIS_URL = ""
    raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(raw)).status_code == 200

    off = cache_reads("off")
    with CaptureQueriesContext(db) as queries:
        assert client.get(token_url(fresh), **bearer(raw)).status_code == 200

    assert len(queries.captured_queries) == 1  # the row, every time (the key is in its own cache)
    assert cache_reads("off") - off == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_disconnect_reaches_another_web_process_at_once(team, exact_client, exact, tmp_path):
    """A real second process (gunicorn) holding a copy: the disconnect made here, committed,
    is refused there at once, although its copies live 30 s."""
    fresh = connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=38)
    raw = make_api_key(team.a, scopes=["tokens"])
    server = LiveServer(tmp_path, CONNECTION_CACHE_SECONDS="30").wait_ready()

    def there() -> tuple[int, bytes]:
        request = urllib.request.Request(server.url + token_url(fresh), headers={"Authorization": f"Bearer {raw}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    try:
        # Until the row comes from its copy: a request after an unannounced write still sees the value before it.
        for i in range(200):
            Connection.objects.filter(pk=fresh.pk).update(token_type=f"type{i}")
            cached = there()
            if cached[0] == 200 and f'"type{i}"'.encode() not in cached[1]:
                break
            time.sleep(0.05)
        connection_disconnect(workspace=team.a, connection=fresh, actor=Actor(user=team.alice))  # commits
        refused = until(lambda: (answer := there())[0] == 409 and answer, seconds=2)
    finally:
        server.stop()

    assert cached[0] == 200 and f'"type{i}"'.encode() not in cached[1]  # the other process served its copy
    assert refused and b"revoked" in refused[1]


def test_copies_past_their_lifetime_leave_memory(client, team, exact_client, exact, fresh, settings):
    """No decrypted token stays in the process longer than it is of use (about twice the lifetime)."""
    settings.CONNECTION_CACHE_SECONDS = 0.2
    other = connect(exact_client, exact, name="Other", owner=team.alice, remaining=38)
    raw = make_api_key(team.a, scopes=["tokens"])
    assert client.get(token_url(fresh), **bearer(raw)).status_code == 200
    assert str(fresh.id) in rowcache._entries

    time.sleep(0.45)
    assert client.get(token_url(other), **bearer(raw)).status_code == 200

    assert str(fresh.id) not in rowcache._entries and str(other.id) in rowcache._entries
    # No request comes any more: the listener's wake-ups (at least once a second) drop the rest.
    assert until(lambda: str(other.id) not in rowcache._entries, seconds=2.5)
