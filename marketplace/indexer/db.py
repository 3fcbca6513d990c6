"""Opening the indexer's database: a SQLite file by default, any SQLAlchemy URL (PostgreSQL) when given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect, make_url
from sqlmodel import SQLModel, create_engine

from marketplace.errors import ConfigError
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

    _check_schema(engine, url)
    SQLModel.metadata.create_all(engine)
    return engine


def _check_schema(engine: Engine, url: str) -> None:
    """Refuses a database whose tables an older WEBI wrote (``create_all`` adds missing tables, never
    missing columns). Everything in it is a copy of the chain, so deleting it loses nothing."""
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in present:
            continue
        have = {column["name"] for column in inspector.get_columns(table.name)}
        missing = sorted(set(table.columns.keys()) - have)
        if missing:
            engine.dispose()
            where = make_url(url).render_as_string(hide_password=True)
            raise ConfigError(
                f"the index at {where} was written by an older WEBI (table {table.name} lacks {', '.join(missing)}): "
                "delete it (or its tables) and the indexer rebuilds it from the chain"
            )
