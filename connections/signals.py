"""What connections tells the apps above it (integrations), without importing them.

Both signals are sent inside the transaction that made the change, so a
receiver's writes commit or roll back with it; a receiver that raises rolls
the change back. Keep receivers short: they run on the refresh engine's path.
"""

from django.dispatch import Signal

# Sent by ``connections.events.connection_event`` for every kind of event but
# the routine ``refreshed`` (the engine records millions of those a day and no
# one above listens for them), with ``connection`` and ``event``.
connection_event_recorded = Signal()

# Sent by ``connection_disconnect`` and ``connection_delete`` with the locked
# ``connection`` while it still holds whatever tokens it has, right before they
# are erased (or the row deleted; then ``deleting`` is True): the last moment
# its access token can clean up at the provider what was made with it (Exact
# Online's webhook subscriptions).
connection_disconnecting = Signal()
