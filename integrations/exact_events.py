"""Exact Online's calls to ``POST /webhooks/exact-online/<oauth client id>/``.

- An empty POST is Exact checking the callback when a subscription is made:
  answered 200.
- Anything else must be ``{"Content": {...}, "HashCode": "..."}`` where
  HashCode is the upper-case hex HMAC-SHA256 of the raw ``Content`` JSON text
  exactly as sent, keyed with the app's webhook secret (compared in constant
  time). A missing or wrong HashCode (lower-case hex included) is 401 and
  nothing is stored.
- A verified event is stored once in the workspace's event stream as
  ``exact_online.webhook``, against the connection that holds its division;
  the same Content delivered again (Exact retries) is not stored twice.
"""

import hashlib
import hmac
import json
import logging
from enum import StrEnum

from common.hashing import sha256_hex
from oauthclients.models import OAuthClient

from . import stream
from .models import EventType
from .selectors import exact_connection_for_division

logger = logging.getLogger(__name__)

EXACT_ONLINE = "exact_online"


class Receipt(StrEnum):
    """What became of one call, and the HTTP status it gets."""

    VALIDATION = "validation"
    STORED = "stored"
    DUPLICATE = "duplicate"
    NO_CONNECTION = "no_connection"  # verified, but no connected connection holds the division
    BAD_SIGNATURE = "bad_signature"
    MALFORMED = "malformed"
    UNKNOWN_CLIENT = "unknown_client"

    @property
    def status(self) -> int:
        return {Receipt.BAD_SIGNATURE: 401, Receipt.MALFORMED: 400, Receipt.UNKNOWN_CLIENT: 404}.get(self, 200)


def exact_webhook_receive(*, oauth_client_id, body: bytes) -> Receipt:
    client = OAuthClient.objects.filter(pk=oauth_client_id, provider=EXACT_ONLINE).first()
    if client is None:
        return Receipt.UNKNOWN_CLIENT
    if not body.strip():
        return Receipt.VALIDATION
    try:
        fields = top_level_fields(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Receipt.MALFORMED
    content_text = fields.get("Content")
    if content_text is None or not hashcode_matches(content_text, fields.get("HashCode"), client.webhook_secret):
        logger.warning("Exact Online webhook for client %s refused: missing or wrong HashCode", client.id)
        return Receipt.BAD_SIGNATURE
    content = json.loads(content_text)
    if not isinstance(content, dict) or not isinstance(content.get("Division"), int | str):
        return Receipt.MALFORMED
    return _store(client, content, content_text)


def hashcode_matches(content_text: str, hashcode_json: str | None, secret: str) -> bool:
    """Exact's HashCode: upper-case hex HMAC-SHA256 of the raw Content text, keyed with the webhook secret."""
    if not secret or hashcode_json is None:
        return False
    try:
        hashcode = json.loads(hashcode_json)
    except ValueError:
        return False
    if not isinstance(hashcode, str):
        return False
    expected = hmac.new(str(secret).encode(), content_text.encode(), hashlib.sha256).hexdigest().upper()
    return hmac.compare_digest(expected.encode(), hashcode.encode())


def top_level_fields(text: str) -> dict[str, str]:
    """The raw JSON text of each value of a top-level object, exactly as sent.

    ``{"Content":{"A":1},"HashCode":"…"}`` gives ``{"Content": '{"A":1}',
    "HashCode": '"…"'}``. Raises ValueError when the text is not one JSON object.
    """
    decoder = json.JSONDecoder()
    i = _skip_space(text, 0)
    if text[i : i + 1] != "{":
        raise ValueError("not a JSON object")
    i = _skip_space(text, i + 1)
    fields: dict[str, str] = {}
    while text[i : i + 1] != "}":
        if text[i : i + 1] != '"':
            raise ValueError("expected a key")
        key, i = decoder.raw_decode(text, i)
        i = _skip_space(text, i)
        if text[i : i + 1] != ":":
            raise ValueError("expected ':'")
        start = _skip_space(text, i + 1)
        _, end = decoder.raw_decode(text, start)
        fields[key] = text[start:end]
        i = _skip_space(text, end)
        if text[i : i + 1] == ",":
            i = _skip_space(text, i + 1)
            if text[i : i + 1] == "}":
                raise ValueError("trailing comma")
        elif text[i : i + 1] != "}":
            raise ValueError("expected ',' or '}'")
    if _skip_space(text, i + 1) != len(text):
        raise ValueError("text after the object")
    return fields


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _text(content: dict, key: str, limit: int = 500) -> str:
    value = content.get(key)
    return str(value)[:limit] if value is not None else ""


def _store(client: OAuthClient, content: dict, content_text: str) -> Receipt:
    division, topic = content["Division"], _text(content, "Topic", 100)
    connection = exact_connection_for_division(oauth_client=client, division=division, topic=topic)
    if connection is None:
        logger.info(
            "Exact Online webhook for client %s: no connected connection holds division %s", client.id, division
        )
        return Receipt.NO_CONNECTION
    data = {
        "connection": {"id": str(connection.id), "name": connection.name},
        "oauth_client": str(client.id),
        "topic": topic,
        "action": _text(content, "Action", 50),
        "division": division,
        "key": _text(content, "Key", 100),
        "endpoint": _text(content, "ExactOnlineEndpoint", 1000),
        "event_created_on": _text(content, "EventCreatedOn", 50),
    }
    event = stream.event_record(
        workspace_id=client.workspace_id,
        type=EventType.EXACT_ONLINE_WEBHOOK,
        connection=connection,
        data=data,
        dedupe_key=f"exact:{sha256_hex(content_text)}",
    )
    return Receipt.STORED if event is not None else Receipt.DUPLICATE
