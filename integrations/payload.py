"""One shape for an event, in the event stream and in outgoing webhooks alike."""

from .models import WorkspaceEvent


def event_payload(event: WorkspaceEvent) -> dict:
    """``{"id", "cursor", "type", "timestamp", "data"}``: Standard Webhooks' type/timestamp/data,
    plus the event's id (also the ``webhook-id``) and its place in the stream."""
    return {
        "id": str(event.id),
        "cursor": event.cursor,
        "type": event.type,
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }
