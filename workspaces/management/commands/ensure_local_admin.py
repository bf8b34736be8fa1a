import secrets

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from audit.services import SYSTEM
from workspaces.services import workspace_create

EMAIL = "admin@localhost"


class Command(BaseCommand):
    help = "On a fresh local install (no users yet), create an admin account and a first workspace."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            self.stdout.write("Production mode: no local admin is created; use `manage.py createsuperuser`.")
            return
        User = get_user_model()
        if User.objects.exists():
            if User.objects.filter(email=EMAIL).exists():
                self.stdout.write(
                    f"\n  Tokenkeeper: {settings.PUBLIC_BASE_URL}/ (local admin {EMAIL}; its password was printed on "
                    f"the first run; set a new one with `.venv/bin/python manage.py changepassword {EMAIL}`)\n"
                )
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_superuser(EMAIL, password, name="Local admin")
            EmailAddress.objects.create(user=user, email=EMAIL, verified=True, primary=True)
            workspace_create(user=user, name="My workspace", slug="my-workspace", actor=SYSTEM)
        url = settings.PUBLIC_BASE_URL
        self.stdout.write(
            self.style.SUCCESS(
                "\n  First run: a local admin account was created.\n"
                f"  Log in at {url}/accounts/login/ with\n"
                f"      e-mail:   {EMAIL}\n"
                f"      password: {password}\n"
                f"  (staff pages: {url}/django-admin/; change the password with "
                f"`.venv/bin/python manage.py changepassword {EMAIL}`)\n"
            )
        )
