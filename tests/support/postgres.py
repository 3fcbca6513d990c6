"""A throwaway PostgreSQL cluster for the database tests: ``initdb`` into a temporary folder, a free port on
127.0.0.1, stopped (by pid) and removed at the end of the session.

``./dev test`` installs Debian's ``postgresql`` package the way it installs chromium. Without the server
binaries the PostgreSQL cases are skipped with the reason, except under ``CI=true``, where they fail.
PostgreSQL refuses to run as root: as root (CI), the cluster runs as the ``postgres`` user the package makes.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from marketplace.chain.devnet import free_port
from tests.support.waiting import wait_for


def _bindir() -> Path | None:
    """Where initdb and postgres are: on PATH, or Debian's /usr/lib/postgresql/<major>/bin (the newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class PostgresServer:
    """One running cluster; ``database()`` makes a fresh, empty database for a test and returns its URL."""

    port: int
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://webi@127.0.0.1:{self.port}/{name}"

    def database(self) -> str:
        import psycopg

        name = f"webi_test_{next(self._names)}"
        with psycopg.connect(_maintenance_dsn(self.port), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _maintenance_dsn(port: int) -> str:
    return f"host=127.0.0.1 port={port} user=webi dbname=postgres"


def database_location(request: pytest.FixtureRequest, sqlite_file: Path) -> str:
    """``sqlite_file``, or a fresh PostgreSQL database's URL when the test is parametrized with "postgresql"."""
    if getattr(request, "param", "sqlite") == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.database()
    return str(sqlite_file)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The indexer's database, once as a SQLite file and once on the throwaway PostgreSQL cluster."""
    return database_location(request, tmp_path / "index.db")


def _ready(port: int) -> bool:
    import psycopg

    try:
        psycopg.connect(_maintenance_dsn(port), connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _bindir()
    if bindir is None:
        reason = "PostgreSQL's server is not installed (Debian's postgresql package; ./dev test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    user = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="webi-pg-"))
    data = folder / "data"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "webi", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, user=user, timeout=120)
    port = free_port()
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={folder}", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off"],
            stdout=subprocess.DEVNULL, stderr=log, user=user,
        )
    try:
        wait_for(lambda: server.poll() is not None or _ready(port), timeout=60, what="PostgreSQL to accept connections")
        if server.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited: {(folder / 'server.log').read_text()[-2000:]}")
        yield PostgresServer(port)
    finally:
        server.terminate()  # "smart" shutdown would wait on open connections; SIGTERM is PostgreSQL's fast one
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)
