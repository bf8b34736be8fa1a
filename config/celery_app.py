import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tokenkeeper")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
