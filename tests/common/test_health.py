"""Probes: /healthz says the process is up; /readyz says whether the database and broker answer,
and how long ago the refresh sweep last ran."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from common import health
from common.models import Heartbeat


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_readyz_is_ok_when_database_and_broker_answer(client):
    Heartbeat.beat(health.SWEEP)

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok", "sweep": "ok"}
    assert 0 <= body["last_sweep_age_seconds"] < 5


@pytest.mark.django_db
def test_readyz_reports_a_stale_sweep_without_becoming_unready(client, settings):
    Heartbeat.objects.create(name=health.SWEEP, at=timezone.now() - timedelta(seconds=95))

    body = client.get("/readyz").json()

    assert body["status"] == "ok"  # the web tier still serves tokens; doctor and /metrics raise the alarm
    assert body["checks"]["sweep"] == "stale"
    assert 95 <= body["last_sweep_age_seconds"] < 100


@pytest.mark.django_db
def test_readyz_says_when_no_sweep_ever_ran(client):
    body = client.get("/readyz").json()
    assert (body["checks"]["sweep"], body["last_sweep_age_seconds"]) == ("never", None)


@pytest.mark.django_db
def test_readyz_names_the_broker_when_it_is_unreachable(client, monkeypatch):
    # Celery reads CELERY_BROKER_URL from the environment before its settings:
    # a port nobody listens on is a real connection failure.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL", raising=False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"] == {"database": "ok", "broker": "failing", "sweep": "never"}


@pytest.mark.django_db
def test_readyz_names_the_database_when_it_fails(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "failing", "broker": "ok", "sweep": "never"}
