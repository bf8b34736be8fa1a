import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tokenkeeper")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect(weak=False)
def redbeat_settings(sender, **kwargs) -> None:
    """RedBeat looks for its settings by their bare names (``redbeat_redis_url``); the Django
    settings give them as CELERY_REDBEAT_*. Without this it warns that it falls back to the broker."""
    for name in ("redbeat_redis_url", "redbeat_key_prefix", "redbeat_lock_timeout"):
        if (value := sender.conf.get(name)) is not None:
            sender.conf[name] = value


@signals.setup_logging.connect(weak=False, dispatch_uid="tokenkeeper-logging")
def setup_logging(loglevel=None, **kwargs) -> None:
    """Workers and beat log like the web processes (settings.LOGGING: JSON lines in production)
    instead of Celery's own format, at the level of their ``-l``/``--loglevel``."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@signals.before_task_publish.connect(weak=False, dispatch_uid="tokenkeeper-request-id-out")
def add_request_id(**kwargs) -> None:
    from common.logging import add_request_id_header

    add_request_id_header(**kwargs)


@signals.task_prerun.connect(weak=False, dispatch_uid="tokenkeeper-task-log-context")
def bind_task_log_context(**kwargs) -> None:
    from common.logging import bind_task_context

    bind_task_context(**kwargs)


@signals.task_postrun.connect(weak=False, dispatch_uid="tokenkeeper-task-log-context-end")
def clear_task_log_context(**kwargs) -> None:
    from common.logging import clear_task_context

    clear_task_context()


@signals.task_prerun.connect(weak=False, dispatch_uid="tokenkeeper-close-old-connections-pre")
@signals.task_postrun.connect(weak=False, dispatch_uid="tokenkeeper-close-old-connections-post")
def close_old_connections(**kwargs) -> None:
    """Treat each task like a request: keep the database connection while it is
    healthy and younger than CONN_MAX_AGE, drop it otherwise.

    Celery's Django fixup would close it around every task (unless
    CELERY_DB_REUSE_MAX is set, see settings), so each refresh would open a new
    PostgreSQL connection: ~10 ms of server CPU (docs/benchmarks.md).
    """
    from django.db import close_old_connections as close

    close()


@signals.worker_process_shutdown.connect(weak=False, dispatch_uid="tokenkeeper-refresh-threads-stop")
def stop_refresh_threads(**kwargs) -> None:
    """A worker process going away closes its refresh threads' database connections."""
    from connections import threads

    threads.stop()


@signals.worker_process_shutdown.connect(weak=False, dispatch_uid="tokenkeeper-metrics-process-dead")
def metrics_process_dead(pid=None, **kwargs) -> None:
    """Its live gauges leave /metrics; its counters stay (common/metrics.py)."""
    from common.metrics import process_dead

    process_dead(pid or os.getpid())
