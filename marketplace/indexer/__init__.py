"""Follows the WEBI contracts into SQL (SQLite by default, PostgreSQL by URL) for the API and dashboard."""

from marketplace.indexer.db import create_db
from marketplace.indexer.indexer import Indexer, IndexerProgress

__all__ = ["Indexer", "IndexerProgress", "create_db"]
