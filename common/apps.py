from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common"

    def ready(self) -> None:
        from django.core.signals import request_started
        from django.db.backends.signals import connection_created

        from . import db

        connection_created.connect(db.watch_connection, dispatch_uid="tokenkeeper-watch-connection")
        # Connected after django.db's close_old_connections, so it runs after it.
        request_started.connect(db.skip_recent_health_checks, dispatch_uid="tokenkeeper-recent-health-check")
