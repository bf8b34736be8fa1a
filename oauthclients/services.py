"""Writes for OAuth clients. Validation lives here so the API and the browser share it."""

from typing import Any

from django.db import IntegrityError, transaction

from audit.services import Actor, audit_record
from common.errors import CONTROL_CHARACTERS_MESSAGE, ServiceError, clean_name, has_control_characters
from common.netguard import UnsafeURLError, check_url

from .models import OAuthClient
from .providers import AUTH_METHODS, PROVIDERS, get_provider
from .selectors import oauth_client_connections_in_use
from .signals import oauth_client_deleting

URL_FIELDS = ("authorization_url", "token_url", "api_base_url", "identity_url")
EDITABLE_FIELDS = (
    "name",
    "client_id",
    "authorization_url",
    "token_url",
    "scopes",
    "access_token_expires_in",
    "refresh_token_expires_in",
    "token_endpoint_auth_method",
    "use_pkce",
    "api_base_url",
    "identity_url",
    "site",
)
LIFETIME_MESSAGES = {
    "access_token_expires_in": "Enter the access-token lifetime in milliseconds as a whole number above 0, e.g. 3599999.",
    "refresh_token_expires_in": "Enter the refresh-token lifetime in milliseconds as a whole number, 0 for never, "
    "e.g. 7775999999.",
}
MAX_LIFETIME_MS = 2**63 - 1  # what the BigIntegerField column holds


def _lifetime(value: Any, field: str, minimum: int) -> int:
    try:
        number = int(str(value).strip())
        if str(number) != str(value).strip().lstrip("+"):
            raise ValueError
    except (TypeError, ValueError):
        raise ServiceError(LIFETIME_MESSAGES[field], field=field) from None
    if number < minimum:
        raise ServiceError(LIFETIME_MESSAGES[field], field=field)
    if number > MAX_LIFETIME_MS:
        raise ServiceError(f"This lifetime is too large; enter at most {MAX_LIFETIME_MS} milliseconds.", field=field)
    return number


def _apply_provider_defaults(data: dict) -> dict:
    """Fill what the admin left empty from the provider preset (and its country site, if it has sites)."""
    provider = get_provider(data["provider"])
    data["site"] = provider.clean_site(data.get("site"))
    for key, url in provider.site_urls(data["site"]).items():
        data[key] = data.get(key) or url
    data.update(provider.fixed_settings())
    for key, default in (
        ("authorization_url", provider.authorization_url),
        ("token_url", provider.token_url),
        ("scopes", provider.scopes),
        ("api_base_url", provider.api_base_url),
        ("identity_url", provider.identity_url),
        ("token_endpoint_auth_method", provider.token_endpoint_auth_method),
    ):
        if data.get(key) in (None, ""):
            data[key] = default
    if data.get("use_pkce") is None:
        data["use_pkce"] = provider.use_pkce
    if data.get("access_token_expires_in") in (None, ""):
        data["access_token_expires_in"] = provider.access_token_expires_in_ms
    if data.get("refresh_token_expires_in") in (None, ""):
        data["refresh_token_expires_in"] = provider.refresh_token_expires_in_ms
    return data


def _validate(data: dict, *, workspace, instance: OAuthClient | None) -> dict:
    """Check every field, collecting all problems at once; return cleaned values."""
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    try:
        name = clean_name(data.get("name"), empty_message="Give the client a name, e.g. “Exact Online NL”.")
    except ServiceError as exc:
        name = (data.get("name") or "").strip()
        fail("name", exc.message)
    else:
        if workspace.oauth_clients.filter(name__iexact=name).exclude(pk=getattr(instance, "pk", None)).exists():
            fail("name", f"A client named “{name}” already exists in this workspace.")
    data["name"] = name
    data["client_id"] = (data.get("client_id") or "").strip()
    if not data["client_id"]:
        fail("client_id", "Enter the Client ID from the provider's app registration.")
    elif has_control_characters(data["client_id"]):
        fail("client_id", CONTROL_CHARACTERS_MESSAGE)
    for field in URL_FIELDS:
        value = (data.get(field) or "").strip()
        data[field] = value
        if not value and field in ("api_base_url", "identity_url"):
            continue
        if has_control_characters(value):  # urlsplit would quietly drop tabs and line breaks
            fail(field, CONTROL_CHARACTERS_MESSAGE)
            continue
        try:
            check_url(value)
        except UnsafeURLError as exc:
            fail(field, str(exc))
    for field, minimum in (("access_token_expires_in", 1), ("refresh_token_expires_in", 0)):
        try:
            data[field] = _lifetime(data.get(field), field, minimum)
        except ServiceError as exc:
            fail(field, exc.message)
    if data.get("token_endpoint_auth_method") not in dict(AUTH_METHODS):
        fail("token_endpoint_auth_method", "Choose client_secret_basic or client_secret_post.")
    data["scopes"] = " ".join((data.get("scopes") or "").replace(",", " ").split())
    if has_control_characters(data["scopes"]):
        fail("scopes", CONTROL_CHARACTERS_MESSAGE)
    data["use_pkce"] = bool(data.get("use_pkce"))
    if errors:
        first = next(iter(errors.values()))[0]
        raise ServiceError(first if len(errors) == 1 else "Some fields are not valid.", errors=errors)
    return data


def _require_secret(value: str | None, field: str = "client_secret") -> str:
    value = (value or "").strip()
    if not value:
        raise ServiceError("Enter the Client Secret from the provider's app registration.", field=field)
    return value


@transaction.atomic
def oauth_client_create(
    *, workspace, actor: Actor, provider: str, client_secret: str, webhook_secret: str = "", **fields
) -> OAuthClient:
    if provider not in PROVIDERS:
        raise ServiceError(f"Choose a type: {', '.join(PROVIDERS)}.", field="provider")
    try:
        secret = _require_secret(client_secret)
    except ServiceError as exc:
        secret, secret_error = "", exc
    else:
        secret_error = None
    data = {key: fields.get(key) for key in EDITABLE_FIELDS}
    data["provider"] = provider
    try:
        data = _validate(_apply_provider_defaults(data), workspace=workspace, instance=None)
    except ServiceError as exc:
        if secret_error:
            exc.errors.setdefault("client_secret", [secret_error.message])
        raise
    if secret_error:
        raise secret_error
    try:
        with transaction.atomic():
            client = OAuthClient.objects.create(
                workspace=workspace,
                created_by=actor.user,
                client_secret=secret,
                webhook_secret=(webhook_secret or "").strip(),
                **data,
            )
    except IntegrityError:
        raise ServiceError(f"A client named “{data['name']}” already exists in this workspace.", field="name") from None
    audit_record(
        workspace=workspace,
        actor=actor,
        action="oauth_client.created",
        target=client,
        data={"provider": provider, "name": client.name, "client_id": client.client_id},
    )
    return client


def _settings_after_update(*, workspace, client: OAuthClient, fields: dict) -> tuple[dict, dict]:
    """The client's settings now, and as an update with ``fields`` would leave them (validated)."""
    current = {key: getattr(client, key) for key in EDITABLE_FIELDS}
    data = {**current, **{k: v for k, v in fields.items() if k in EDITABLE_FIELDS}}
    data["provider"] = client.provider
    if data.get("site") != client.site:
        # A new site brings its own URLs, unless the caller gave others (or had changed them before).
        for key, url in client.provider_spec.site_urls(client.site).items():
            if not fields.get(key) and data[key] == url:
                data[key] = None
    data = _validate(_apply_provider_defaults(data), workspace=workspace, instance=client)
    data.pop("provider")
    return current, data


def oauth_client_check_update(*, workspace, client: OAuthClient, **fields) -> None:
    """Raise the ServiceError ``oauth_client_update`` would raise for ``fields``; change nothing.

    For forms that show every problem next to its field before saving (the Django admin).
    """
    _settings_after_update(workspace=workspace, client=client, fields=fields)


@transaction.atomic
def oauth_client_update(
    *,
    workspace,
    client: OAuthClient,
    actor: Actor,
    client_secret: str | None = None,
    webhook_secret: str | None = None,
    **fields,
) -> OAuthClient:
    """Change settings; a non-empty ``client_secret``/``webhook_secret`` replaces the stored one."""
    client = OAuthClient.objects.select_for_update().get(pk=client.pk, workspace=workspace)
    current, data = _settings_after_update(workspace=workspace, client=client, fields=fields)
    changed = sorted(key for key, value in data.items() if value != current[key])
    for key in changed:
        setattr(client, key, data[key])
    if changed:
        client.save()
        audit_record(
            workspace=workspace, actor=actor, action="oauth_client.updated", target=client, data={"fields": changed}
        )
    if client_secret:
        oauth_client_replace_secret(workspace=workspace, client=client, actor=actor, client_secret=client_secret)
    if webhook_secret is not None and webhook_secret.strip():
        oauth_client_replace_secret(workspace=workspace, client=client, actor=actor, webhook_secret=webhook_secret)
    return client


@transaction.atomic
def oauth_client_replace_secret(
    *, workspace, client: OAuthClient, actor: Actor, client_secret: str | None = None, webhook_secret: str | None = None
) -> OAuthClient:
    client = OAuthClient.objects.select_for_update().get(pk=client.pk, workspace=workspace)
    replaced = []
    if client_secret is not None:
        client.client_secret = _require_secret(client_secret)
        replaced.append("client_secret")
    if webhook_secret is not None:
        client.webhook_secret = webhook_secret.strip()
        replaced.append("webhook_secret")
    if not replaced:
        raise ServiceError("Enter the new secret.", field="client_secret")
    client.save(update_fields=[*replaced, "updated_at"])
    audit_record(
        workspace=workspace,
        actor=actor,
        action="oauth_client.secret_replaced",
        target=client,
        data={"secrets": replaced},
    )
    return client


@transaction.atomic
def oauth_client_delete(*, workspace, client: OAuthClient, actor: Actor, revoke_connections: bool = False) -> int:
    """Delete a client. Refused while connections use it, unless ``revoke_connections``.

    The connections app revokes them, in this transaction, when it hears
    ``oauth_client_deleting``. Returns how many connections were revoked.
    """
    client = OAuthClient.objects.select_for_update().get(pk=client.pk, workspace=workspace)
    in_use = oauth_client_connections_in_use(client=client)
    if in_use and not revoke_connections:
        raise ServiceError(
            f"{in_use} connection(s) use this client. Confirm that they will be revoked to delete it.",
            code="client_in_use",
        )
    oauth_client_deleting.send(sender=OAuthClient, workspace=workspace, client=client, actor=actor)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="oauth_client.deleted",
        target=client,
        data={"name": client.name, "provider": client.provider, "revoked_connections": in_use},
    )
    client.delete()
    return in_use
