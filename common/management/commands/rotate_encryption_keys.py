"""Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS.

That is every EncryptedTextField, and the two-factor secrets inside allauth's
MFA authenticators (common/mfa.py).

Rotation: put a new key first in FIELD_ENCRYPTION_KEYS (keep the old ones
after it), deploy, run this command, then drop the old keys. Each batch is
its own transaction and rows already on the first key are skipped, so the
command is safe to interrupt and run again.
"""

from allauth.mfa.models import Authenticator
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import F, TextField
from django.db.models.functions import Cast

from common.crypto import Ciphertext, DecryptionError, EncryptedTextField, is_encrypted_with_primary_key, rotate
from common.mfa import map_secrets


def encrypted_fields() -> list[tuple[type, list[str]]]:
    found = []
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if names:
            found.append((model, names))
    return found


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        total_rotated = 0
        for model, fields in encrypted_fields():
            label = model._meta.label
            count = model._default_manager.count()
            done = rotated = 0
            last_pk = None
            while True:
                rows = self._batch(model, fields, last_pk, batch_size)
                if not rows:
                    break
                with transaction.atomic():
                    for row in rows:
                        rotated += self._rotate_row(model, fields, row, label)
                last_pk = rows[-1]["pk"]
                done += len(rows)
                self.stdout.write(f"{label}: {done}/{count} rows checked, {rotated} re-encrypted")
            total_rotated += rotated
        total_rotated += self._rotate_authenticators(batch_size)
        self.stdout.write(self.style.SUCCESS(f"Done: {total_rotated} rows re-encrypted with the first key."))

    def _batch(self, model, fields, last_pk, size):
        # Cast reads the raw ciphertext, bypassing the field's decryption.
        raw = {f"raw_{name}": Cast(F(name), output_field=TextField()) for name in fields}
        queryset = model._default_manager.order_by("pk").annotate(**raw)
        if last_pk is not None:
            queryset = queryset.filter(pk__gt=last_pk)
        return list(queryset.values("pk", *raw.keys())[:size])

    def _rotate_row(self, model, fields, row, label) -> int:
        updates = {}
        for name in fields:
            value = row[f"raw_{name}"]
            if not value or is_encrypted_with_primary_key(value):
                continue
            try:
                updates[name] = Ciphertext(rotate(value))
            except DecryptionError as exc:
                raise CommandError(f"{label} {row['pk']} field {name}: {exc}") from None
        if updates:
            model._default_manager.filter(pk=row["pk"]).update(**updates)
        return 1 if updates else 0

    def _rotate_authenticators(self, batch_size: int) -> int:
        label = Authenticator._meta.label
        count = Authenticator.objects.count()
        done = rotated = 0
        last_pk = 0
        while True:
            with transaction.atomic():
                # Locked: a recovery code used meanwhile changes the same JSON (used_mask).
                rows = list(
                    Authenticator.objects.select_for_update()
                    .filter(pk__gt=last_pk)
                    .order_by("pk")
                    .values("pk", "data")[:batch_size]
                )
                for row in rows:
                    data = map_secrets(row["data"], lambda value, pk=row["pk"]: self._rotated(value, label, pk))
                    if data != row["data"]:
                        Authenticator.objects.filter(pk=row["pk"]).update(data=data)
                        rotated += 1
            if not rows:
                break
            last_pk = rows[-1]["pk"]
            done += len(rows)
            self.stdout.write(f"{label}: {done}/{count} rows checked, {rotated} re-encrypted")
        return rotated

    def _rotated(self, value: str, label: str, pk) -> str:
        if is_encrypted_with_primary_key(value):
            return value
        try:
            return rotate(value)
        except DecryptionError as exc:
            raise CommandError(f"{label} {pk}: {exc}") from None
