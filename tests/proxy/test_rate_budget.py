"""Exact Online's rate budget kept by the proxy: per (client id, division), in Redis, shared by
every caller and process, seeded from Exact's headers, refused by Tokenkeeper itself when spent."""

import threading
import time
import urllib.error
import urllib.request

import pytest

from connections import ratebudget
from oauthclients.providers.base import ApiRateLimits
from tests.fixtures.connections import make_exact_client
from tests.fixtures.peers import EXACT_CLIENT_ID, exact_online
from tests.proxy.helpers import DIVISION, accounts, exact_connection_with_division, proxy_url, tokens_client
from tests.proxy.live import LiveServer

pytestmark = pytest.mark.usefixtures("budgets")


class FrozenClock:
    """The emulator's clock stands still inside one minute, so its own minute never rolls over mid-test."""

    def __init__(self):
        self.value = time.time()

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def frozen_exact(redirect_uri):
    with exact_online(redirect_uri=redirect_uri, clock=FrozenClock()) as emulator:
        yield emulator


@pytest.fixture
def connection(team, frozen_exact):
    client = make_exact_client(team.a, team.alice, frozen_exact)
    return exact_connection_with_division(client, frozen_exact, owner=team.alice)


def data_calls(exact) -> list:
    return [r for r in exact.api_requests if r.division]


def test_the_61st_call_in_a_minute_is_answered_by_tokenkeeper_across_two_keys(team, connection, frozen_exact):
    first, second = tokens_client(team.a), tokens_client(team.a)

    answers = [(first if i % 2 else second).get(accounts(connection)) for i in range(60)]
    refused = first.get(accounts(connection))

    assert [a.status_code for a in answers] == [200] * 60
    assert refused.status_code == 429
    assert "X-Tokenkeeper-Proxy" not in refused  # Tokenkeeper's answer, not Exact's
    assert refused.json()["error"]["code"] == "rate_budget_spent"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["X-RateLimit-Minutely-Remaining"] == "0"
    assert int(refused["X-RateLimit-Minutely-Reset"]) > time.time() * 1000
    assert len(data_calls(frozen_exact)) == 60
    assert all(r.status == 200 for r in frozen_exact.api_requests)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_budget_is_shared_by_two_processes(team, connection, frozen_exact, tmp_path):
    server = LiveServer(tmp_path).wait_ready()
    try:
        here = tokens_client(team.a)
        there_key = tokens_client(team.a)._credentials["HTTP_AUTHORIZATION"]

        def call_there(path: str) -> tuple[int, dict]:
            request = urllib.request.Request(server.url + path, headers={"Authorization": there_key})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()
                    return answer.status, dict(answer.headers)
            except urllib.error.HTTPError as error:
                error.read()
                return error.code, dict(error.headers)

        statuses_here = [here.get(accounts(connection)).status_code for _ in range(30)]
        statuses_there = [call_there(accounts(connection))[0] for _ in range(30)]
        status, headers = call_there(accounts(connection))
        refused_here = here.get(accounts(connection))

        # The live server refuses encoded slashes that only the raw request line shows.
        encoded, _ = call_there(proxy_url(connection, f"{DIVISION}%2Fcrm/Accounts"))
    finally:
        server.stop()

    assert statuses_here == [200] * 30 and statuses_there == [200] * 30
    assert status == 429 and "X-Tokenkeeper-Proxy" not in headers and int(headers["Retry-After"]) >= 1
    assert refused_here.status_code == 429
    assert len(data_calls(frozen_exact)) == 60
    assert encoded == 400


@pytest.mark.exact_online(minutely_limit=5)
def test_the_budget_is_seeded_from_exacts_headers(team, exact_client, exact):
    """Exact says 5 a minute: Tokenkeeper learns it from the first answer and refuses the 6th itself."""
    connection = exact_connection_with_division(exact_client, exact, owner=team.alice)
    api = tokens_client(team.a)

    statuses = [api.get(accounts(connection)).status_code for _ in range(6)]

    assert statuses == [200] * 5 + [429]
    assert len(data_calls(exact)) == 5 and all(r.status == 200 for r in exact.api_requests)


@pytest.mark.exact_online(daily_limit=3)
def test_a_spent_day_is_refused_with_the_daily_headers(team, exact_client, exact):
    connection = exact_connection_with_division(exact_client, exact, owner=team.alice)
    api = tokens_client(team.a)

    statuses = [api.get(accounts(connection)).status_code for _ in range(3)]
    refused = api.get(accounts(connection))

    assert statuses == [200] * 3
    assert refused.status_code == 429
    assert refused["X-RateLimit-Remaining"] == "0" and int(refused["X-RateLimit-Reset"]) > time.time() * 1000
    assert len(data_calls(exact)) == 3


def test_calls_outside_a_division_are_not_counted(team, connection, frozen_exact):
    api = tokens_client(team.a)

    statuses = [api.get(proxy_url(connection, "current/Me")).status_code for _ in range(65)]

    assert statuses == [200] * 65


def test_two_connections_of_one_app_and_division_share_the_budget(team, connection, frozen_exact):
    frozen_exact.add_user("piet@example.nl", full_name="Piet Jansen", divisions=[DIVISION])
    other = exact_connection_with_division(
        connection.oauth_client, frozen_exact, owner=team.alice, name="Jansen tweede", user="piet@example.nl"
    )
    api = tokens_client(team.a)

    for i in range(60):
        assert api.get(accounts(connection if i % 2 else other)).status_code == 200

    assert api.get(accounts(other)).status_code == 429


def test_taking_is_atomic_under_concurrency(budgets):
    limits = ApiRateLimits(per_minute=60, per_day=5000)
    allowed = []

    def worker():
        for _ in range(10):
            allowed.append(ratebudget.take(EXACT_CLIENT_ID, "999", limits).allowed)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert allowed.count(True) == 60 and allowed.count(False) == 60


def test_the_remaining_budget_is_on_the_connection(team, connection, frozen_exact, people):
    api = tokens_client(team.a)
    for _ in range(3):
        assert api.get(accounts(connection)).status_code == 200

    body = (
        tokens_client(team.a, scopes=("read",))
        .get(f"/api/v1/workspaces/{team.a.slug}/connections/{connection.id}")
        .json()
    )
    page = people.alice.get(f"/w/{team.a.slug}/connections/{connection.id}/").content.decode()

    assert body["rate_budget"]["minutely_remaining"] == 57
    assert body["rate_budget"]["daily_remaining"] == 4997
    assert body["rate_budget"]["minutely_reset"] > time.time() * 1000
    assert 'id="rate-budget"' in page and "57 of 60 this minute" in page


def test_providers_without_limits_have_no_budget(team, exact_connection):
    body = (
        tokens_client(team.a, scopes=("read",))
        .get(f"/api/v1/workspaces/{team.a.slug}/connections/{exact_connection.id}")
        .json()
    )

    assert body["rate_budget"] is None  # no division yet


def test_redis_is_asked_to_seed_only_when_exact_says_something_new(team, connection, frozen_exact, monkeypatch):
    client = ratebudget._redis()
    seeds = []
    original = client.seed_script
    monkeypatch.setattr(client, "seed_script", lambda **kwargs: seeds.append(kwargs) or original(**kwargs))
    api = tokens_client(team.a)

    statuses = [api.get(accounts(connection)).status_code for _ in range(5)]

    assert statuses == [200] * 5
    # The first answer brings Exact's reset times; after that Exact's counts are Tokenkeeper's own.
    assert len(seeds) == 1
    budget = ratebudget.read(connection.oauth_client.client_id, str(DIVISION), ApiRateLimits(60, 5000))
    assert budget.minutely_remaining == 55 and budget.daily_remaining == 4995


def test_a_guessed_window_that_ends_when_exacts_does_is_not_mistaken_for_exacts(budgets):
    """Tokenkeeper's guess for a window it has not heard of (now + 60 s) can end in the very
    millisecond Exact's does: Exact's count must still win over the guessed one."""
    limits = ApiRateLimits(per_minute=60, per_day=5000)
    taken = ratebudget.take(EXACT_CLIENT_ID, "777", limits)  # a guessed window: 59 left
    reset = taken.budget.minutely_reset

    ratebudget.seed(
        EXACT_CLIENT_ID,
        "777",
        {"X-RateLimit-Minutely-Remaining": "500", "X-RateLimit-Minutely-Reset": str(reset)},
        known=taken.budget,
    )
    after = ratebudget.read(EXACT_CLIENT_ID, "777", limits)

    assert after.minutely_remaining == 500 and after.minutely_reset == reset
    # Within a window Exact named, the lower count is kept (calls taken since Exact counted).
    ratebudget.take(EXACT_CLIENT_ID, "777", limits)
    ratebudget.seed(
        EXACT_CLIENT_ID, "777", {"X-RateLimit-Minutely-Remaining": "800", "X-RateLimit-Minutely-Reset": str(reset)}
    )
    assert ratebudget.read(EXACT_CLIENT_ID, "777", limits).minutely_remaining == 499


def test_without_redis_the_call_goes_through_and_exacts_headers_come_back(team, connection, frozen_exact, monkeypatch):
    def away(*args, **kwargs):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(ratebudget, "take", away)
    monkeypatch.setattr(ratebudget, "seed", away)

    response = tokens_client(team.a).get(accounts(connection))

    assert response.status_code == 200
    assert response["X-RateLimit-Minutely-Remaining"] == "59"
