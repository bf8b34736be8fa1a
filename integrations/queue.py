"""Queue integrations' Celery tasks by name: ``tasks`` imports the modules that
queue them, so they look the task up in the app's registry instead of importing it."""

from celery import current_app


def enqueue(task_name: str, *args, **options) -> None:
    current_app.tasks[task_name].apply_async(args=list(args), **options)
