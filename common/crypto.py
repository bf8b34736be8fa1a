"""Encryption at rest for secrets (client secrets, webhook secrets, tokens).

Keys come from ``FIELD_ENCRYPTION_KEYS`` (comma-separated Fernet keys), never
from ``SECRET_KEY``: the first key encrypts, every key decrypts, so keys can be
rotated with ``manage.py rotate_encryption_keys``.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """A stored value that none of the configured keys decrypts."""


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: set at least one Fernet key.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds an invalid key; make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
        ) from exc


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


_MISSING_KEY = (
    "A stored secret could not be decrypted with any key in FIELD_ENCRYPTION_KEYS; "
    "the key that encrypted it is missing."
)


def decrypt(ciphertext: str) -> str:
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError(_MISSING_KEY) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the first key; raises DecryptionError if no key fits."""
    try:
        return fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError(_MISSING_KEY) from None


def is_encrypted_with_primary_key(ciphertext: str) -> bool:
    try:
        _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS[:1])).decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


class Ciphertext(str):
    """Already-encrypted text: stored as is (used by key rotation)."""


class Secret(str):
    """A decrypted secret whose repr and str-in-templates never show the value."""

    def __repr__(self) -> str:
        return "Secret('********')"


# Marks ciphertext in exports (dumpdata); common/serializers turns it back into the secret on loaddata.
EXPORT_PREFIX = "tokenkeeper-encrypted:"


def reveal_exported(value):
    """The secret behind an exported value, or the value itself if it is not one."""
    if isinstance(value, str) and value.startswith(EXPORT_PREFIX):
        return Secret(decrypt(value.removeprefix(EXPORT_PREFIX)))
    return value


class EncryptedTextField(models.TextField):
    """A text column holding Fernet ciphertext; Python sees the plaintext.

    Empty strings are stored as empty strings (nothing to hide). A value no key
    decrypts raises DecryptionError instead of leaking ciphertext. Exports
    (``dumpdata``) carry ciphertext, never the secret: see ``value_to_string``.
    """

    def value_to_string(self, obj) -> str:
        # Serializers call this; ``to_python`` does not undo it, so a marked value
        # typed into a form is just text. Only loaddata's deserializers
        # (common/serializers) turn it back into the secret.
        value = self.value_from_object(obj)
        if not value:
            return ""
        ciphertext = str(value) if isinstance(value, Ciphertext) else encrypt(str(value))
        return EXPORT_PREFIX + ciphertext

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return Secret(decrypt(value))

    def get_prep_value(self, value):
        if isinstance(value, Ciphertext):
            return str(value)
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))
