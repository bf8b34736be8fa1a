"""Settings of the stand-alone django-oauth-toolkit peer.

Configured through environment variables (set by ``serve.py``):

* ``DOT_PEER_DB`` -- SQLite database path (required; lives in a temp dir)
* ``DOT_PEER_ACCESS_TOKEN_EXPIRE_SECONDS`` (default 3600)
* ``DOT_PEER_REFRESH_TOKEN_EXPIRE_SECONDS`` (default unset = never)
* ``DOT_PEER_REFRESH_TOKEN_GRACE_PERIOD_SECONDS`` (default 0)
* ``DOT_PEER_REFRESH_TOKEN_REUSE_PROTECTION`` ("1"/"0", default 0)
* ``DOT_PEER_PKCE_REQUIRED`` ("1"/"0", default 1)
* ``DOT_PEER_AUTHORIZATION_CODE_EXPIRE_SECONDS`` (default 60)
* ``DOT_PEER_CONTROL_TOKEN`` -- shared secret for the ``/_peer/`` test-control endpoints
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.lower() in ("1", "true", "yes", "on")


def _env_int(name: str, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


SECRET_KEY = os.environ.get("DOT_PEER_SECRET_KEY", "dot-peer-insecure-test-only-secret-key-0123456789abcdef")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "dot_server",
]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "dot_server.urls"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Our own minimal templates win over DOT's (which pull Bootstrap from a CDN).
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DOT_PEER_DB") or str(BASE_DIR / "dot-peer.sqlite3"),
        "OPTIONS": {"timeout": 30},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

# Fast hashing: user passwords *and* DOT's hashed client secrets use these.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
SESSION_COOKIE_NAME = "dotpeer_sessionid"
CSRF_COOKIE_NAME = "dotpeer_csrftoken"

OAUTH2_PROVIDER = {
    "PKCE_REQUIRED": _env_bool("DOT_PEER_PKCE_REQUIRED", True),
    "ACCESS_TOKEN_EXPIRE_SECONDS": _env_int("DOT_PEER_ACCESS_TOKEN_EXPIRE_SECONDS", 3600),
    "REFRESH_TOKEN_EXPIRE_SECONDS": _env_int("DOT_PEER_REFRESH_TOKEN_EXPIRE_SECONDS", None),
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": _env_int("DOT_PEER_REFRESH_TOKEN_GRACE_PERIOD_SECONDS", 0),
    "REFRESH_TOKEN_REUSE_PROTECTION": _env_bool("DOT_PEER_REFRESH_TOKEN_REUSE_PROTECTION", False),
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": _env_int("DOT_PEER_AUTHORIZATION_CODE_EXPIRE_SECONDS", 60),
    "ROTATE_REFRESH_TOKEN": True,
    "SCOPES": {"read": "Read scope", "write": "Write scope"},
    "DEFAULT_SCOPES": ["read", "write"],
    "REQUEST_APPROVAL_PROMPT": "force",
}

DOT_PEER_CONTROL_TOKEN = os.environ.get("DOT_PEER_CONTROL_TOKEN", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING"},
        "django.server": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "oauth2_provider": {"handlers": ["stderr"], "level": "WARNING"},
    },
}
