"""Secrets shown once and stored as hashes: API keys and invitation tokens."""

import hmac
import secrets

from common.hashing import sha256_hex

API_KEY_PREFIX = "tk_"


def new_api_key() -> tuple[str, str, str]:
    """Return (raw key, lookup prefix, hash). The raw key is never stored."""
    prefix = secrets.token_hex(6)
    raw = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return raw, prefix, sha256_hex(raw)


def parse_api_key_prefix(raw: str) -> str | None:
    if not raw.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, _ = raw[len(API_KEY_PREFIX) :].partition("_")
    return prefix if sep and len(prefix) == 12 else None


def api_key_matches(raw: str, key_hash: str) -> bool:
    return hmac.compare_digest(sha256_hex(raw), key_hash)


def new_invitation_token() -> tuple[str, str]:
    """Return (raw token for the e-mailed link, hash to store)."""
    raw = secrets.token_urlsafe(32)
    return raw, sha256_hex(raw)
