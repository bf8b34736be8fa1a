"""Refresh one connection now, as an admin's "refresh now" does: at once, or when the provider's
window opens (Exact Online: the last 30 s before expiry), never against the provider's budgets.

    manage.py refresh_connection 3f2c…            # acts as "system" in the audit trail
    manage.py refresh_connection 3f2c… --staff support@example.com
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.services import SYSTEM, Actor
from common.errors import ServiceError

from ...models import Connection
from ...refresh import Outcome
from ...services import connection_refresh_now

SUCCESS = {Outcome.REFRESHED, Outcome.SCHEDULED}


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("connection_id")
        parser.add_argument("--staff", metavar="EMAIL", help="the staff user to record as the actor (default: system)")

    def handle(self, *args, connection_id: str, staff: str | None, **options):
        connection = self._connection(connection_id)
        try:
            result = connection_refresh_now(
                workspace=connection.workspace, connection=connection, actor=self._actor(staff)
            )
        except ServiceError as error:
            raise CommandError(f"Not refreshed: {error.message}", returncode=2) from None
        message = result.message or {Outcome.REFRESHED: "Refreshed."}.get(result.outcome, "")
        line = (
            f"{connection.name} ({connection.id}, workspace {connection.workspace.slug}): {result.outcome}. {message}"
        )
        if result.outcome not in SUCCESS:
            raise CommandError(line, returncode=1)
        self.stdout.write(self.style.SUCCESS(line))

    def _connection(self, connection_id: str) -> Connection:
        try:
            return Connection.objects.select_related("workspace").get(pk=connection_id)
        except (Connection.DoesNotExist, ValidationError):
            raise CommandError(f"No connection with id {connection_id}.", returncode=2) from None

    def _actor(self, email: str | None) -> Actor:
        if not email:
            return SYSTEM
        user = get_user_model().objects.filter(email__iexact=email, is_staff=True, is_active=True).first()
        if user is None:
            raise CommandError(f"No active staff user {email}.", returncode=2)
        return Actor(user=user)
