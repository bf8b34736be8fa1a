from django import forms

from common.humanize import human_duration

from .providers import AUTH_METHODS, PROVIDER_CHOICES, get_provider
from .providers.exact_online import SITES

URL_WIDGET = forms.URLInput(attrs={"size": 60, "spellcheck": "false"})


class OAuthClientForm(forms.Form):
    """Register or edit a client. Labels follow the provider docs users read."""

    provider = forms.ChoiceField(label="Type", choices=PROVIDER_CHOICES)
    site = forms.ChoiceField(
        label="Country site",
        choices=list(SITES.items()),
        required=False,
        initial="nl",
        help_text="Where your Exact Online app is registered; fills in the URLs.",
    )
    name = forms.CharField(label="Name", max_length=100)
    client_id = forms.CharField(label="Client ID", max_length=255)
    client_secret = forms.CharField(label="Client Secret", widget=forms.PasswordInput(render_value=False), strip=True)
    webhook_secret = forms.CharField(
        label="Webhook Secret",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Optional: to verify the provider's webhook calls.",
    )
    authorization_url = forms.CharField(label="Authorization URL", max_length=500, widget=URL_WIDGET)
    token_url = forms.CharField(label="Token URL", max_length=500, widget=URL_WIDGET)
    access_token_expires_in = forms.CharField(
        label="Access Token Expires In (ms)", widget=forms.TextInput(attrs={"inputmode": "numeric"})
    )
    refresh_token_expires_in = forms.CharField(
        label="Refresh Token Expires In (ms)", widget=forms.TextInput(attrs={"inputmode": "numeric"})
    )
    scopes = forms.CharField(
        label="Scopes", required=False, max_length=1000, help_text="Space-separated, as the provider names them."
    )
    token_endpoint_auth_method = forms.ChoiceField(label="Client authentication method", choices=AUTH_METHODS)
    use_pkce = forms.BooleanField(label="Use PKCE (S256)", required=False)
    api_base_url = forms.CharField(label="API base URL", required=False, max_length=500, widget=URL_WIDGET)
    identity_url = forms.CharField(
        label="Identity URL",
        required=False,
        max_length=500,
        widget=URL_WIDGET,
        help_text="Optional: an endpoint that returns who connected (userinfo).",
    )

    ADVANCED = ("scopes", "token_endpoint_auth_method", "use_pkce", "api_base_url", "identity_url")

    def __init__(self, *args, editing: bool = False, provider: str = "", kept: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # Type is fixed once saved; secrets are replaced on their own page.
            del self.fields["provider"]
            del self.fields["client_secret"]
            del self.fields["webhook_secret"]
        help_texts = expiry_help(get_provider(provider or self.initial.get("provider") or "exact_online"))
        self.fields["access_token_expires_in"].help_text = help_texts["access"]
        self.fields["refresh_token_expires_in"].help_text = help_texts["refresh"]
        self.mark_kept(kept)

    def mark_kept(self, names: tuple[str, ...]) -> None:
        """Secrets typed in an attempt that failed validation and kept (encrypted) in the session."""
        for name in names:
            self.fields[name].required = False
            self.fields[name].help_text = KEPT_SECRET_HELP
            self.fields[name].widget.attrs["placeholder"] = "•••••••• (kept)"
            self._bound_fields_cache.pop(name, None)  # a bound field copies its help text when made

    @classmethod
    def initial_for(cls, provider_key: str = "exact_online") -> dict:
        provider = get_provider(provider_key)
        return {
            "provider": provider.key,
            "site": "nl",
            "authorization_url": provider.authorization_url,
            "token_url": provider.token_url,
            "scopes": provider.scopes,
            "access_token_expires_in": provider.access_token_expires_in_ms,
            "refresh_token_expires_in": provider.refresh_token_expires_in_ms,
            "token_endpoint_auth_method": provider.token_endpoint_auth_method,
            "use_pkce": provider.use_pkce,
            "api_base_url": provider.api_base_url,
            "identity_url": provider.identity_url,
        }

    def basic_fields(self):
        return [f for f in self if f.name not in self.ADVANCED]

    def advanced_fields(self):
        return [f for f in self if f.name in self.ADVANCED]


KEPT_SECRET_HELP = "Kept from your previous attempt (never shown): leave it empty to use it, or type a new one."


def _lifetime(ms: int) -> str:
    return f"{ms} ms ({human_duration(ms / 1000)})"


def expiry_help(provider) -> dict[str, str]:
    """Help for the two lifetimes, naming where the prefilled values come from."""
    source = "a common default" if provider.key == "generic" else f"{provider.name}'s lifetime"
    access = (
        f"Prefilled with {source}: {_lifetime(provider.access_token_expires_in_ms)}. Tokenkeeper uses the "
        "expires_in of each token response when the provider sends one; this value is the fallback."
    )
    if provider.refresh_token_expires_in_ms:
        refresh = (
            f"Prefilled with {source}: {_lifetime(provider.refresh_token_expires_in_ms)}"
            f"{', counted from the last refresh' if provider.rotates_refresh_token else ''}. 0 means never."
        )
    else:
        refresh = f"Prefilled with {source}: 0, which means the refresh token never expires."
    return {"access": access, "refresh": refresh}


class ReplaceSecretForm(forms.Form):
    client_secret = forms.CharField(
        label="New Client Secret", required=False, widget=forms.PasswordInput(render_value=False)
    )
    webhook_secret = forms.CharField(
        label="New Webhook Secret", required=False, widget=forms.PasswordInput(render_value=False)
    )

    def clean(self):
        data = super().clean()
        if not data.get("client_secret") and not data.get("webhook_secret"):
            raise forms.ValidationError("Enter a new Client Secret, a new Webhook Secret, or both.")
        return data


class DeleteClientForm(forms.Form):
    revoke_connections = forms.BooleanField(
        required=False, label="I understand that every connection using this client will be revoked."
    )
