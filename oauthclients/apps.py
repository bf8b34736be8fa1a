from django.apps import AppConfig


class OAuthClientsConfig(AppConfig):
    name = "oauthclients"
    default_auto_field = "django.db.models.BigAutoField"
