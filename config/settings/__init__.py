"""Tokenkeeper settings, read from the environment.

With nothing set, Tokenkeeper runs on a SQLite file and Celery's filesystem
broker under ``var/``, so ``make run`` needs no service. ``DATABASE_URL`` and
``CELERY_BROKER_URL``/``REDIS_URL`` switch to PostgreSQL and Redis.
``TOKENKEEPER_ENV=production`` turns on the production checks: it refuses
to start without its secrets, with development keys, with insecure URLs
allowed, on SQLite or without Redis (config/production.py).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str
from config.logging import logging_config
from config.production import production_problems

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("TOKENKEEPER_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)
# Prometheus metrics: every process of this host (web, workers, beat) writes its
# own files here and /metrics merges them (common/metrics.py). Read by
# prometheus_client when it is first imported, which is after the settings.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

TOKENKEEPER_ENV = env_str("TOKENKEEPER_ENV", "development")
PRODUCTION = TOKENKEEPER_ENV == "production"
DEBUG = env_bool("DEBUG", default=not PRODUCTION)

# Development values: never used in production, where these must be set.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789abcdef"
_DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UtIT0="

SECRET_KEY = env_str("SECRET_KEY")
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
if PRODUCTION:
    missing = [n for n, v in (("SECRET_KEY", SECRET_KEY), ("FIELD_ENCRYPTION_KEYS", FIELD_ENCRYPTION_KEYS)) if not v]
    if missing:
        raise ImproperlyConfigured(f"Production mode needs {', '.join(missing)} in the environment.")
SECRET_KEY = SECRET_KEY or _DEV_SECRET_KEY
FIELD_ENCRYPTION_KEYS = FIELD_ENCRYPTION_KEYS or [_DEV_FIELD_KEY]

PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", PUBLIC_BASE_URL if PRODUCTION else "")
OAUTH_ALLOW_INSECURE_URLS = env_bool("OAUTH_ALLOW_INSECURE_URLS", default=False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "common",
    "audit",
    "accounts",
    "workspaces",
    "oauthclients",
    "connections",
    "integrations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "common.logging.RequestIdMiddleware",
    # GET …/token with an API key stops here: the rest is for browsers (common/fastpath.py).
    "common.fastpath.ApiFastPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# URL name → view that ApiFastPathMiddleware calls for GET requests with an API key.
API_FAST_PATHS = {"connection-token": "connections.api.connection_token_for_api_key"}
# … and for requests with an API key of any method and query string (the provider proxy).
API_FAST_PATHS_ANY = {"connection-proxy": "connections.api.connection_proxy_for_api_key"}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "workspaces.context_processors.workspaces",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        # Persistent connections, checked before their first use in each request
        # (one `SELECT 1` round trip), so a connection PostgreSQL dropped is
        # replaced instead of failing the request.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", default=True),
    )
}
# Behind PgBouncer in transaction mode (docs/deploy.md): no server-side cursors.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DATABASE_DISABLE_SERVER_SIDE_CURSORS")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file in `make run`.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# dumpdata writes secrets as ciphertext; these loaddata formats decrypt them again.
SERIALIZATION_MODULES = {fmt: f"common.serializers.{fmt}" for fmt in ("json", "jsonl", "yaml", "xml", "python")}

# --- Cache (allauth's rate limits need a real one) ------------------------------
REDIS_URL = env_str("REDIS_URL")
# The provider API rate budgets the proxy keeps (connections/ratebudget.py); none without Redis.
RATE_BUDGET_REDIS_URL = env_str("RATE_BUDGET_REDIS_URL") or REDIS_URL
# Keys start with this; a test run uses its own, so runs that share a Redis never count each other's calls.
RATE_BUDGET_KEY_PREFIX = env_str("RATE_BUDGET_KEY_PREFIX") or "tokenkeeper:ratebudget:"
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tokenkeeper",
        }
    }
    # Sessions live in Redis with the rate limits: no session row written per login,
    # shared by every web process. Losing Redis signs everyone out (docs/deploy.md).
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts -----------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Tokenkeeper] "
# E-mails name the product and its public address, not the host that served the request.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Tokenkeeper"
MFA_ADAPTER = "common.mfa.MFAAdapter"  # TOTP keys and recovery seeds encrypted with FIELD_ENCRYPTION_KEYS

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
# For EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend (local runs, worker tests).
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Tokenkeeper <tokenkeeper@localhost>")

INVITATION_LIFETIME_DAYS = env_int("INVITATION_LIFETIME_DAYS", 7)
# A web process trusts an API key it read this many seconds ago without reading
# it again (workspaces/keycache.py): a revoked key stops working within this
# long in every other process (at once in the one that revoked it). 0 turns it off.
API_KEY_CACHE_SECONDS = float(env_str("API_KEY_CACHE_SECONDS", "5"))
# A web process serves an API key's token and proxy requests from the connection row it read
# this many seconds ago (connections/rowcache.py); lifecycle changes reach every process at once
# through Redis (CONNECTION_CACHE_CHANNEL). Only with REDIS_URL; 0 turns it off.
CONNECTION_CACHE_SECONDS = float(env_str("CONNECTION_CACHE_SECONDS", "1"))
CONNECTION_CACHE_CHANNEL = env_str("CONNECTION_CACHE_CHANNEL") or "tokenkeeper:connections:changed"

# --- Internationalisation and static files -----------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "workspaces.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "common.api.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "common.schema.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bounded by DATA_UPLOAD_MAX_MEMORY_SIZE (413) and, for JSON, in nesting (400).
    "DEFAULT_PARSER_CLASSES": [
        "common.parsers.JSONParser",
        "common.parsers.FormParser",
        "common.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tokenkeeper API",
    "DESCRIPTION": "Workspaces, OAuth 2.0 clients, connections and always-fresh access tokens.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No links inside Swagger UI's operation buttons (axe: nested-interactive); templates/drf_spectacular/.
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "REDOC_DIST": "SIDECAR",
    # Two choice sets share the field name "status": name each after what it is.
    "ENUM_NAME_OVERRIDES": {
        "ConnectionStatusEnum": "connections.models.Status",
        "DeliveryStatusEnum": "integrations.models.DeliveryStatus",
    },
}

# --- Celery ---------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "celery-broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast exchanges (worker control) also go under var/, not the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 120)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 100)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes DB connections around every task unless this is
# set; config/celery_app.py closes them the way Django does around a request.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1_000_000)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Queues: each kind of work has its own, and its own workers (README, docs/deploy.md),
# so a flood of webhook deliveries or e-mails never delays a due refresh.
REFRESH_QUEUE, WEBHOOKS_QUEUE, EMAIL_QUEUE, DEFAULT_QUEUE = "refresh", "webhooks", "email", "default"
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
CELERY_TASK_ROUTES = {
    "connections.tasks.refresh_sweep": {"queue": REFRESH_QUEUE},
    "connections.tasks.refresh_connections": {"queue": REFRESH_QUEUE},
    "integrations.tasks.*": {"queue": WEBHOOKS_QUEUE},  # outgoing webhooks and Exact subscriptions
    "common.tasks.send_email": {"queue": EMAIL_QUEUE},
}
ALL_QUEUES = ",".join((REFRESH_QUEUE, WEBHOOKS_QUEUE, EMAIL_QUEUE, DEFAULT_QUEUE))
# Beat: with Redis, several beats may run and one is active (RedBeat holds a
# lock in Redis, extended every tick). When the active one dies, another takes
# over within BEAT_LOCK_SECONDS + 1 s. Without Redis (`make run`), Celery's
# own scheduler with its schedule file: run exactly one beat.
BEAT_LOCK_SECONDS = env_int("BEAT_LOCK_SECONDS", 10)
# /readyz, /metrics and `manage.py doctor` call the sweep stale after this long without one.
SWEEP_STALE_SECONDS = env_int("SWEEP_STALE_SECONDS", 30)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BEAT_SCHEDULER = "redbeat.RedBeatScheduler"
    CELERY_REDBEAT_REDIS_URL = env_str("CELERY_REDBEAT_REDIS_URL") or CELERY_BROKER_URL
    CELERY_REDBEAT_KEY_PREFIX = "tokenkeeper:redbeat"
    CELERY_REDBEAT_LOCK_TIMEOUT = BEAT_LOCK_SECONDS
    # How long beat sleeps at most between ticks, and how often a waiting beat tries the lock.
    CELERY_BEAT_MAX_LOOP_INTERVAL = 1
# Refresh engine: how often beat sweeps for due refreshes, and how long a claim
# (lease) lasts. The lease must outlive the refresh task's hard time limit.
REFRESH_SWEEP_SECONDS = float(env_str("REFRESH_SWEEP_SECONDS", "2"))
REFRESH_LEASE_SECONDS = env_int("REFRESH_LEASE_SECONDS", 180)
REFRESH_TASK_TIME_LIMIT = env_int("REFRESH_TASK_TIME_LIMIT", 150)
REFRESH_RETRY_BASE_SECONDS = env_int("REFRESH_RETRY_BASE_SECONDS", 30)
# Claimed refreshes go out as up to FANOUT tasks (the number of worker
# processes) of at most BATCH_MAX ids, which a worker process refreshes THREADS
# at a time (token requests in flight), GROUP_SIZE of them under one
# transaction; a batch stops starting refreshes after BATCH_SECONDS and releases
# the rest for the next sweep (docs/refresh-engine.md). One thread on SQLite:
# its writers take turns anyway.
REFRESH_BATCH_FANOUT = env_int("REFRESH_BATCH_FANOUT", 4)
REFRESH_BATCH_MAX = env_int("REFRESH_BATCH_MAX", 96)
REFRESH_THREADS = env_int("REFRESH_THREADS", 1 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 16)
REFRESH_GROUP_SIZE = env_int("REFRESH_GROUP_SIZE", 8)
REFRESH_BATCH_SECONDS = float(env_str("REFRESH_BATCH_SECONDS", "15"))
# Routine "refreshed" history events are deleted after this many days (hourly);
# failures, needs_reauth and the rest are kept.
REFRESH_EVENT_RETENTION_DAYS = float(env_str("REFRESH_EVENT_RETENTION_DAYS", "7"))
# GET …/token?min_valid=N waits at most this long for the provider's refresh window to open
# (connections/access.py); a longer wait is answered 409 not_valid_long_enough with retry_after.
TOKEN_MIN_VALID_MAX_WAIT = float(env_str("TOKEN_MIN_VALID_MAX_WAIT", "35"))
# The provider proxy (connections/proxy.py): timeouts towards the provider's API (connect, read
# between two chunks), and the largest request body kept in memory so that it can be sent again
# after a 401 and a refresh (larger bodies are streamed and never retried).
PROXY_CONNECT_TIMEOUT = float(env_str("PROXY_CONNECT_TIMEOUT", "10"))
PROXY_READ_TIMEOUT = float(env_str("PROXY_READ_TIMEOUT", "60"))
PROXY_REPLAY_MAX_BYTES = env_int("PROXY_REPLAY_MAX_BYTES", 65536)
CELERY_BEAT_SCHEDULE = {
    "refresh-sweep": {
        "task": "connections.tasks.refresh_sweep",
        "schedule": REFRESH_SWEEP_SECONDS,
        "options": {"expires": REFRESH_SWEEP_SECONDS * 5},
    },
    "purge-connection-events": {
        "task": "connections.tasks.connection_events_purge",
        "schedule": 3600.0,
    },
    "purge-expired-invitations": {
        "task": "workspaces.tasks.invitations_purge_expired",
        "schedule": 3600.0,
    },
}

# --- Integrations: event stream, outgoing webhooks, Exact Online webhooks -------------
# Events (and their delivery log) are kept this many days (purged hourly).
WORKSPACE_EVENT_RETENTION_DAYS = float(env_str("WORKSPACE_EVENT_RETENTION_DAYS", "30"))
# Seconds before each retry of a failed outgoing webhook: 7 retries over about a day.
WEBHOOK_RETRY_SCHEDULE = [float(s) for s in env_list("WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,23400")]
WEBHOOK_SWEEP_SECONDS = float(env_str("WEBHOOK_SWEEP_SECONDS", "5"))
# A queued delivery's claim; its message expires with it (longer than the task's time limit).
WEBHOOK_CLAIM_SECONDS = env_int("WEBHOOK_CLAIM_SECONDS", 900)
# A message carries up to BATCH_SIZE deliveries of one endpoint, sent in turn; after
# BATCH_SECONDS the rest go back to the sweep (a slow receiver holds up only its batch).
WEBHOOK_BATCH_SIZE = env_int("WEBHOOK_BATCH_SIZE", 20)
WEBHOOK_BATCH_SECONDS = float(env_str("WEBHOOK_BATCH_SECONDS", "30"))
WEBHOOK_CONNECT_TIMEOUT = float(env_str("WEBHOOK_CONNECT_TIMEOUT", "5"))
WEBHOOK_READ_TIMEOUT = float(env_str("WEBHOOK_READ_TIMEOUT", "15"))
# Outgoing webhook deliveries have a queue of their own (CELERY_TASK_ROUTES above),
# so thousands of deliveries waiting never delay a refresh.
CELERY_BEAT_SCHEDULE |= {
    "sweep-webhook-deliveries": {
        "task": "integrations.tasks.webhook_deliveries_sweep",
        "schedule": WEBHOOK_SWEEP_SECONDS,
        "options": {"expires": WEBHOOK_SWEEP_SECONDS * 5},
    },
    "publish-workspace-events": {
        "task": "integrations.tasks.workspace_events_publish_stale",
        "schedule": 5.0,
        "options": {"expires": 25},
    },
    "purge-workspace-events": {
        "task": "integrations.tasks.workspace_events_purge",
        "schedule": 3600.0,
    },
}

# --- Security ---------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- Production refuses unsafe settings (config/production.py) -----------------------
if PRODUCTION:
    _problems = production_problems(
        secret_key=SECRET_KEY,
        dev_secret_key=_DEV_SECRET_KEY,
        field_keys=FIELD_ENCRYPTION_KEYS,
        dev_field_key=_DEV_FIELD_KEY,
        insecure_urls=OAUTH_ALLOW_INSECURE_URLS,
        database_engine=DATABASES["default"]["ENGINE"],
        redis_url=REDIS_URL,
    )
    if _problems:
        raise ImproperlyConfigured(
            "Production mode refuses to start:\n" + "\n".join(f"- {problem}" for problem in _problems)
        )

# --- Logs: JSON lines in production (structlog), plain text in development ---------------
# Every line carries the request id (X-Request-ID) of the request it belongs
# to, also in the Celery tasks that request queued (common/logging.py).
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "plain")
LOGGING = logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)

# --- Metrics (/metrics, Prometheus) ---------------------------------------------------------
# With METRICS_TOKEN set, /metrics wants `Authorization: Bearer <METRICS_TOKEN>`;
# without it, only direct requests (no proxy headers) from METRICS_ALLOWED_NETWORKS.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Computed when /metrics is scraped (gauges about the database).
METRICS_COLLECTORS = ["connections.metrics.ConnectionsCollector"]
METRICS_ALLOWED_NETWORKS = env_list(
    "METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
)
# The pages' live-status polls (htmx, every few seconds) would drown the development server's log.
LOGGING.setdefault("filters", {})["quiet_polls"] = {"()": "common.logfilters.QuietPolls"}
LOGGING.setdefault("loggers", {}).setdefault("django.server", {}).setdefault("filters", []).append("quiet_polls")
