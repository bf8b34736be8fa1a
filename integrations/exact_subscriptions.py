"""Exact Online webhook subscriptions, per connection: the topics an admin chose,
created at Exact with the connection's access token, removed when it is
disconnected, created again after a reconnect.

Each ``ExactSubscription`` row is brought in line with what is wanted by
``subscription_sync`` (task ``exact_subscription_sync``, retried on transient
errors): wanted means selected, on a connection that is connected (active,
refresh failing or needing re-authorization); everything else is removed.
Exact keeps one subscription per (app, division, topic), so two connections
of one app and division share it: it is removed only when no other
connected row uses it.

Exact: ``POST {api}/{division}/webhooks/WebhookSubscriptions`` with
``CallbackURL`` and ``Topic`` (a duplicate answers 500 "Data already
exists"), ``GET`` the same URL to list them, ``DELETE
…/WebhookSubscriptions(guid'<ID>')`` (docs/exact-online.md).
"""

import logging
import re
from dataclasses import dataclass

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, audit_record
from common.errors import ConflictError, ServiceError, UnavailableError
from common.netguard import UnsafeURLError
from common.outbound import RedirectRefused
from common.outbound import request as outbound_request
from connections.access import connection_access_token
from connections.models import Connection, Status

from .models import ExactSubscription, SubscriptionState
from .queue import enqueue

logger = logging.getLogger(__name__)

SYNC_TASK = "integrations.tasks.exact_subscription_sync"
EXACT_ONLINE = "exact_online"
# Offered in the form; any other topic name Exact knows can be typed in.
KNOWN_TOPICS = (
    "Accounts",
    "BankAccounts",
    "Contacts",
    "Documents",
    "FinancialTransactions",
    "GoodsDeliveries",
    "Items",
    "PurchaseOrders",
    "Quotations",
    "SalesInvoices",
    "SalesOrders",
)
TOPIC_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]{0,59}")
MAX_TOPICS = 30
CONNECTED = (Status.ACTIVE, Status.REFRESH_FAILING, Status.NEEDS_REAUTH)
TIMEOUT = (10, 30)


def callback_url(oauth_client) -> str:
    """Where Exact sends the events of this client's subscriptions."""
    return f"{settings.PUBLIC_BASE_URL}/webhooks/exact-online/{oauth_client.id}/"


def callback_is_https() -> bool:
    """Exact accepts only https callbacks: with an http PUBLIC_BASE_URL, subscriptions work with the emulator only."""
    return settings.PUBLIC_BASE_URL.startswith("https://")


def queue_sync(subscription_ids) -> None:
    """Sync these rows once the current transaction has committed."""
    ids = [str(i) for i in subscription_ids]

    def send() -> None:
        for subscription_id in ids:
            enqueue(SYNC_TASK, subscription_id)

    if ids:
        transaction.on_commit(send, robust=True)


# --- An admin's choice ----------------------------------------------------------------------------


def clean_topics(topics) -> list[str]:
    if not isinstance(topics, list | tuple) or not all(isinstance(t, str) for t in topics):
        raise ServiceError("Give the topics as a list of names, e.g. [“Accounts”, “SalesInvoices”].", field="topics")
    cleaned: dict[str, str] = {}
    for topic in (t.strip() for t in topics):
        if not topic:
            continue
        if not TOPIC_PATTERN.fullmatch(topic):
            raise ServiceError(
                f"“{topic[:60]}” is not an Exact Online topic name: letters and digits, e.g. SalesInvoices.",
                field="topics",
            )
        cleaned.setdefault(topic.lower(), topic)
    if len(cleaned) > MAX_TOPICS:
        raise ServiceError(f"Choose at most {MAX_TOPICS} topics.", field="topics")
    return sorted(cleaned.values())


def _exact_connection(workspace, connection: Connection) -> Connection:
    connection = (
        Connection.objects.select_for_update(of=("self",))
        .select_related("oauth_client")
        .get(pk=connection.pk, workspace=workspace)
    )
    if connection.oauth_client.provider != EXACT_ONLINE:
        raise ServiceError("Only Exact Online connections have Exact Online webhooks.", code="not_exact_online")
    return connection


@transaction.atomic
def exact_topics_set(*, workspace, connection: Connection, topics, actor: Actor) -> list[ExactSubscription]:
    """Subscribe the connection to exactly these topics: new ones are created at Exact, dropped ones removed."""
    connection = _exact_connection(workspace, connection)
    wanted = {topic.lower(): topic for topic in clean_topics(topics)}
    if wanted and not connection.oauth_client.webhook_secret:
        raise ServiceError(
            f"Set the Webhook Secret of the OAuth client “{connection.oauth_client.name}” first (Exact shows it "
            "in Manage my apps): without it Tokenkeeper cannot check Exact's signatures and refuses every event.",
            field="topics",
            code="no_webhook_secret",
        )
    rows = {
        row.topic.lower(): row for row in ExactSubscription.objects.select_for_update().filter(connection=connection)
    }
    added = [topic for key, topic in wanted.items() if key not in rows or not rows[key].selected]
    dropped = [row.topic for key, row in rows.items() if key not in wanted and row.selected]
    to_sync = []
    for key, topic in wanted.items():
        row = rows.get(key)
        if row is not None and row.selected:
            continue
        row = row or ExactSubscription(workspace=workspace, connection=connection, topic=topic)
        row.selected, row.last_error = True, ""
        if row.exact_id:  # chosen again before its removal ran: it is still there
            row.state = SubscriptionState.ACTIVE
        elif connection.status in CONNECTED:
            row.state = SubscriptionState.PENDING
            to_sync.append(row.pk)
        else:
            row.state = SubscriptionState.INACTIVE
        row.save()
    for key, row in rows.items():
        if key in wanted or not row.selected:
            continue
        if row.exact_id:
            row.selected, row.state, row.last_error = False, SubscriptionState.REMOVING, ""
            row.save()
            to_sync.append(row.pk)
        else:
            row.delete()
    if added or dropped:
        audit_record(
            workspace=workspace,
            actor=actor,
            action="connection.exact_webhooks_changed",
            target=connection,
            data={"added": added, "removed": dropped},
        )
    queue_sync(to_sync)
    return list(ExactSubscription.objects.filter(connection=connection))


@transaction.atomic
def exact_subscriptions_retry(*, workspace, connection: Connection, actor: Actor) -> int:
    """Try the failed subscriptions of a connection again; returns how many."""
    connection = _exact_connection(workspace, connection)
    failed = list(
        ExactSubscription.objects.select_for_update().filter(connection=connection, state=SubscriptionState.FAILED)
    )
    for row in failed:
        wanted = row.selected and connection.status in CONNECTED
        row.state = SubscriptionState.PENDING if wanted else SubscriptionState.REMOVING
        row.save(update_fields=["state", "updated_at"])
    if failed:
        audit_record(
            workspace=workspace,
            actor=actor,
            action="connection.exact_webhooks_retried",
            target=connection,
            data={"topics": [row.topic for row in failed]},
        )
    queue_sync([row.pk for row in failed])
    return len(failed)


# --- The connection's life (connections' signals, integrations.receivers) ---------------------------


def subscriptions_resume(*, connection: Connection) -> None:
    """After a connect or reconnect: bring every chosen topic back (created again, or moved to a new division)."""
    rows = ExactSubscription.objects.filter(connection=connection, selected=True)
    ids = list(rows.values_list("pk", flat=True))
    rows.exclude(state=SubscriptionState.ACTIVE).update(state=SubscriptionState.PENDING, last_error="")
    queue_sync(ids)


def subscriptions_release(*, connection: Connection, deleting: bool) -> None:
    """Before the connection's tokens go: keep its access token (encrypted) with each subscription
    at Exact so it can still be removed, and queue the removals."""
    rows = ExactSubscription.objects.filter(connection=connection)
    at_exact = list(rows.exclude(exact_id="").values_list("pk", flat=True))
    rows.filter(pk__in=at_exact).update(state=SubscriptionState.REMOVING, last_error="")
    if connection.access_token:  # else (already disconnected) keep the token kept then
        for row in ExactSubscription.objects.filter(pk__in=at_exact):
            row.removal_token = connection.access_token
            row.removal_token_expires_at = connection.access_token_expires_at
            row.save(update_fields=["removal_token", "removal_token_expires_at"])
    others = rows.filter(exact_id="")
    if deleting:
        others.delete()
    else:
        others.update(state=SubscriptionState.INACTIVE, last_error="")
    queue_sync(at_exact)


# --- Sync one row with Exact ----------------------------------------------------------------------


class SyncError(Exception):
    """Exact (or the token) refused; ``retry`` when trying again later can help."""

    def __init__(self, message: str, *, retry: bool):
        super().__init__(message)
        self.message = message
        self.retry = retry


@dataclass
class _Token:
    value: str = ""
    problem: str = ""
    retry: bool = False


def subscription_sync(*, subscription_id) -> None:
    """Create or remove one subscription at Exact, as wanted. Raises SyncError(retry=True) when
    the attempt should be repeated later (the row says so meanwhile)."""
    token = _token_for(subscription_id)  # before the row lock: it may refresh the connection first
    failure = None
    with transaction.atomic():
        row = (
            ExactSubscription.objects.select_for_update(of=("self",))
            .select_related("connection__oauth_client")
            .filter(pk=subscription_id)
            .first()
        )
        if row is None:
            return
        row.last_attempt_at = timezone.now()
        try:
            if _wanted(row):
                _create(row, token)
            else:
                _remove(row, token)
        except SyncError as error:
            failure = error
            _note_failure(row, error)
    if failure is not None and failure.retry:
        raise failure


def subscription_give_up(*, subscription_id, message: str) -> None:
    """The last retry failed: the row says why, and waits for someone to retry (or a reconnect)."""
    row = ExactSubscription.objects.filter(pk=subscription_id).first()
    if row is None:
        return
    row.state = SubscriptionState.FAILED
    row.last_error = f"{message} Tokenkeeper gave up retrying."
    row.removal_token, row.removal_token_expires_at = "", None
    row.save()
    if row.connection_id is None:
        logger.warning("gave up removing Exact subscription %s of a deleted connection", row.exact_id)
        row.delete()


def _wanted(row: ExactSubscription) -> bool:
    return row.selected and row.connection is not None and row.connection.status in CONNECTED


def _token_for(subscription_id) -> _Token:
    row = ExactSubscription.objects.select_related("connection").filter(pk=subscription_id).first()
    if row is None:
        return _Token()
    problem, retry = "The connection has no access token.", False
    if row.connection is not None and row.connection.status in CONNECTED:
        try:
            return _Token(str(connection_access_token(connection=row.connection).access_token))
        except UnavailableError as error:
            problem, retry = error.message, True
        except ConflictError as error:
            problem = error.message
    if row.removal_token and row.removal_token_expires_at and row.removal_token_expires_at > timezone.now():
        return _Token(str(row.removal_token))
    if row.removal_token:
        problem = "The access token the connection had when it was disconnected has expired."
    return _Token(problem=problem, retry=retry)


def _note_failure(row: ExactSubscription, error: SyncError) -> None:
    row.attempts += 1
    row.last_error = error.message
    if error.retry:
        row.state = SubscriptionState.PENDING if _wanted(row) else SubscriptionState.REMOVING
        row.save()
        return
    row.state = SubscriptionState.FAILED
    row.removal_token, row.removal_token_expires_at = "", None
    if row.connection_id is None:
        logger.warning("could not remove Exact subscription %s of a deleted connection: %s", row.exact_id, error)
        row.delete()
        return
    row.save()


def _require(token: _Token) -> str:
    if not token.value:
        raise SyncError(token.problem, retry=token.retry)
    return token.value


def _create(row: ExactSubscription, token: _Token) -> None:
    connection = row.connection
    client = connection.oauth_client
    division = str((connection.account_details or {}).get("Division") or "")
    if not division:
        raise SyncError("The connection has no Exact Online division; reconnect it.", retry=False)
    url = callback_url(client)
    if row.state == SubscriptionState.ACTIVE and row.exact_id and (row.division, row.callback_url) == (division, url):
        return  # already there
    value = _require(token)
    if row.exact_id:  # made for another division or callback URL: replace it
        _delete_at_exact(row.api_base, row.division, row.exact_id, value)
    api_base = client.api_base.rstrip("/")
    row.exact_id = _subscribe(api_base, division, row.topic, url, value)
    row.division, row.api_base, row.callback_url = division, api_base, url
    row.state, row.last_error, row.attempts = SubscriptionState.ACTIVE, "", 0
    row.removal_token, row.removal_token_expires_at = "", None
    row.save()
    logger.info("Exact subscription %s (%s, division %s) created", row.exact_id, row.topic, division)


def _remove(row: ExactSubscription, token: _Token) -> None:
    if row.exact_id and not _shared(row):
        _delete_at_exact(row.api_base, row.division, row.exact_id, _require(token))
        logger.info("Exact subscription %s (%s, division %s) removed", row.exact_id, row.topic, row.division)
    if row.selected and row.connection_id is not None:
        row.exact_id, row.state, row.last_error, row.attempts = "", SubscriptionState.INACTIVE, "", 0
        row.removal_token, row.removal_token_expires_at = "", None
        row.save()
    else:
        row.delete()


def _shared(row: ExactSubscription) -> bool:
    """Another connected connection's chosen topic uses the same subscription at Exact."""
    return (
        ExactSubscription.objects.filter(exact_id=row.exact_id, selected=True, connection__status__in=CONNECTED)
        .exclude(pk=row.pk)
        .exists()
    )


# --- Exact's REST API ------------------------------------------------------------------------------


def _subscriptions_url(api_base: str, division: str) -> str:
    return f"{api_base}/{division}/webhooks/WebhookSubscriptions"


def _call(method: str, url: str, token: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        return outbound_request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
    except (RedirectRefused, UnsafeURLError) as error:
        raise SyncError(f"Exact Online's API could not be called: {error}", retry=False) from None
    except requests.RequestException as error:
        raise SyncError(f"Exact Online did not answer ({type(error).__name__}).", retry=True) from None


def _exact_message(response: requests.Response) -> str:
    try:
        message = response.json()["error"]["message"]
        text = message.get("value", "") if isinstance(message, dict) else str(message)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = ""
    return f"HTTP {response.status_code}{f': {text[:300]}' if text else ''}"


def _refusal(response: requests.Response, doing: str) -> SyncError:
    retry = response.status_code in (401, 408, 429) or response.status_code >= 500
    return SyncError(f"Exact Online refused {doing}: {_exact_message(response)}.", retry=retry)


def _subscribe(api_base: str, division: str, topic: str, callback: str, token: str) -> str:
    """Create the subscription (or adopt the one Exact already has) and return its ID."""
    url = _subscriptions_url(api_base, division)
    response = _call("POST", url, token, json={"CallbackURL": callback, "Topic": topic})
    if response.status_code in (200, 201):
        return str(response.json()["d"]["ID"])
    existing = _existing(url, topic, token)
    if existing is None:
        raise _refusal(response, f"the subscription to {topic}")
    if existing.get("CallbackURL") == callback:
        return str(existing["ID"])
    # Another callback (PUBLIC_BASE_URL changed): only one per topic, so replace it.
    _delete_at_exact(api_base, division, str(existing["ID"]), token)
    response = _call("POST", url, token, json={"CallbackURL": callback, "Topic": topic})
    if response.status_code in (200, 201):
        return str(response.json()["d"]["ID"])
    raise _refusal(response, f"the subscription to {topic}")


def _existing(url: str, topic: str, token: str) -> dict | None:
    response = _call("GET", url, token)
    if response.status_code != 200:
        return None
    try:
        results = response.json()["d"]
        results = results.get("results", []) if isinstance(results, dict) else results
    except (ValueError, KeyError, TypeError):
        return None
    return next((s for s in results if str(s.get("Topic", "")).lower() == topic.lower()), None)


def _delete_at_exact(api_base: str, division: str, exact_id: str, token: str) -> None:
    response = _call("DELETE", f"{_subscriptions_url(api_base, division)}(guid'{exact_id}')", token)
    if response.status_code not in (200, 204, 404):  # 404: already gone
        raise _refusal(response, "removing the subscription")
