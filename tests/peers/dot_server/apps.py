from django.apps import AppConfig


class DotServerConfig(AppConfig):
    name = "dot_server"
    label = "dot_server"
    default_auto_field = "django.db.models.BigAutoField"
