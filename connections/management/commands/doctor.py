"""Check an installation end to end: configuration, keys, database, broker, cache, beat, refresh backlog.

One line per check (``ok``, ``warn`` or ``FAIL`` and what to do); the exit
code is 1 when any check fails, so it can gate a deployment or run from cron.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from common.crypto import DecryptionError, decrypt, is_encrypted_with_primary_key
from common.health import last_sweep_age
from common.management.commands.rotate_encryption_keys import encrypted_fields

from ...models import Connection

OK, WARN, FAIL = "ok", "warn", "FAIL"
# A due refresh nobody has claimed for this long means the sweep or the refresh workers are not keeping up.
OVERDUE_SECONDS = 60
SECRETS_SAMPLE = 50


@dataclass
class Result:
    state: str
    message: str


def check_configuration() -> Result:
    problems = []
    if settings.PRODUCTION and settings.DEBUG:
        problems.append("DEBUG is on in production: set DEBUG=false")
    if settings.PRODUCTION and not settings.PUBLIC_BASE_URL.startswith("https://"):
        problems.append(f"PUBLIC_BASE_URL is {settings.PUBLIC_BASE_URL}: the OAuth redirect URI needs https")
    if settings.REFRESH_LEASE_SECONDS <= settings.REFRESH_TASK_TIME_LIMIT:
        problems.append("REFRESH_LEASE_SECONDS must exceed REFRESH_TASK_TIME_LIMIT (a claim outlives its task)")
    if problems:
        return Result(FAIL, "; ".join(problems))
    if settings.PRODUCTION and not settings.METRICS_TOKEN:
        return Result(WARN, "METRICS_TOKEN is not set: /metrics answers only direct requests from internal addresses")
    return Result(OK, f"{settings.TOKENKEEPER_ENV} mode, DEBUG {'on' if settings.DEBUG else 'off'}")


def check_keys() -> Result:
    for number, key in enumerate(settings.FIELD_ENCRYPTION_KEYS, start=1):
        try:
            Fernet(key.encode())
        except ValueError:
            return Result(FAIL, f"FIELD_ENCRYPTION_KEYS: key number {number} is not a Fernet key")
    undecryptable = old_key = sampled = 0
    for model, fields in encrypted_fields():
        for field in fields:
            rows = (
                model._default_manager.exclude(**{field: ""})
                .order_by("-pk")
                .values_list(Cast(field, TextField()), flat=True)[:SECRETS_SAMPLE]
            )
            for ciphertext in rows:
                sampled += 1
                try:
                    decrypt(ciphertext)
                except DecryptionError:
                    undecryptable += 1
                    continue
                old_key += not is_encrypted_with_primary_key(ciphertext)
    if undecryptable:
        return Result(
            FAIL,
            f"{undecryptable} of {sampled} stored secrets sampled decrypt with no key in FIELD_ENCRYPTION_KEYS: "
            "a key that encrypted them is missing (put it back after the first key)",
        )
    if old_key:
        return Result(
            WARN, f"{old_key} of {sampled} secrets sampled use an older key: run `manage.py rotate_encryption_keys`"
        )
    return Result(OK, f"{len(settings.FIELD_ENCRYPTION_KEYS)} key(s); {sampled} stored secrets sampled decrypt")


def check_database() -> Result:
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return Result(FAIL, f"cannot reach the database ({_first_line(exc)}): check DATABASE_URL and the server")
    if pending:
        return Result(FAIL, f"{len(pending)} migration(s) not applied: run `manage.py migrate`")
    return Result(OK, f"{connection.vendor} {connection.settings_dict.get('NAME')}, migrations applied")


def check_broker() -> Result:
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
            url = conn.as_uri()
    except Exception as exc:
        return Result(FAIL, f"cannot reach the Celery broker ({_first_line(exc)}): check CELERY_BROKER_URL/REDIS_URL")
    return Result(OK, url)


def check_cache() -> Result:
    key = f"doctor:{time.monotonic_ns()}"
    try:
        cache.set(key, "1", 10)
        answered = cache.get(key) == "1"
        cache.delete(key)
    except Exception as exc:
        return Result(FAIL, f"cannot reach the cache ({_first_line(exc)}): sessions and rate limits need REDIS_URL")
    if not answered:
        return Result(FAIL, "the cache does not keep what it is given")
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    if settings.PRODUCTION and backend != "RedisCache":
        return Result(FAIL, f"{backend} in production: sessions and rate limits must be shared (REDIS_URL)")
    return Result(OK, backend)


def check_beat() -> Result:
    age = last_sweep_age()
    beat = _beat_lock_holder()
    if age is None:
        return Result(FAIL, f"no refresh sweep has ever run ({beat}): start beat and a worker on the `refresh` queue")
    if age > settings.SWEEP_STALE_SECONDS:
        return Result(
            FAIL,
            f"the last refresh sweep ran {age:.0f} s ago ({beat}): is `celery -A config beat` running, "
            "and a worker consuming the `refresh` queue?",
        )
    return Result(OK, f"last refresh sweep {age:.1f} s ago ({beat})")


def _beat_lock_holder() -> str:
    if not getattr(settings, "CELERY_BEAT_SCHEDULER", "").startswith("redbeat"):
        return "one beat with the file scheduler"
    from redbeat.schedulers import get_redis

    try:
        held = get_redis(current_app).ttl(f"{settings.CELERY_REDBEAT_KEY_PREFIX}:lock")
    except Exception as exc:
        return f"beat lock unknown: {_first_line(exc)}"
    return "a beat holds the lock" if held and held > 0 else "no beat holds the lock"


def check_backlog() -> Result:
    now = timezone.now()
    unclaimed = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    overdue = Connection.objects.filter(unclaimed, refresh_due_at__lte=now - timedelta(seconds=OVERDUE_SECONDS))
    count = overdue.count()
    if count:
        oldest = overdue.order_by("refresh_due_at").values_list("refresh_due_at", flat=True).first()
        return Result(
            FAIL,
            f"{count} due refresh(es) unclaimed for over {OVERDUE_SECONDS} s, the oldest due "
            f"{(now - oldest).total_seconds():.0f} s ago: the sweep or the refresh workers are not keeping up",
        )
    due = Connection.objects.filter(refresh_due_at__lte=now).count()
    return Result(OK, f"{due} refresh(es) due now, none overdue")


CHECKS: list[tuple[str, Callable[[], Result], bool]] = [
    # name, check, needs the database
    ("configuration", check_configuration, False),
    ("database", check_database, False),
    ("keys", check_keys, True),
    ("broker", check_broker, False),
    ("cache", check_cache, False),
    ("beat", check_beat, True),
    ("backlog", check_backlog, True),
]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args, **options):
        failed = []
        database_ok = True
        for name, check, needs_database in CHECKS:
            if needs_database and not database_ok:
                result = Result(FAIL, "not checked: the database is unreachable or not migrated")
            else:
                try:
                    result = check()
                except Exception as exc:
                    result = Result(FAIL, f"the check itself failed: {_first_line(exc)}")
            if name == "database":
                database_ok = result.state != FAIL
            style = {OK: self.style.SUCCESS, WARN: self.style.WARNING, FAIL: self.style.ERROR}[result.state]
            self.stdout.write(f"{style(result.state.ljust(4))}  {name.ljust(13)} {result.message}")
            if result.state == FAIL:
                failed.append(name)
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}", returncode=1)
        self.stdout.write("All checks passed.")
