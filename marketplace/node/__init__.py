"""The marketplace node (``webi serve``): indexer, REST API, dashboard and content store in one app."""

from marketplace.node.app import create_node_app
from marketplace.node.settings import NodeSettings

__all__ = ["NodeSettings", "create_node_app"]
