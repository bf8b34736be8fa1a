"""Test settings: the real PostgreSQL and Redis when DATABASE_URL/REDIS_URL are
set (CI), SQLite and an in-memory broker otherwise."""

import os
import tempfile

# This test run's own metrics directory (before prometheus_client is imported), shared with
# the real workers the tests start (tests/fixtures/workers.py).
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tokenkeeper-test-metrics-")

from config.settings import *  # noqa: F403
from config.settings import CELERY_BROKER_URL, REDIS_URL

# Test peers (OAuth servers) listen on http://127.0.0.1:<port>.
OAUTH_ALLOW_INSECURE_URLS = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if not REDIS_URL and CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = False
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}
# In-process tests run inside a transaction that other threads cannot see;
# threaded batches run in tests/refresh/test_locks.py and test_worker.py (committed data).
REFRESH_THREADS = 1
# This run's own rate-budget keys in Redis (shared with the gunicorn process tests/proxy/live.py starts).
RATE_BUDGET_KEY_PREFIX = f"tokenkeeper-test-{os.getpid()}:ratebudget:"
# In-process tests change rows inside a transaction that never commits (no announcement reaches the
# row cache): they read the database every time. tests/connections/test_rowcache.py turns it on.
CONNECTION_CACHE_SECONDS = 0.0
CONNECTION_CACHE_CHANNEL = f"tokenkeeper-test-{os.getpid()}:connections:changed"
