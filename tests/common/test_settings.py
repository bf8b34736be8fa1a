"""Production mode refuses to start without its secrets, and passes Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_SECRET_KEY = "k3Y-" + "x7Qp9LmZ2vB8nR4tW6yC1dF5gH0jK3sA" * 2
# Production also needs PostgreSQL and Redis (nothing connects to them here).
PRODUCTION_SERVICES = {
    "DATABASE_URL": "postgres://tokenkeeper@db.example.com:5432/tokenkeeper",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run Python in a clean environment: nothing from the test run leaks in."""
    clean = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TOKENKEEPER_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TOKENKEEPER_ENV": "production",
        **env,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "SECRET_KEY, FIELD_ENCRYPTION_KEYS"),
        ({"FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}, "SECRET_KEY"),
        ({"SECRET_KEY": PRODUCTION_SECRET_KEY}, "FIELD_ENCRYPTION_KEYS"),
    ],
)
def test_production_refuses_to_start_without_its_secrets(tmp_path, env, missing):
    result = run(["-c", "import django; django.setup()"], tmp_path, **env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: Production mode needs {missing} in the environment." in result.stderr


def test_production_starts_with_its_secrets(tmp_path):
    result = run(
        ["-c", "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"],
        tmp_path,
        SECRET_KEY=PRODUCTION_SECRET_KEY,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        **PRODUCTION_SERVICES,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_production_passes_the_deployment_checks(tmp_path):
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        SECRET_KEY=PRODUCTION_SECRET_KEY,
        FIELD_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        ALLOWED_HOSTS="tokenkeeper.example.com",
        PUBLIC_BASE_URL="https://tokenkeeper.example.com",
        **PRODUCTION_SERVICES,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_keeps_sessions_and_rate_limits_in_redis_and_runs_beat_with_a_lock(tmp_path):
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_ENGINE, s.CACHES['default']['BACKEND'], s.CELERY_BEAT_SCHEDULER, s.LOG_FORMAT, "
        "s.DATABASES['default']['CONN_MAX_AGE'], s.DATABASES['default']['CONN_HEALTH_CHECKS'], "
        "'common.fastpath.ApiFastPathMiddleware' in s.MIDDLEWARE)"
    )
    result = run(
        ["-c", show],
        tmp_path,
        SECRET_KEY=PRODUCTION_SECRET_KEY,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        **PRODUCTION_SERVICES,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.contrib.sessions.backends.cache",
        "django.core.cache.backends.redis.RedisCache",
        "redbeat.RedBeatScheduler",
        "json",
        "600",
        "True",
        "True",
    ]


def test_development_without_redis_keeps_the_file_scheduler_and_database_sessions(tmp_path):
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_ENGINE, s.CELERY_BROKER_URL, getattr(s, 'CELERY_BEAT_SCHEDULER', 'celery.beat:PersistentScheduler'))"
    )
    result = run(["-c", show], tmp_path, TOKENKEEPER_ENV="development")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.contrib.sessions.backends.db",
        "filesystem://",
        "celery.beat:PersistentScheduler",
    ]


def test_each_kind_of_work_has_its_queue_and_the_worker_fixture_knows_them_all(settings):
    from tests.fixtures.workers import ALL_QUEUES

    routes = settings.CELERY_TASK_ROUTES
    assert (
        routes["connections.tasks.refresh_sweep"]
        == routes["connections.tasks.refresh_connections"]
        == {"queue": "refresh"}
    )
    assert routes["common.tasks.send_email"] == {"queue": "email"}
    assert routes["integrations.tasks.*"] == {"queue": "webhooks"}
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"
    assert ALL_QUEUES == settings.ALL_QUEUES == "refresh,webhooks,email,default"
