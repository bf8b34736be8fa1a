"""/metrics: Prometheus text for internal callers or the METRICS_TOKEN holder, with the series
docs/deploy.md promises, merged over every process of the host (a real worker's included)."""

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from audit.services import Actor
from common import health
from connections.models import Status
from connections.services import connection_create
from connections.tasks import refresh_sweep
from tests.refresh.helpers import compressed_exact, connect, refreshes, token_url, tokens_client, wait_until

pytestmark = compressed_exact


def scrape(client=None, **headers) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one /metrics answer."""
    health._collectors.cache_clear()  # the connection gauges are kept 10 s per process
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- Who may read them ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_internal_addresses_may_read_metrics_without_a_token(client):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {"REMOTE_ADDR": "203.0.113.7"},
        {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"},  # through a proxy on this host
        {"REMOTE_ADDR": "10.0.0.5", "HTTP_FORWARDED": "for=203.0.113.7"},
    ],
    ids=["public address", "through a proxy", "forwarded"],
)
def test_others_get_403_in_the_api_error_shape(client, headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.django_db
def test_with_a_metrics_token_only_its_holder_may_read(client, settings):
    settings.METRICS_TOKEN = "m3tr1cs-T0ken"

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer m3tr1cs-T0ken", REMOTE_ADDR="203.0.113.7").status_code == 200
    )


# --- What they say -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_count_token_answers_refreshes_sweeps_and_show_connections(team, exact_client, exact):
    before = scrape()
    fresh = connect(exact_client, exact, name="Fresh", owner=team.alice, remaining=38)
    due = connect(exact_client, exact, name="Due", owner=team.alice, remaining=20)
    connection_create(
        workspace=team.a, oauth_client=exact_client, name="Pending", owner=team.alice, actor=Actor(user=team.alice)
    )
    api = tokens_client(team.a)
    assert api.get(token_url(fresh)).status_code == 200  # the short way
    assert api.get(token_url(due)).status_code == 200  # refreshed on demand
    assert api.get(token_url(fresh) + "?via=drf").status_code == 200  # through DRF
    assert api.get(token_url(fresh).replace(str(fresh.id), "00000000-0000-4000-8000-000000000000")).status_code == 404
    refresh_sweep()
    assert refreshes(exact, "ok") == 1

    after = scrape()

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tokenkeeper_token_api_responses_total", status="200") == 3
    assert grew("tokenkeeper_token_api_responses_total", status="404") == 1
    assert grew("tokenkeeper_token_api_duration_seconds_count") == 4
    assert grew("tokenkeeper_refreshes_total", provider="exact_online", outcome="refreshed") == 1
    assert grew("tokenkeeper_refresh_lead_seconds_count", provider="exact_online") == 1
    # Refreshed with ~20 s left: inside Exact's 30 s window, in the (15, 20] or (20, 25] bucket.
    assert grew("tokenkeeper_refresh_lead_seconds_bucket", provider="exact_online", le="25.0") == 1
    assert grew("tokenkeeper_refresh_lead_seconds_bucket", provider="exact_online", le="10.0") == 0
    assert grew("tokenkeeper_token_endpoint_responses_total", provider="exact_online", status="200") == 1
    assert grew("tokenkeeper_sweep_duration_seconds_count") == 1
    assert value(after, "tokenkeeper_refresh_window_seconds", provider="exact_online") == 30
    assert value(after, "tokenkeeper_connections", status=Status.ACTIVE) == 2
    assert value(after, "tokenkeeper_connections", status=Status.PENDING) == 1
    assert value(after, "tokenkeeper_refresh_due_backlog") == 0
    assert 0 <= value(after, "tokenkeeper_last_sweep_age_seconds") < 5


@pytest.mark.django_db
def test_provider_failures_are_counted_by_status(team, exact_client, exact):
    due = connect(exact_client, exact, name="Due", owner=team.alice, remaining=20)
    before = scrape()
    exact.fail_next(1, status=503)

    tokens_client(team.a).get(token_url(due))

    after = scrape()
    assert (
        value(after, "tokenkeeper_token_endpoint_responses_total", provider="exact_online", status="503")
        - value(before, "tokenkeeper_token_endpoint_responses_total", provider="exact_online", status="503")
        == 1
    )
    assert (
        value(after, "tokenkeeper_refreshes_total", provider="exact_online", outcome="failed")
        - value(before, "tokenkeeper_refreshes_total", provider="exact_online", outcome="failed")
        == 1
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_metrics_include_what_a_worker_process_counted(team, exact_client, exact, celery):
    """The worker and beat run as other processes; this process refreshes nothing itself."""
    before = scrape()
    for process in (celery.worker(wait=False), celery.beat(wait=False)):
        process.wait_ready()
    connect(exact_client, exact, name="Due soon", owner=team.alice, remaining=27)

    wait_until(lambda: refreshes(exact, "ok") >= 1, timeout=30, message="the worker's refresh")
    refreshed = {"name": "tokenkeeper_refreshes_total", "provider": "exact_online", "outcome": "refreshed"}

    def counted():
        samples = scrape()
        return samples if value(samples, **refreshed) > value(before, **refreshed) else None

    after = wait_until(counted, timeout=10, message="the worker's refresh in /metrics")

    assert value(after, "tokenkeeper_sweep_duration_seconds_count") > value(
        before, "tokenkeeper_sweep_duration_seconds_count"
    )
    assert value(after, "tokenkeeper_refresh_lead_seconds_count", provider="exact_online") > value(
        before, "tokenkeeper_refresh_lead_seconds_count", provider="exact_online"
    )
    assert value(after, "tokenkeeper_last_sweep_age_seconds") < 5
