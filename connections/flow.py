"""The authorization-code flow: start, callback, and API-started connect links.

``state`` is single-use, expires after 10 minutes and is bound to the browser
session that started the flow; PKCE (S256) is used where the client enables
it. No token is stored unless the code exchange and the identity call both
succeed.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, audit_record
from common.hashing import sha256_hex

from .events import connection_event
from .grants import grant_take_over
from .models import AuthorizationState, Connection, ConnectLink, EventKind, Status
from .notifications import notify_recovered
from .oauth import (
    IdentityError,
    TokenEndpointError,
    authorization_url,
    exchange_code,
    fetch_identity,
    new_pkce_verifier,
)
from .services import connection_delete
from .tokens import apply_tokens

STATE_LIFETIME = timedelta(minutes=10)
CONNECT_LINK_LIFETIME = timedelta(minutes=15)
SESSION_KEY = "tokenkeeper_oauth_binding"

PROVIDER_ERRORS = {
    "access_denied": "Access was denied at the provider: the consent was declined or cancelled.",
    "invalid_scope": "The provider refused the requested scopes.",
    "unauthorized_client": "The provider does not allow this OAuth client to use the authorization-code flow.",
    "server_error": "The provider had an internal error.",
    "temporarily_unavailable": "The provider is temporarily unavailable.",
}


class FlowError(Exception):
    def __init__(self, message: str, connection: Connection | None = None):
        super().__init__(message)
        self.message = message
        self.connection = connection


@dataclass
class FlowResult:
    connection: Connection
    reconnected: bool
    # The pending connection the flow was started from, when the account was
    # already connected in this workspace and that connection took the tokens.
    replaced_duplicate: str = ""


def _browser_binding(session) -> str:
    value = session.get(SESSION_KEY)
    if not value:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def flow_start(*, connection: Connection, session, started_by=None) -> str:
    """Record a new flow and return the provider's authorization URL to redirect to."""
    client = connection.oauth_client
    state = secrets.token_urlsafe(32)
    verifier = new_pkce_verifier() if client.use_pkce else None
    AuthorizationState.objects.create(
        connection=connection,
        state_hash=sha256_hex(state),
        session_binding=sha256_hex(_browser_binding(session)),
        code_verifier=verifier or "",
        started_by=started_by,
        expires_at=timezone.now() + STATE_LIFETIME,
    )
    return authorization_url(client, state=state, code_verifier=verifier)


def _fail(connection: Connection, message: str) -> FlowError:
    Connection.objects.filter(pk=connection.pk).update(last_error=message, last_error_at=timezone.now())
    connection.last_error = message
    connection_event(connection, EventKind.AUTHORIZATION_FAILED, message)
    return FlowError(message, connection)


def _claim_state(state: str, session) -> AuthorizationState:
    """Mark this browser's state used, committed before anything else, so a replay always fails.

    A state that another browser started, or that was already used, changes
    nothing: not the state (the right browser can still finish), not the
    connection (no error written on it for a callback that is not its flow's).
    """
    with transaction.atomic():
        record = (
            AuthorizationState.objects.select_for_update()
            .select_related("connection__oauth_client", "connection__workspace")
            .filter(state_hash=sha256_hex(state))
            .first()
        )
        if record is None:
            raise FlowError(
                "This authorization response does not belong to a flow Tokenkeeper started "
                "(unknown state). Start the connection again."
            )
        binding = session.get(SESSION_KEY)
        if not binding or sha256_hex(binding) != record.session_binding:
            raise FlowError(
                "This authorization was started in another browser session. Start it again in this browser.",
                record.connection,
            )
        if record.used_at is not None:
            raise FlowError(
                "This authorization response was already used. Start the connection again.", record.connection
            )
        record.used_at = timezone.now()
        record.save(update_fields=["used_at"])
    return record


def flow_complete(*, session, params, ip: str | None = None) -> FlowResult:
    """Handle the provider's redirect back to ``/oauth2/callback`` (``ip``: the browser's, for the audit trail)."""
    state = params.get("state") or ""
    if not state:
        raise FlowError("The provider's answer carried no state. Start the connection again.")
    record = _claim_state(state, session)
    connection = record.connection
    if record.expires_at <= timezone.now():
        raise _fail(connection, "The authorization took longer than 10 minutes and expired. Start again.")
    if params.get("error"):
        error = params["error"]
        described = PROVIDER_ERRORS.get(error, f"The provider reported an error: {error}.")
        if params.get("error_description"):
            described += f" ({params['error_description'][:300]})"
        raise _fail(connection, described)
    code = params.get("code") or ""
    if not code:
        raise _fail(connection, "The provider's answer carried no authorization code. Start again.")
    client = connection.oauth_client
    issued_at = timezone.now()
    try:
        tokens = exchange_code(client, code=code, code_verifier=record.code_verifier or None)
    except TokenEndpointError as exc:
        raise _fail(
            connection, f"Exchanging the authorization code failed. {exc.message} No tokens were stored; try again."
        ) from None
    if not tokens.access_token:
        raise _fail(connection, "The provider returned no access token. No tokens were stored; try again.")
    try:
        identity = fetch_identity(client, access_token=tokens.access_token)
    except IdentityError as exc:
        raise _fail(
            connection,
            f"The provider issued tokens, but reading the connected account failed: {exc} "
            "No tokens were stored; try again.",
        ) from None
    return _store(connection, tokens, identity, issued_at, started_by=record.started_by, ip=ip)


def division_of(details: dict) -> int | None:
    """Exact Online's division number from the identity's details (None for other providers)."""
    value = details.get("Division")
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


@transaction.atomic
def _store(connection: Connection, tokens, identity, issued_at, *, started_by, ip: str | None) -> FlowResult:
    connection = (
        Connection.objects.select_for_update().select_related("oauth_client", "workspace").get(pk=connection.pk)
    )
    takeover = grant_take_over(connection, identity)
    connection = takeover.connection
    reconnected = connection.connected_at is not None
    was_broken = connection.status == Status.NEEDS_REAUTH
    apply_tokens(connection, tokens, issued_at=issued_at)
    if identity is not None:
        connection.account_id = identity.account_id[:255]
        connection.account_name = identity.name[:255]
        connection.account_email = identity.email[:255]
        connection.account_details = identity.extra
        connection.account_division = division_of(identity.extra)
    connection.count_token_call()  # the code exchange
    connection.status = Status.ACTIVE
    connection.connected_at = timezone.now()
    connection.refresh_failures = 0
    connection.last_error = ""
    connection.last_error_at = None
    connection.lease_token = None
    connection.lease_expires_at = None
    connection.interrupted_at = None
    connection.save()
    kind = EventKind.RECONNECTED if reconnected else EventKind.AUTHORIZED
    account = identity.name or identity.email if identity else ""
    connection_event(
        connection,
        kind,
        f"Authorized{f' as {account}' if account else ''}.",
        account_id=connection.account_id,
        scopes=connection.granted_scopes,
    )
    actor = Actor(user=started_by, ip=ip)  # no user: an end user of a connect link
    audit_record(
        workspace=connection.workspace,
        actor=actor,
        action=f"connection.{kind}",
        target=connection,
        data={"account": account},
    )
    if was_broken:
        connection_event(connection, EventKind.RECOVERED, "Re-authorized after the provider refused the refresh.")
        audit_record(workspace=connection.workspace, actor=actor, action="connection.recovered", target=connection)
        notify_recovered(connection)
    if takeover.duplicate is not None:
        connection_delete(workspace=connection.workspace, connection=takeover.duplicate, actor=actor)
        return FlowResult(connection=connection, reconnected=True, replaced_duplicate=takeover.duplicate.name)
    return FlowResult(connection=connection, reconnected=reconnected)


# --- API-started flows -------------------------------------------------------------


@transaction.atomic
def connect_link_create(*, workspace, connection: Connection, actor: Actor) -> tuple[ConnectLink, str]:
    """A single-use, short-lived URL that an end user opens in any browser to authorize."""
    connection = Connection.objects.get(pk=connection.pk, workspace=workspace)
    token = secrets.token_urlsafe(32)
    link = ConnectLink.objects.create(
        connection=connection,
        token_hash=sha256_hex(token),
        created_by_label=actor.label,
        expires_at=timezone.now() + CONNECT_LINK_LIFETIME,
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="connection.connect_link_created",
        target=connection,
        data={"expires_at": link.expires_at.isoformat()},
    )
    return link, f"{settings.PUBLIC_BASE_URL}/oauth2/connect/{token}"


def connect_link_redeem(*, token: str, session) -> str:
    """Use the link once: bind a new flow to this browser and return the provider URL."""
    with transaction.atomic():
        link = (
            ConnectLink.objects.select_for_update()
            .select_related("connection__oauth_client")
            .filter(token_hash=sha256_hex(token))
            .first()
        )
        if link is None:
            raise FlowError("This connect link is not valid. Ask for a new one.")
        if link.used_at is not None:
            raise FlowError("This connect link was already used. Ask for a new one.")
        if link.expires_at <= timezone.now():
            raise FlowError("This connect link has expired. Ask for a new one.")
        link.used_at = timezone.now()
        link.save(update_fields=["used_at"])
    return flow_start(connection=link.connection, session=session)
