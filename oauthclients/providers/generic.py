"""Any OAuth 2.0 provider: the admin gives every URL and setting."""

from .base import CLIENT_SECRET_BASIC, Provider

PROVIDER = Provider(
    key="generic",
    name="Generic OAuth 2.0",
    token_endpoint_auth_method=CLIENT_SECRET_BASIC,
    use_pkce=True,
    access_token_expires_in_ms=3_600_000,
    refresh_token_expires_in_ms=0,
)
