"""Provider registry: one module or data entry per provider, one interface."""

from . import exact_online, generic, presets
from .base import AUTH_METHODS, CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, Identity, Provider, RefreshPolicy

PROVIDERS: dict[str, Provider] = {p.key: p for p in [exact_online.PROVIDER, *presets.PRESETS, generic.PROVIDER]}
PROVIDER_CHOICES = [(p.key, p.name) for p in PROVIDERS.values()]


def get_provider(key: str) -> Provider:
    return PROVIDERS[key]


__all__ = [
    "AUTH_METHODS",
    "CLIENT_SECRET_BASIC",
    "CLIENT_SECRET_POST",
    "PROVIDERS",
    "PROVIDER_CHOICES",
    "Identity",
    "Provider",
    "RefreshPolicy",
    "get_provider",
]
