"""Hashes of secrets we store instead of the secrets (API keys, invitation tokens, OAuth state)."""

import hashlib


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
