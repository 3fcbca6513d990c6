"""Opening the indexer's database: a SQLite file by default, any SQLAlchemy URL (PostgreSQL) when given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import SQLModel, create_engine

from marketplace.indexer import models  # noqa: F401  (registers the tables)


def database_url(location: str | Path) -> str:
    """``location`` as a URL: a path becomes ``sqlite:///path``; a URL (``postgresql://…``) is kept."""
    text = str(location)
    return text if "://" in text else f"sqlite:///{Path(text).expanduser()}"


def create_db(location: str | Path) -> Engine:
    """An engine with the tables created. SQLite runs in WAL mode, so the API reads while the indexer writes."""
    url = database_url(location)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    SQLModel.metadata.create_all(engine)
    return engine
