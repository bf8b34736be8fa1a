"""Settings for the bench's trials of proposals (not in use in the product).

The production settings, plus, when the bench asks for them:

``BENCH_DB_REUSE=1`` (``--db-reuse``): persistent database connections in
    Celery workers. Celery 5.6+'s Django fixup closes every database
    connection before and after each task (celery/celery#9824 reverted
    honouring ``CONN_MAX_AGE``) unless ``CELERY_DB_REUSE_MAX`` is set, so each
    refresh opens a new PostgreSQL connection: a server process fork plus the
    handshake. The trial turns that off and closes connections the way Django
    does around a request (``close_old_connections``: honours
    ``CONN_MAX_AGE``, drops a broken connection; ``CONN_HEALTH_CHECKS``
    checks a reused one before use).

``BENCH_BATCH_PUBLISH=1`` (``--batch-publish``): the sweeper publishes each
    claimed batch's refresh tasks in one Redis pipeline (kombu 5.7's
    ``Producer.batch()``) instead of one round trip per task.
"""

import os

from celery import signals

from config.settings import *  # noqa: F403

if os.environ.get("BENCH_DB_REUSE") == "1":
    # Celery's fixup then closes connections only every 10**9 tasks, i.e. never.
    CELERY_DB_REUSE_MAX = 1_000_000_000

    def _close_old_connections(**kwargs) -> None:
        from django.db import close_old_connections

        close_old_connections()

    signals.task_prerun.connect(_close_old_connections, weak=False, dispatch_uid="bench-close-old-pre")
    signals.task_postrun.connect(_close_old_connections, weak=False, dispatch_uid="bench-close-old-post")


if os.environ.get("BENCH_BATCH_PUBLISH") == "1":

    def batched_refresh_sweep() -> int:
        """connections.tasks.refresh_sweep, publishing each claimed batch in one pipeline."""
        from django.conf import settings as django_settings

        from connections import refresh
        from connections.tasks import SWEEP_BATCH, refresh_connection

        queued = 0
        while True:
            ids, lease = refresh.refresh_claim_due(limit=SWEEP_BATCH)
            if ids:
                with refresh_connection.app.producer_or_acquire() as producer, producer.batch():
                    for connection_id in ids:
                        refresh_connection.apply_async(args=[str(connection_id), str(lease)],
                                                       expires=django_settings.REFRESH_LEASE_SECONDS,
                                                       producer=producer)
            queued += len(ids)
            if len(ids) < SWEEP_BATCH:
                return queued

    def _patch_sweep(**kwargs) -> None:
        import logging

        from connections import tasks

        tasks.refresh_sweep.run = batched_refresh_sweep
        logging.getLogger("bench").warning("bench trial: refresh_sweep publishes in batches")

    # Before the pool starts (prefork children inherit it) and before any task runs.
    signals.worker_init.connect(_patch_sweep, weak=False, dispatch_uid="bench-batch-publish")
