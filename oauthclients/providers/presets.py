"""Well-known providers, as data. Each is a Provider with its defaults."""

from .base import CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, Provider

XERO = Provider(
    key="xero",
    name="Xero",
    authorization_url="https://login.xero.com/identity/connect/authorize",
    token_url="https://identity.xero.com/connect/token",
    scopes="openid profile email offline_access accounting.transactions accounting.contacts",
    token_endpoint_auth_method=CLIENT_SECRET_BASIC,
    use_pkce=True,
    api_base_url="https://api.xero.com/api.xro/2.0",
    identity_url="https://api.xero.com/connections",
    access_token_expires_in_ms=1_800_000,
    refresh_token_expires_in_ms=60 * 24 * 3600 * 1000,
    rotates_refresh_token=True,
    docs_url="https://developer.xero.com/documentation/guides/oauth2/auth-flow",
)

SALESFORCE = Provider(
    key="salesforce",
    name="Salesforce",
    authorization_url="https://login.salesforce.com/services/oauth2/authorize",
    token_url="https://login.salesforce.com/services/oauth2/token",
    scopes="api refresh_token openid",
    token_endpoint_auth_method=CLIENT_SECRET_POST,
    use_pkce=True,
    api_base_url="",
    identity_url="https://login.salesforce.com/services/oauth2/userinfo",
    access_token_expires_in_ms=7_200_000,
    refresh_token_expires_in_ms=0,
    rotates_refresh_token=False,
    docs_url="https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm",
)

MICROSOFT_ENTRA_ID = Provider(
    key="microsoft_entra_id",
    name="Microsoft Entra ID",
    authorization_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
    scopes="openid profile email offline_access User.Read",
    token_endpoint_auth_method=CLIENT_SECRET_POST,
    use_pkce=True,
    api_base_url="https://graph.microsoft.com/v1.0",
    identity_url="https://graph.microsoft.com/oidc/userinfo",
    access_token_expires_in_ms=3_600_000,
    refresh_token_expires_in_ms=90 * 24 * 3600 * 1000,
    rotates_refresh_token=True,
    docs_url="https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow",
)

GOOGLE = Provider(
    key="google",
    name="Google",
    authorization_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",
    scopes="openid email profile",
    token_endpoint_auth_method=CLIENT_SECRET_POST,
    use_pkce=True,
    api_base_url="https://www.googleapis.com",
    identity_url="https://openidconnect.googleapis.com/v1/userinfo",
    access_token_expires_in_ms=3_599_000,
    refresh_token_expires_in_ms=0,
    extra_authorize_params={"access_type": "offline", "prompt": "consent"},
    docs_url="https://developers.google.com/identity/protocols/oauth2/web-server",
)

PRESETS = [XERO, SALESFORCE, MICROSOFT_ENTRA_ID, GOOGLE]
