"""Encrypt the two-factor secrets stored before common.mfa.MFAAdapter encrypted them."""

from django.db import migrations

from common import crypto
from common.mfa import map_secrets

FERNET_TOKEN_START = "gAAAAA"  # version byte 0x80, base64: never the start of a base32 TOTP key or a hex seed


def _encrypted(value: str) -> str:
    try:
        crypto.decrypt(value)
    except crypto.DecryptionError:
        if value.startswith(FERNET_TOKEN_START):
            raise  # ciphertext from a key that is missing: adding the key is the fix, not encrypting again
        return crypto.encrypt(value)
    return value


def encrypt_secrets(apps, schema_editor):
    Authenticator = apps.get_model("mfa", "Authenticator")
    for authenticator in Authenticator.objects.order_by("pk").iterator():
        data = map_secrets(authenticator.data, _encrypted)
        if data != authenticator.data:
            Authenticator.objects.filter(pk=authenticator.pk).update(data=data)


def decrypt_secrets(apps, schema_editor):
    Authenticator = apps.get_model("mfa", "Authenticator")
    for authenticator in Authenticator.objects.order_by("pk").iterator():
        data = map_secrets(authenticator.data, crypto.decrypt)
        Authenticator.objects.filter(pk=authenticator.pk).update(data=data)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("mfa", "0003_authenticator_type_uniq"),
    ]

    operations = [migrations.RunPython(encrypt_secrets, decrypt_secrets)]
