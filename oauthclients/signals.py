"""What oauthclients tells the apps above it, without importing them."""

from django.dispatch import Signal

# Sent by ``oauth_client_delete`` inside its transaction, before the client row
# is deleted, with ``workspace``, ``client`` and ``actor``: connections revokes
# the connections that use the client (connections/receivers.py). A receiver
# that raises rolls the whole deletion back.
oauth_client_deleting = Signal()
