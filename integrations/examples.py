"""Examples shown in /api/docs/ and the README (tests/integrations/test_examples.py runs them)."""

EVENTS_CURL = """\
curl -s -H "Authorization: Bearer $TOKENKEEPER_KEY" \\
  "$TOKENKEEPER_URL/api/v1/workspaces/$WORKSPACE/events/?after=0&limit=100"
"""

EVENTS_PYTHON = """\
import os, requests

base = f"{os.environ['TOKENKEEPER_URL']}/api/v1/workspaces/{os.environ['WORKSPACE']}/events/"
headers = {"Authorization": f"Bearer {os.environ['TOKENKEEPER_KEY']}"}


def handle(event):  # your code; event["id"] is unique, so it can be made idempotent
    print(event["cursor"], event["type"], event["data"].get("connection", {}).get("name"))


cursor = 0  # keep it somewhere durable: after a restart, go on from there and miss nothing
while True:
    page = requests.get(base, params={"after": cursor, "limit": 500}, headers=headers, timeout=30).json()
    for event in page["events"]:
        handle(event)
        cursor = event["cursor"]
    if not page["has_more"]:
        break  # caught up: or sleep a few seconds and poll again
"""

VERIFY_PYTHON = """\
# pip install standardwebhooks
import os
from standardwebhooks import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["TOKENKEEPER_WEBHOOK_SECRET"])  # the whsec_… shown when the endpoint was made


def receive(body: bytes, headers: dict) -> int:
    \"\"\"Call it from your web framework with the raw request body and headers; answer its status.\"\"\"
    try:
        event = webhook.verify(body, headers)  # checks webhook-id, webhook-timestamp, webhook-signature
    except WebhookVerificationError:
        return 400  # not from Tokenkeeper, altered, or older than 5 minutes: ignore it
    print(event["id"], event["type"], event["data"])  # your code: dedupe on event["id"] (the webhook-id)
    return 204
"""

EVENTS_DESCRIPTION = f"""\
The workspace's events in order: connection lifecycle changes (`connection.authorized`,
`.refresh_failed`, `.recovered`, `.needs_reauth`, `.reconnected`, `.revoked`) and Exact
Online webhooks received (`exact_online.webhook`). Each has a `cursor` that increases in the
order events are committed; pass the last one you handled as `after=` and you get every later
event exactly once, also after being down (events are kept 30 days, `WORKSPACE_EVENT_RETENTION_DAYS`).
Needs the `read` scope (or a workspace admin's session).

```sh
{EVENTS_CURL}```

```python
{EVENTS_PYTHON}```
"""

ENDPOINTS_DESCRIPTION = f"""\
Endpoints that receive the workspace's events as signed webhooks (Standard Webhooks:
`webhook-id`, `webhook-timestamp`, `webhook-signature` headers; the body is the event as the
event stream shows it). The signing secret (`whsec_…`) is in the response that creates the
endpoint (or rotates its secret), never again. A failed delivery is retried with backoff for
about a day; an endpoint that accepts nothing for that long is disabled and the admins get an
e-mail. Verify the signature with the `standardwebhooks` package:

```python
{VERIFY_PYTHON}```
"""
