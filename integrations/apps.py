from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # receivers: a connection's lifecycle → the event stream and Exact subscriptions;
        # tasks: registered in every process, so integrations.queue finds them by name.
        from . import receivers, tasks  # noqa: F401
