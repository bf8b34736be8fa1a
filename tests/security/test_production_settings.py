"""Production mode refuses to start with development keys, insecure URLs, SQLite or no Redis."""

import pytest
from cryptography.fernet import Fernet

from config.settings import _DEV_FIELD_KEY, _DEV_SECRET_KEY
from tests.common.test_settings import PRODUCTION_SECRET_KEY, PRODUCTION_SERVICES, run

FIELD_KEY = Fernet.generate_key().decode()
COMPLETE = {"SECRET_KEY": PRODUCTION_SECRET_KEY, "FIELD_ENCRYPTION_KEYS": FIELD_KEY, **PRODUCTION_SERVICES}

REFUSALS = [
    (
        "development SECRET_KEY",
        {"SECRET_KEY": _DEV_SECRET_KEY},
        "SECRET_KEY is the development key from the settings file",
        "Set SECRET_KEY to a new random value",
    ),
    (
        "development field key",
        {"FIELD_ENCRYPTION_KEYS": _DEV_FIELD_KEY},
        "FIELD_ENCRYPTION_KEYS holds the development key from the settings file",
        "manage.py rotate_encryption_keys",
    ),
    (
        "development field key kept for decryption",
        {"FIELD_ENCRYPTION_KEYS": f"{FIELD_KEY},{_DEV_FIELD_KEY}"},
        "FIELD_ENCRYPTION_KEYS holds the development key from the settings file",
        "start production with the new key alone",
    ),
    (
        "a key that is not a Fernet key",
        {"FIELD_ENCRYPTION_KEYS": f"{FIELD_KEY},not-a-fernet-key"},
        "FIELD_ENCRYPTION_KEYS: key number 2 is not a Fernet key",
        "Fernet.generate_key()",
    ),
    (
        "insecure URLs allowed",
        {"OAUTH_ALLOW_INSECURE_URLS": "true"},
        "OAUTH_ALLOW_INSECURE_URLS is on",
        "Remove it from the production environment.",
    ),
    (
        "SQLite",
        {"DATABASE_URL": "sqlite:///var/db.sqlite3"},
        "DATABASE_URL is SQLite (or not set): production needs PostgreSQL",
        "Set DATABASE_URL=postgres://",
    ),
    (
        "no DATABASE_URL",
        {"DATABASE_URL": ""},
        "DATABASE_URL is SQLite (or not set)",
        "Set DATABASE_URL=postgres://",
    ),
    (
        "no REDIS_URL",
        {"REDIS_URL": ""},
        "REDIS_URL is not set: production needs Redis so that login rate limits are shared",
        "Set REDIS_URL=redis://",
    ),
]


@pytest.mark.parametrize(("what", "change", "problem", "fix"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_production_refuses_to_start(tmp_path, what, change, problem, fix):
    env = {**COMPLETE, **change}
    result = run(["-c", "import django; django.setup()"], tmp_path, **{k: v for k, v in env.items() if v})

    assert result.returncode != 0
    assert "ImproperlyConfigured: Production mode refuses to start:" in result.stderr
    [line] = [line for line in result.stderr.splitlines() if problem in line]
    assert fix in line


def test_every_problem_is_listed_at_once(tmp_path):
    env = {"SECRET_KEY": _DEV_SECRET_KEY, "FIELD_ENCRYPTION_KEYS": _DEV_FIELD_KEY, "OAUTH_ALLOW_INSECURE_URLS": "1"}
    result = run(["-c", "import django; django.setup()"], tmp_path, **env)

    problems = [line for line in result.stderr.splitlines() if line.startswith("- ")]
    assert [p.split(" ")[1] for p in problems] == [
        "SECRET_KEY",
        "FIELD_ENCRYPTION_KEYS",
        "OAUTH_ALLOW_INSECURE_URLS",
        "DATABASE_URL",
        "REDIS_URL",
    ]


def test_a_complete_production_environment_starts(tmp_path):
    result = run(["-c", "import django; django.setup()"], tmp_path, **COMPLETE)
    assert result.returncode == 0, result.stderr
