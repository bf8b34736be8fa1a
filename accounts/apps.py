from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_support_group(sender, using="default", **kwargs) -> None:
    from .services import support_group_sync  # here: apps.py is imported before the models are ready

    support_group_sync()


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Users"

    def ready(self) -> None:
        # After every migrate (and test flush): the support group and its permissions
        # (accounts.services); after Django's own handler that creates permissions.
        post_migrate.connect(_sync_support_group, dispatch_uid="accounts.support_group_sync")
