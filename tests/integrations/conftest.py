"""For the integrations tests only: Celery tasks run inline where a test asks for it."""

import importlib

import pytest
from celery import signals

from tests.fixtures.services import worker_broker_url

# The module (``config.celery_app`` the attribute is the app itself).
celery_module = importlib.import_module("config.celery_app")

CLOSE_CONNECTIONS = (
    (signals.task_prerun, "tokenkeeper-close-old-connections-pre"),
    (signals.task_postrun, "tokenkeeper-close-old-connections-post"),
)


@pytest.fixture
def inline_tasks():
    """Queued tasks run at once in this process (on commit), as a worker would run them.

    A worker closes stale database connections around each task; inline, that
    would close the test's own connection, so that is left out meanwhile.
    """
    app = celery_module.app
    for signal, uid in CLOSE_CONNECTIONS:
        signal.disconnect(celery_module.close_old_connections, dispatch_uid=uid)
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False
        for signal, uid in CLOSE_CONNECTIONS:
            signal.connect(celery_module.close_old_connections, weak=False, dispatch_uid=uid)


@pytest.fixture
def publish_to_workers(celery):
    """Tasks this process queues go to the broker the ``celery`` fixture's workers listen on."""
    app = celery_module.app
    before = app.conf.broker_url

    def switch(url: str) -> None:
        app.conf.broker_url = url
        app._pool = None  # Celery caches its connection pools: make new ones for the new broker
        app.amqp._producer_pool = None

    switch(worker_broker_url())
    try:
        yield celery
    finally:
        switch(before)
