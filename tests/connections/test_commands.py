"""Operations commands: ``manage.py doctor`` (one line per check, exit code 1 on a problem) and
``manage.py refresh_connection ID`` (respects the provider's window, audited)."""

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from common.health import SWEEP
from common.models import Heartbeat
from connections.models import Connection
from connections.services import connection_disconnect
from tests.factories import UserFactory
from tests.refresh.helpers import compressed_exact, connect, refreshes

ROOT = Path(__file__).resolve().parents[2]


def doctor() -> tuple[int, list[str]]:
    out = io.StringIO()
    try:
        call_command("doctor", stdout=out, no_color=True)
        code = 0
    except CommandError as error:
        code = error.returncode
    return code, out.getvalue().splitlines()


def line_of(lines: list[str], check: str) -> str:
    [line] = [line for line in lines if line.split()[1:2] == [check]]
    return line


# --- doctor ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_doctor_passes_a_healthy_installation():
    Heartbeat.beat(SWEEP)

    code, lines = doctor()

    assert code == 0, lines
    assert [line.split()[:2] for line in lines[:-1]] == [
        ["ok", "configuration"],
        ["ok", "database"],
        ["ok", "keys"],
        ["ok", "broker"],
        ["ok", "cache"],
        ["ok", "beat"],
        ["ok", "backlog"],
    ]
    assert lines[-1] == "All checks passed."


def test_doctor_names_each_broken_dependency_and_exits_1(tmp_path):
    """Nothing listens on port 1: the database, the broker and the cache (Redis) are all down."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TOKENKEEPER_VAR_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "DATABASE_URL": "postgres://tokenkeeper@127.0.0.1:1/tokenkeeper",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "doctor", "--no-color"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    lines = result.stdout.splitlines()

    assert result.returncode == 1, result.stdout + result.stderr
    assert line_of(lines, "configuration").startswith("ok")
    assert "FAIL  database      cannot reach the database" in line_of(lines, "database")
    assert "check DATABASE_URL" in line_of(lines, "database")
    assert "FAIL  broker        cannot reach the Celery broker" in line_of(lines, "broker")
    assert "FAIL  cache         cannot reach the cache" in line_of(lines, "cache")
    for check in ("keys", "beat", "backlog"):
        assert line_of(lines, check).startswith("FAIL") and "not checked" in line_of(lines, check)
    assert "6 check(s) failed: database, keys, broker, cache, beat, backlog" in result.stderr


@pytest.mark.django_db
def test_doctor_fails_when_the_sweep_stopped():
    Heartbeat.objects.create(name=SWEEP, at=timezone.now() - timedelta(seconds=120))

    code, lines = doctor()

    assert code == 1
    assert "the last refresh sweep ran 120 s ago" in line_of(lines, "beat")
    assert "is `celery -A config beat` running" in line_of(lines, "beat")


@pytest.mark.django_db
def test_doctor_fails_when_no_sweep_ever_ran():
    code, lines = doctor()
    assert code == 1
    assert "no refresh sweep has ever run" in line_of(lines, "beat")


@compressed_exact
@pytest.mark.django_db
def test_doctor_fails_on_refreshes_overdue_and_unclaimed(team, exact_client, exact):
    Heartbeat.beat(SWEEP)
    connection = connect(exact_client, exact, name="Late", owner=team.alice, remaining=20)
    Connection.objects.filter(pk=connection.pk).update(refresh_due_at=timezone.now() - timedelta(seconds=300))

    code, lines = doctor()

    assert code == 1
    assert "1 due refresh(es) unclaimed for over 60 s, the oldest due 300 s ago" in line_of(lines, "backlog")


@pytest.mark.django_db
def test_doctor_fails_when_a_stored_secret_decrypts_with_no_key(settings, exact_client):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key that encrypted it is gone
    Heartbeat.beat(SWEEP)

    code, lines = doctor()

    assert code == 1
    assert "stored secrets sampled decrypt with no key in FIELD_ENCRYPTION_KEYS" in line_of(lines, "keys")


@pytest.mark.django_db
def test_doctor_warns_about_secrets_on_an_older_key(settings, exact_client):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    Heartbeat.beat(SWEEP)

    code, lines = doctor()

    assert code == 0
    assert line_of(lines, "keys").startswith("warn")
    assert "run `manage.py rotate_encryption_keys`" in line_of(lines, "keys")


# --- refresh_connection ---------------------------------------------------------------------------


def refresh_connection(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("refresh_connection", *args, stdout=out, no_color=True)
    except CommandError as error:
        return error.returncode, str(error)
    return 0, out.getvalue()


@compressed_exact
@pytest.mark.django_db
def test_refresh_connection_refreshes_inside_the_window_and_is_audited(team, exact_client, exact):
    due = connect(exact_client, exact, name="Acme BV", owner=team.alice, remaining=20)

    code, out = refresh_connection(str(due.id))

    assert code == 0, out
    assert f"Acme BV ({due.id}, workspace acme): refreshed." in out
    assert refreshes(exact, "ok") == 1 and 0 < exact.refresh_leads[0] <= 30
    event = AuditEvent.objects.get(action="connection.refresh_forced")
    assert (event.actor_label, event.data) == ("system", {"result": "refreshed"})


@compressed_exact
@pytest.mark.django_db
def test_refresh_connection_before_the_window_schedules_it_for_when_it_opens(team, exact_client, exact):
    fresh = connect(exact_client, exact, name="Acme BV", owner=team.alice, remaining=38)

    code, out = refresh_connection(str(fresh.id))

    assert code == 0, out
    assert "scheduled" in out and "accepts a refresh only in the last 30 s before expiry" in out
    assert refreshes(exact) == 0


@compressed_exact
@pytest.mark.django_db
def test_refresh_connection_records_the_staff_member_given(team, exact_client, exact):
    due = connect(exact_client, exact, name="Acme BV", owner=team.alice, remaining=20)
    UserFactory(email="support@example.com", is_staff=True)

    assert refresh_connection(str(due.id), "--staff", "support@example.com")[0] == 0
    assert AuditEvent.objects.get(action="connection.refresh_forced").actor_label == "support@example.com"
    assert refresh_connection(str(due.id), "--staff", "alice@example.com") == (
        2,
        "No active staff user alice@example.com.",
    )


@compressed_exact
@pytest.mark.django_db
def test_refresh_connection_refuses_what_cannot_be_refreshed(team, exact_client, exact):
    gone = connect(exact_client, exact, name="Gone", owner=team.alice, remaining=20)
    connection_disconnect(workspace=team.a, connection=gone, actor=Actor(user=team.alice))

    code, message = refresh_connection(str(gone.id))
    assert code == 2 and "Not refreshed: The connection is revoked. Reconnect it instead." in message
    assert refresh_connection("00000000-0000-4000-8000-000000000000") == (
        2,
        "No connection with id 00000000-0000-4000-8000-000000000000.",
    )
    assert refresh_connection("not-an-id")[0] == 2
    assert refreshes(exact) == 0
