from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import support_grant, support_revoke
from audit.services import SYSTEM


class Command(BaseCommand):
    help = (
        "Make someone Tokenkeeper support staff: they can log in to /django-admin/, see every workspace "
        "(never a secret) and run the support actions. --revoke takes it away."
    )

    def add_arguments(self, parser):
        parser.add_argument("email", help="The e-mail address the person signs in with (they sign up first).")
        parser.add_argument("--revoke", action="store_true", help="Remove them from support instead.")

    def handle(self, *args, email: str, revoke: bool, **options):
        user = get_user_model().objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(
                f"No user signs in with {email}. Ask them to sign up first (or create the account with "
                "`manage.py createsuperuser`), then run this again."
            )
        if revoke:
            done = support_revoke(user=user, actor=SYSTEM)
            self.stdout.write(
                f"{user.email} is no longer support staff." if done else f"{user.email} was not support staff."
            )
            return
        done = support_grant(user=user, actor=SYSTEM)
        self.stdout.write(
            self.style.SUCCESS(f"{user.email} is now support staff: they sign in at /django-admin/.")
            if done
            else f"{user.email} already is support staff."
        )
