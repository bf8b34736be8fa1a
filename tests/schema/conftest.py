"""Schemathesis 4.32 renames a lazy-schema test per operation through ``node._nodeid``, the attribute
pytest kept a node's id in before 9.2; pytest 9.2 keeps a structured ``NodeId`` in ``_id``. This
alias lets Schemathesis read and set it (only its reports use it)."""

from _pytest.nodeid import NodeId
from _pytest.nodes import Node

if not hasattr(Node, "_nodeid"):
    Node._nodeid = property(
        lambda node: str(node._id),
        lambda node, value: setattr(node, "_id", NodeId.parse(value)),
    )
